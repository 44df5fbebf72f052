"""The stage factory: one place that knows which runtime is installed.

Preference: ai-edge-litert (Google's current wheel), then tflite-runtime (the only choice on
32-bit Raspberry Pi OS and JetPack 5), then the full tensorflow package; each runs its TFLite
Interpreter. The module is imported by name inside a function so that device/ never imports
tensorflow at module level. The thread count is always passed explicitly: the LiteRT Python
interpreter runs one thread when none is given.

Stages use the runtime's documented API (stage.PublicStage) unless the installed version is
one the fast path (stage.Stage, tensors bound in the arena) was tested on: FAST_PATH_TESTED.
"""
from __future__ import annotations

import importlib
from importlib import metadata

from device.engine.stage import PublicStage, Stage
from device.errors import UserError

# --runtime name -> (module to import, attribute path of the Interpreter class, pip package)
RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "lite.Interpreter", "tensorflow"),
}
# pip package -> version prefixes the fast path ran on: ai-edge-litert 2.3 in the tests here and
# under arm64 emulation, tflite-runtime 2.14 in .venv-tflrt's compatibility test and under armhf
# emulation. Any other version (JetPack 5's tflite-runtime 2.13 too) takes the public path.
FAST_PATH_TESTED = {"ai-edge-litert": ("2.3.",), "tflite-runtime": ("2.14.",)}


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


def fast_path_tested(runtime: str) -> bool:
    """Whether the installed package of `runtime` is a version the fast path was tested on."""
    package = RUNTIMES[runtime][2]
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        return False
    return version.startswith(FAST_PATH_TESTED.get(package, ()))


def stage_factory(runtime: str | None = None, fast: bool | None = None):
    """A function (name, model_path, threads, clock) -> engine stage over an allocated
    interpreter of one runtime: the fast path's Stage where `fast` (default: where the runtime's
    version was tested with it), else a PublicStage."""
    interpreters = interpreter_factory(runtime)
    use_fast = fast_path_tested(interpreters.runtime_name) if fast is None else fast
    kind = Stage if use_fast else PublicStage

    def make(stage_name, model_path, threads, clock):
        return kind(stage_name, interpreters(model_path, threads), model_path, clock)
    make.runtime_name = interpreters.runtime_name
    make.fast_path = use_fast
    return make
