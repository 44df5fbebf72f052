"""Stages run by LiteRT's CompiledModel (ai-edge-litert): no tensor is copied between files.

A TFLite Interpreter gives every model its own input tensors, so with Interpreters the cascade
copies the 64 KiB trunk tensor into each subnet it runs, and subnet k-1's features into subnet
k: the tensor hand-over that bench/device_runtime.py measures for both kinds of stage. A
CompiledModel runs on TensorBuffers the caller passes, and one buffer can be one model's output
and several models' input: the trunk writes its tensor once and every subnet reads that memory,
and subnet k reads the features where subnet k-1 wrote them.

Outputs the cascade reads (logits, exit statistics) are host-memory buffers over numpy arrays
of ours, so Python reads them where the model wrote them; LiteRT wants them 64-byte aligned,
else it would silently copy them. Inputs must be the runtime's own buffers (LiteRT refuses a
host-memory buffer, which has no shape, for a fixed-shape input), so an input Python fills
(the image; features whose quantization differs between two files) is a numpy staging array
passed in one call per frame.

Per frame this calls the pybind layer under ai-edge-litert's Python classes (RunByIndex,
WriteTensor) with capsule lists made once: the public wrappers rebuild those lists and check
dtypes on every call. device/engine/runtime.py checks those entry points (`available()`) and falls
back to the Interpreter without them. Unlike the
Interpreter's invoke, a run holds the GIL: a grabber thread waits at most one stage for it.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from device.engine.delegate import runs_on_delegate
from device.engine.stage import SIGNATURE, CascadeError, Port, StageBase, same_values, signature_details

ALIGNMENT = 64  # bytes: LiteRT's requirement for host-memory buffers


def _litert():
    """ai-edge-litert's CompiledModel pieces and the pybind entry points used per frame."""
    from ai_edge_litert import _pywrap_litert_compiled_model_wrapper as models
    from ai_edge_litert import _pywrap_litert_tensor_buffer_wrapper as buffers
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.options import CpuOptions, Options
    from ai_edge_litert.tensor_buffer import TensorBuffer
    if not (hasattr(buffers, "WriteTensor") and hasattr(getattr(models, "CompiledModelWrapper", None), "RunByIndex")
            and hasattr(TensorBuffer, "create_from_host_memory")):
        raise ImportError("this ai-edge-litert lacks WriteTensor, RunByIndex or host-memory buffers")
    return CompiledModel, HardwareAccelerator, Interpreter, CpuOptions, Options, TensorBuffer, buffers


def available() -> bool:
    """Whether this ai-edge-litert has the CompiledModel pieces this module relies on."""
    try:
        _litert()
    except ImportError:
        return False
    return True


def aligned_zeros(shape, dtype) -> np.ndarray:
    """A zeroed array whose data starts on an ALIGNMENT boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class CompiledStage(StageBase):
    """One model file as a LiteRT CompiledModel on CPU (XNNPACK), with the Stage interface."""

    def __init__(self, name: str, path, threads: int, clock=time.perf_counter):
        compiled_model, accelerator, interpreter, cpu_options, options, tensor_buffer, buffers = _litert()
        self.name = name
        self.path = path
        self.clock = clock
        self.threads = threads
        try:
            self.model = compiled_model.from_file(str(path), options=options(
                hardware_accelerators=accelerator.CPU, cpu_options=cpu_options(num_threads=threads)))
        except RuntimeError as exc:
            raise CascadeError(f"{path}: LiteRT cannot compile it ({exc})") from None
        # The quantization parameters are in the Interpreter's details, not the CompiledModel's:
        # read them from an Interpreter that never allocates its tensors.
        ins, outs = signature_details(interpreter(model_path=str(path)))
        order = self.model.get_signature_list()[SIGNATURE]
        signature = self.model.get_signature_index(SIGNATURE)
        try:
            self.inputs = {n: Port(ins[n], aligned_zeros(ins[n]["shape"], ins[n]["dtype"])) for n in order["inputs"]}
            self.outputs = {n: Port(outs[n], aligned_zeros(outs[n]["shape"], outs[n]["dtype"]))
                            for n in order["outputs"]}
        except TypeError as exc:
            raise CascadeError(f"{path}: {exc}") from None
        self._buffers = {}  # ("input" | "output", name) -> TensorBuffer, alive as long as the stage
        for n, buffer in zip(order["inputs"], self.model.create_input_buffers(signature)):
            self._buffers[("input", n)] = buffer
        for n, port in self.outputs.items():
            self._buffers[("output", n)] = tensor_buffer.create_from_host_memory(port.array)
        self._order = order
        self._write = buffers.WriteTensor
        self._in_capsules = [self._buffers[("input", n)].capsule for n in order["inputs"]]
        self._out_capsules = [self._buffers[("output", n)].capsule for n in order["outputs"]]
        self.run = functools.partial(self.model._model.RunByIndex, signature, self._in_capsules, self._out_capsules)
        self._staged = list(order["inputs"])  # inputs Python fills; a shared one leaves the list
        self._first_run()

    def flushes(self) -> list:
        """Callables, one per input Python fills, that pass its staging array to the runtime."""
        return [functools.partial(self._write, self._buffers[("input", n)].capsule, self.inputs[n].array,
                                  self.inputs[n].dtype.name) for n in self._staged]

    def share_output(self, name: str, readers: list) -> bool:
        """Make output `name` one runtime buffer that each (stage, input name) of `readers` takes
        as that input: no copy between them. Only between CompiledStages whose tensors hold the
        same values (type, shape, quantization); False, and nothing changed, otherwise. The
        output is then no longer visible to Python: its port's array is None."""
        port = self.port("output", name)
        if not all(isinstance(stage, CompiledStage) and same_values(port, stage.port("input", n))
                   for stage, n in readers):
            return False
        buffer = self.model.create_output_buffer_by_name(SIGNATURE, name)
        self._buffers[("output", name)] = buffer
        self._out_capsules[self._order["outputs"].index(name)] = buffer.capsule
        port.array = None
        for stage, n in readers:
            stage._buffers[("input", n)] = buffer
            stage._in_capsules[stage._order["inputs"].index(n)] = buffer.capsule
            stage._staged.remove(n)
        return True

    def read_output(self, name: str) -> np.ndarray:
        """A float32 copy of output `name`; a shared output is read from its runtime buffer."""
        port = self.port("output", name)
        if port.array is not None:
            return super().read_output(name)
        raw = np.asarray(self._buffers[("output", name)].read(int(np.prod(port.shape)), port.dtype)).reshape(port.shape)
        if not port.quantized:
            return raw.astype(np.float32)
        return ((raw.astype(np.float32) - port.zero_point) * port.scale).astype(np.float32)

    def on_delegate(self) -> bool | None:
        """The CompiledModel's CPU path delegates to XNNPACK as the Interpreter does; the check
        reads the partitions of an Interpreter of the same file, made for it and dropped."""
        interpreter = _litert()[2]
        probe = interpreter(model_path=str(self.path), num_threads=self.threads)
        probe.allocate_tensors()
        return runs_on_delegate(probe)

    def _check_first_run(self) -> None:
        """The runtime must write the outputs into our arrays, not into copies of its own; refuse
        the file rather than read arrays it never writes. It runs at load, before share_output
        can have hidden an output's array."""
        for name, port in self.outputs.items():
            written = self._buffers[("output", name)].read(port.array.size, port.dtype)
            if not np.array_equal(written, port.array.ravel(), equal_nan=port.dtype.kind == "f"):
                raise CascadeError(f"{self.path}: LiteRT did not write output '{name}' in place; "
                                   f"run with --runtime litert-interpreter")
