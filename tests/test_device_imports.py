"""device/ must run on a board with requirements-device.txt only: no torch, tensorflow, litert_torch,
host/ or converters/ imports (tensorflow.lite is reached only by name inside device/runtime.py)."""
import ast
from pathlib import Path

DEVICE = Path(__file__).resolve().parents[1] / "device"
FORBIDDEN = {"torch", "tensorflow", "litert_torch", "host", "converters"}


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_device_module_imports_host_side_packages():
    offenders = [f"{path.relative_to(DEVICE.parent)}: import {name}"
                 for path in sorted(DEVICE.rglob("*.py"))
                 for name in imported_modules(path)
                 if name.split(".")[0] in FORBIDDEN]
    assert not offenders, "device/ must not import host-side packages:\n" + "\n".join(offenders)
