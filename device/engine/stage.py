"""One model file of a bundle as a stage: named tensor ports, an invoke counter.

Every stage resolves its signature tensors by name (args_0, args_1, ... in; output_0, ... out).
A Port is one tensor as a numpy array that stays valid for the life of the stage, so a frame
moves tensors with prepared copies (hand_over) and reads outputs where they were written.

Two kinds of stage run a TFLite Interpreter (ai-edge-litert, tflite-runtime or tensorflow.lite):
- PublicStage, the default: the documented API only. Its ports are arrays of ours; a run passes
  the inputs with set_tensor(), invokes, and copies the outputs back with get_tensor().
- Stage, the fast path: its ports are numpy arrays bound to the tensors in the interpreter's
  arena (ctypes over the address interpreter.tensor() shows), so a run is invoke() alone. It
  relies on the arena not moving, which the stage checks after its first run, and is used only
  with runtime versions it was tested on (device/engine/runtime.py, FAST_PATH_TESTED). On the
  camera bundle it saves 0.12 ms of a 1.4-1.6 ms frame on this host (docs/measurements.md).
"""
from __future__ import annotations

import ctypes
import functools
import time

import numpy as np

from device.engine.delegate import runs_on_delegate
from device.errors import UserError

SIGNATURE = "serving_default"


class CascadeError(UserError, RuntimeError):
    """A model file whose tensors do not fit the bundle's contract; the message names the file."""


class Port:
    """One input or output tensor over `array`, its lasting numpy view or staging buffer;
    converts float32 arrays to and from quantized tensors in place."""

    def __init__(self, detail: dict, array: np.ndarray):
        self.index = detail["index"]
        self.shape = tuple(int(d) for d in detail["shape"])
        self.dtype = np.dtype(detail["dtype"])
        scale, zero_point = detail.get("quantization", (0.0, 0)) or (0.0, 0)
        self.quantized = self.dtype != np.float32 and scale != 0.0
        if self.dtype != np.float32 and not self.quantized:
            raise TypeError(f"tensor {detail.get('name')} is {self.dtype} without quantization parameters")
        self.scale, self.zero_point = float(scale), float(zero_point)
        if array.shape != self.shape or array.dtype != self.dtype:
            raise TypeError(f"tensor {detail.get('name')} holds {array.dtype}{list(array.shape)}, "
                            f"its details say {self.dtype}{list(self.shape)}")
        self.array = array
        if self.quantized:
            self._float = np.zeros(self.shape, dtype=np.float32)
            info = np.iinfo(self.dtype)
            self._lo, self._hi = float(info.min), float(info.max)

    def write(self, array: np.ndarray) -> None:
        if not self.quantized:
            np.copyto(self.array, array)
            return
        np.divide(array, self.scale, out=self._float)
        np.add(self._float, self.zero_point, out=self._float)
        np.rint(self._float, out=self._float)
        np.clip(self._float, self._lo, self._hi, out=self._float)
        np.copyto(self.array, self._float, casting="unsafe")

    def read(self, out: np.ndarray) -> None:
        """Copy the tensor into `out` (its shape), as float32."""
        if self.quantized:
            np.subtract(self.array, self.zero_point, out=out, casting="unsafe")
            np.multiply(out, self.scale, out=out)
        else:
            np.copyto(out, self.array)


def _requantization(source: Port, target: Port) -> np.ndarray | None:
    """The 256-entry table taking source codes to target codes, for two 8-bit quantized tensors;
    None when the table maps every code to itself (two files' scales of one tensor often differ
    in the last float bits) and a plain copy does."""
    codes = np.arange(256, dtype=np.uint8).view(source.dtype)  # every code, indexed by its bit pattern
    values = (codes.astype(np.float64) - source.zero_point) * source.scale
    limits = np.iinfo(target.dtype)
    table = np.clip(np.rint(values / target.scale + target.zero_point), limits.min, limits.max).astype(target.dtype)
    return None if source.dtype == target.dtype and np.array_equal(table, codes) else table


def _same_codes(source: Port, target: Port) -> bool:
    """Whether a value's bytes mean the same in both tensors: same type, and the same
    quantization or two whose requantization table maps every 8-bit code to itself."""
    if source.dtype != target.dtype:
        return False
    if (source.scale, source.zero_point) == (target.scale, target.zero_point):
        return True
    return (source.quantized and target.quantized and source.dtype.itemsize == 1
            and _requantization(source, target) is None)


def hand_over(source: Port, target: Port, path, what: str) -> list:
    """Zero-argument callables, run in order, that move one stage's output tensor into another's
    input.

    A plain copy where both sides' bytes mean the same; between two 8-bit quantized tensors, a
    256-entry requantization table applied with np.take instead of dequantizing to float and
    quantizing again (seven array passes). np.take wants intp indices and would allocate them
    on every call from the codes, so the codes are first copied into an index buffer allocated
    here, once.
    """
    out = target.array
    if out.shape != source.shape:
        raise CascadeError(f"{path}: takes a {what} of shape {out.shape}, it is given {source.shape}")
    if _same_codes(source, target):
        return [functools.partial(np.copyto, out, source.array)]
    if source.quantized and target.quantized and source.dtype.itemsize == 1:
        table = _requantization(source, target)
        indices = np.empty(source.shape, dtype=np.intp)
        return [functools.partial(np.copyto, indices, source.array.view(np.uint8)),
                functools.partial(np.take, table, indices, out=out, mode="clip")]
    raise CascadeError(f"{path}: takes a {target.dtype} {what} that is given as {source.dtype}; "
                       f"export every file of a bundle at one precision")


def signature_details(interpreter) -> tuple[dict, dict]:
    """{signature name: tensor detail} for inputs and outputs, by signature when the file has one."""
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    by_index = {d["index"]: d for d in inputs + outputs}
    signatures = getattr(interpreter, "_get_full_signature_list", dict)() or {}
    if signatures:
        sig = signatures.get(SIGNATURE) or next(iter(signatures.values()))
        return ({n: by_index[i] for n, i in sig["inputs"].items()},
                {n: by_index[i] for n, i in sig["outputs"].items()})
    # No signature: names carry them (e.g. "serving_default_args_0"); order is the last resort.
    def named(details, prefix):
        found = {}
        for pos, d in enumerate(details):
            matches = [f"{prefix}_{j}" for j in range(len(details)) if f"{prefix}_{j}" in d["name"]]
            found[matches[0] if matches else f"{prefix}_{pos}"] = d
        return found
    return named(inputs, "args"), named(outputs, "output")


def _bind(interpreter, index: int) -> np.ndarray:
    """A lasting numpy array over one tensor's buffer in the interpreter's arena.

    interpreter.tensor() hands out views that must be dropped before each invoke, and
    set_tensor()/get_tensor() copy through a wrapper: per frame and per subnet, that wrapper
    work was most of the runtime's own cost. The arena is placed by allocate_tensors() and does
    not move while shapes stay fixed, so the array made here from the buffer's address stays
    valid; Stage checks that after its run at load. The array keeps the interpreter
    alive, and it does not count as a view for the wrapper's "reference to internal data" check.
    """
    view = interpreter.tensor(index)()
    memory = (ctypes.c_byte * view.nbytes).from_address(view.ctypes.data)
    memory.owner = interpreter
    return np.frombuffer(memory, dtype=view.dtype).reshape(view.shape)


class StageBase:
    """What the engine asks of a stage: run (one run of the model, untimed and uncounted),
    invoke() (a run that returns its seconds and counts), and its ports by name. A subclass says
    what array each port holds (_array) and what a run does (run)."""

    def __init__(self, name: str, interpreter, path, clock=time.perf_counter):
        self.name = name
        self.clock = clock
        self.path = path
        self.interpreter = interpreter
        ins, outs = signature_details(interpreter)
        try:
            self.inputs = {n: Port(d, self._array(d)) for n, d in ins.items()}
            self.outputs = {n: Port(d, self._array(d)) for n, d in outs.items()}
        except TypeError as exc:
            raise CascadeError(f"{path}: {exc}") from None
        self._prepare()
        self._first_run()

    def _prepare(self) -> None:
        """What the subclass makes once its ports exist; nothing by default."""

    def _first_run(self) -> None:
        """Run the model once at load, uncounted, and check its ports (_check_first_run): a file
        the engine cannot use fails here, not on the first frame."""
        self.run()
        self._check_first_run()
        self.invokes = 0

    def _check_first_run(self) -> None:
        """Nothing to check by default."""

    def invoke(self) -> float:
        """Run the model once; returns its seconds."""
        start = self.clock()
        self.run()
        seconds = self.clock() - start
        self.invokes += 1
        return seconds

    def port(self, kind: str, name: str) -> Port:
        ports = self.inputs if kind == "input" else self.outputs
        if name not in ports:
            raise CascadeError(f"{self.path}: no {kind} '{name}' in its signature "
                               f"(has {', '.join(sorted(ports)) or 'none'})")
        return ports[name]

    def read_output(self, name: str) -> np.ndarray:
        """A float32 copy of output `name` as the last run left it (dequantized where quantized)."""
        port = self.port("output", name)
        out = np.empty(port.shape, np.float32)
        port.read(out)
        return out

    def on_delegate(self) -> bool | None:
        return runs_on_delegate(self.interpreter)


class PublicStage(StageBase):
    """One TFLite Interpreter through its documented API: set_tensor(), invoke(), get_tensor()."""

    def _array(self, detail: dict) -> np.ndarray:
        return np.zeros(detail["shape"], detail["dtype"])

    def _prepare(self) -> None:
        self._feeds = [(port.index, port.array) for port in self.inputs.values()]
        self._reads = [(port.index, port.array) for port in self.outputs.values()]

    def run(self) -> None:
        interpreter = self.interpreter
        for index, array in self._feeds:
            interpreter.set_tensor(index, array)
        interpreter.invoke()
        for index, array in self._reads:
            np.copyto(array, interpreter.get_tensor(index))


class Stage(StageBase):
    """One TFLite Interpreter whose ports are its own tensors, bound once (_bind): a run is
    one invoke() and nothing else."""

    def _array(self, detail: dict) -> np.ndarray:
        return _bind(self.interpreter, detail["index"])

    def _prepare(self) -> None:
        self.run = self.interpreter.invoke

    def _check_first_run(self) -> None:
        """The bound ports must still point into the arena after a run (a model with dynamic
        shapes would reallocate its tensors there); refuse the file rather than read stale memory."""
        for name, port in {**self.inputs, **self.outputs}.items():
            view = self.interpreter.tensor(port.index)()
            moved = view.ctypes.data != port.array.ctypes.data
            del view
            if moved:
                raise CascadeError(f"{self.path}: tensor '{name}' moved during invoke (dynamic shapes?); "
                                   f"re-export the bundle with fixed shapes")
