"""The stage factory: one place that knows which runtime is installed.

Preference: ai-edge-litert (Google's current wheel), then tflite-runtime (the only choice on
32-bit Raspberry Pi OS), then the full tensorflow package. With ai-edge-litert the cascade runs
LiteRT's CompiledModel, whose buffers the trunk and the subnets share (device/engine/compiled.py);
`litert-interpreter` runs its classic Interpreter instead, as the other two runtimes do. The
module is imported by name inside a function so that device/ never imports tensorflow at
module level. The thread count is always passed explicitly: the LiteRT Python interpreter
runs one thread when none is given.
"""
from __future__ import annotations

import importlib

from device.engine import compiled
from device.engine.stage import Stage
from device.errors import UserError

# --runtime name -> (module to import, attribute path of the Interpreter class, pip package)
RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    "litert-interpreter": ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "lite.Interpreter", "tensorflow"),
}


class RuntimeUnavailable(UserError, RuntimeError):
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


def stage_factory(runtime: str | None = None):
    """A function (name, model_path, threads, clock) -> cascade stage, bound to one runtime:
    a CompiledStage for `litert` (when this ai-edge-litert has what it needs), else a Stage
    over an allocated interpreter."""
    interpreters = interpreter_factory(runtime)
    use_compiled = interpreters.runtime_name == "litert" and compiled.available()

    def make(stage_name, model_path, threads, clock):
        if use_compiled:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            return compiled.CompiledStage(stage_name, model_path, threads, clock)
        return Stage(stage_name, interpreters(model_path, threads), model_path, clock)
    # litert without CompiledModel support runs its Interpreter: say so in the name
    make.runtime_name = ("litert-interpreter" if interpreters.runtime_name == "litert" and not use_compiled
                         else interpreters.runtime_name)
    return make
