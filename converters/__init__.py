import logging

# torchao (pulled in by litert-torch) warns at import that its CUDA-only kernels cannot load;
# on a CPU host that is expected, and the warning buries the build's own progress lines.
logging.getLogger("torchao").setLevel(logging.ERROR)
