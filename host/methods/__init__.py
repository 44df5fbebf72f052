"""The methods the kit trains, exports and compares (shared/DESIGN.md section 3), by --method name."""
from __future__ import annotations

from device.errors import UserError
from host.methods.base import IMAGE, ExitExport, ExportPlan, Method, StageExport
from host.methods.concat import CONCAT
from host.methods.single_path import SINGLE_PATH
from host.methods.slimmable import SLIMMABLE

METHODS = {method.name: method for method in (CONCAT, SLIMMABLE, SINGLE_PATH)}
DEFAULT = CONCAT.name


class MethodError(UserError, ValueError):
    """A --method this kit does not have."""


def get(name: str) -> Method:
    """The method called `name`; an unknown name is refused with the list of methods."""
    if name not in METHODS:
        raise MethodError(f"unknown --method {name!r}; choose one of: "
                          + "; ".join(f"{m.name} ({m.summary})" for m in METHODS.values()))
    return METHODS[name]


def build_network(cfg):
    """A fresh network of cfg.method for host.network.NetConfig `cfg`."""
    return get(cfg.method).build(cfg)


__all__ = ["DEFAULT", "IMAGE", "METHODS", "ExitExport", "ExportPlan", "Method", "MethodError", "StageExport",
           "build_network", "get"]
