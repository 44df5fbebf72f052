"""The board engine: one runner per model file, and the cascade that walks a bundle's exits."""
from device.engine.cascade import Cascade, Result, default_threads
from device.engine.runtime import RUNTIMES, RuntimeUnavailable, interpreter_factory, stage_factory
from device.engine.stage import CascadeError

__all__ = ["Cascade", "CascadeError", "RUNTIMES", "Result", "RuntimeUnavailable", "default_threads",
           "interpreter_factory", "stage_factory"]
