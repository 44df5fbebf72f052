"""The TFLite interpreter factory: one place that knows which runtime is installed.

Preference: ai-edge-litert (Google's current wheel), then tflite-runtime (the only choice on
32-bit Raspberry Pi OS), then the full tensorflow package. The module is imported by name
inside a function so that device/ never imports tensorflow at module level. The thread count
is always passed explicitly: the LiteRT Python interpreter runs one thread when none is given.
"""
import importlib

# --runtime name -> (module to import, attribute path of the Interpreter class, pip package)
RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "lite.Interpreter", "tensorflow"),
}


class RuntimeUnavailable(RuntimeError):
    """No usable TFLite runtime, or the one asked for with --runtime is not installed."""


def _load(name: str):
    module_name, attr_path, _ = RUNTIMES[name]
    obj = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def interpreter_class(runtime: str | None = None) -> tuple[str, type]:
    """(runtime name, Interpreter class): the forced one, or the first installed in preference order."""
    if runtime is not None:
        if runtime not in RUNTIMES:
            raise RuntimeUnavailable(
                f"unknown runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}")
        try:
            return runtime, _load(runtime)
        except (ImportError, AttributeError) as exc:
            raise RuntimeUnavailable(
                f"runtime '{runtime}' is not installed ({exc}); "
                f"pip install {RUNTIMES[runtime][2]} or pick another --runtime") from None
    for name in RUNTIMES:
        try:
            return name, _load(name)
        except (ImportError, AttributeError):
            continue
    raise RuntimeUnavailable(
        "no TFLite runtime is installed; pip install -r requirements-device.txt "
        "(ai-edge-litert, or tflite-runtime on 32-bit Raspberry Pi OS)")


def interpreter_factory(runtime: str | None = None):
    """A function (model_path, threads) -> allocated interpreter, bound to one runtime."""
    name, cls = interpreter_class(runtime)

    def make(model_path, threads: int):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        interpreter = cls(model_path=str(model_path), num_threads=int(threads))
        interpreter.allocate_tensors()
        return interpreter

    make.runtime_name = name
    return make


def runs_on_delegate(interpreter) -> bool | None:
    """Whether a delegate (XNNPACK, applied by default) took any of a file's operators; None
    where the interpreter cannot say. A file no delegate took runs on the builtin kernels: for
    int8 files in tflite-runtime 2.14 that is many times slower (its XNNPACK takes no int8)."""
    ops_details = getattr(interpreter, "_get_ops_details", None)  # the runtimes' own listing of nodes
    if ops_details is None:
        return None
    return any(op["op_name"] == "DELEGATE" for op in ops_details())
