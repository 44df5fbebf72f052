"""The import rules of shared/DESIGN.md section 1, read from the source: device/ runs on a board
with requirements-device.txt only (no torch, tensorflow, litert_torch, host/ or converters/;
tensorflow.lite is reached only by name inside device/engine/runtime.py), imports go
host -> converters -> device, and no package has an import cycle."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE = REPO / "device"
FORBIDDEN = {"torch", "tensorflow", "litert_torch", "host", "converters"}
PACKAGES = ("device", "host", "converters")


def imported_modules(path: Path, known: frozenset = frozenset()):
    """The modules a file imports; `from pkg import name` counts as pkg.name where that is one of
    the `known` modules (a submodule), else as pkg."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in known else node.module


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """{module: modules of this repository it imports}, for every module of PACKAGES. An import
    of a submodule points at the submodule only, not at its package's __init__, which Python
    runs first but which does not depend on the importer."""
    paths = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    modules = {module_name(p): p for p in paths}
    known = frozenset(modules)
    return {name: sorted({m for m in imported_modules(path, known) if m in modules and m != name})
            for name, path in modules.items()}


def find_cycle(graph: dict) -> list:
    """One import cycle as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []
    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_device_module_imports_host_side_packages():
    offenders = [f"{path.relative_to(REPO)}: import {name}"
                 for path in sorted(DEVICE.rglob("*.py"))
                 for name in imported_modules(path)
                 if name.split(".")[0] in FORBIDDEN]
    assert not offenders, "device/ must not import host-side packages:\n" + "\n".join(offenders)


def test_converters_never_import_host():
    graph = import_graph()
    offenders = [f"{m} -> {d}" for m, deps in graph.items() if m.startswith("converters") for d in deps
                 if d.startswith("host")]
    assert not offenders, offenders


def test_no_import_cycles():
    assert find_cycle(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


def pep604_or_585_annotations(tree) -> bool:
    """Whether any annotation uses `X | Y` or a builtin generic (list[int]): Python 3.8 and 3.9
    evaluate annotations at definition time and fail on both, unless postponed."""
    def annotations():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node.returns
                yield from (a.annotation for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs])
            elif isinstance(node, ast.AnnAssign):
                yield node.annotation
    generics = {"list", "dict", "tuple", "set", "frozenset", "type"}
    for annotation in filter(None, annotations()):
        for part in ast.walk(annotation):
            if isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr):
                return True
            if isinstance(part, ast.Subscript) and isinstance(part.value, ast.Name) and part.value.id in generics:
                return True
    return False


def test_device_parses_and_imports_as_python_3_8_would():
    """JetPack 5 runs Python 3.8: device/ must be 3.8 syntax, and annotations that 3.8 cannot
    evaluate must be postponed (from __future__ import annotations)."""
    for path in sorted(DEVICE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path), feature_version=(3, 8))
        postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                        and any(a.name == "annotations" for a in n.names) for n in tree.body)
        assert postponed or not pep604_or_585_annotations(tree), f"{path.relative_to(REPO)}: add " \
            "`from __future__ import annotations` (its annotations fail on Python 3.8)"
