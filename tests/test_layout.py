"""The package's layout, checked by walking its imports (parsed with ``ast``, nothing imported).

Every import of a napari_colorize module counts, at module level and inside functions (an import
inside a function still runs, only later); imports under ``if TYPE_CHECKING:`` do not. The rules
(docs/LIBRARY.md, "Layout"): no import circle; no import upwards through the layers (the napari
widgets on top of everything, nothing below them imports them; nothing imports the command line);
no library module imports Qt or napari at module level; and no module, test, training or benchmark
script imports an underscore name from another napari_colorize module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "napari_colorize"
GUI = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt", "vispy")

#: the layers, bottom first: a module may import modules of its own layer or of those below it
LAYERS = [
    ("colour maths, metrics, disk space, free memory and image files", ["color", "metrics", "disk", "memory", "io",
                                                                        "models.configs", "models.lazy", "models.maps",
                                                                        "models.checks"]),
    ("models", ["models", "models.*"]),
    ("the engine", ["inference", "inputs", "upsample", "temporal", "plan", "guide_cache", "transfer", "threads",
                    "allocator", "keyframes", "provenance", "hints"]),
    ("tools on the engine", ["compare", "suggest", "histogram_edit", "bench", "_sample_data", "preview"]),
    ("volumes and the command line", ["volume", "cli", ""]),
    ("the napari widgets", ["_widgets", "_widgets.*"]),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _type_checking(node: ast.AST) -> bool:
    t = getattr(node, "test", None)
    return isinstance(node, ast.If) and ((isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or
                                         (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"))


def imports(path: Path, importer: str | None):
    """``(module, names, at_module_level, line)`` for every import in the file; ``module`` absolute
    (``importer``: the file's module name, for relative imports; None outside the package)."""
    tree = ast.parse(path.read_text(), str(path))

    def walk(node, top):
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, [], top, child.lineno
            elif isinstance(child, ast.ImportFrom):
                mod = child.module or ""
                if child.level and importer is None:  # (a script's own package: not napari_colorize)
                    continue
                if child.level:
                    base = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
                    base = base[:len(base) - child.level + 1]
                    mod = ".".join(base + ([mod] if mod else []))
                yield mod, [a.name for a in child.names], top, child.lineno
            yield from walk(child, inner)

    yield from walk(tree, True)


def targets(mod: str, names: list[str]) -> list[str]:
    """The napari_colorize modules an import loads: ``from pkg import sub`` loads ``pkg.sub``."""
    if mod.split(".")[0] != PACKAGE:
        return []
    subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
    return subs if subs and len(subs) == len(names) else [mod] + subs


def graph() -> dict[str, set[str]]:
    g = {m: set() for m in MODULES}
    for m, path in MODULES.items():
        for mod, names, _, _ in imports(path, m):
            g[m].update(t for t in targets(mod, names) if t != m)
    return g


def short(m: str) -> str:
    return m[len(PACKAGE) + 1:] if m.startswith(PACKAGE + ".") else ""


def layer(m: str) -> int:
    s = short(m)
    for i, (_, members) in enumerate(LAYERS):
        if s in members:
            return i
    for i, (_, members) in enumerate(LAYERS):
        if any(p.endswith(".*") and s.startswith(p[:-1]) for p in members):
            return i
    raise AssertionError(f"{m} is in no layer of LAYERS: add it there (and to docs/LIBRARY.md)")


def test_every_module_has_a_layer():
    for m in MODULES:
        layer(m)


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import circle: " + " -> ".join(map(short, cycle)))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_no_upward_import():
    up = [f"{short(m)} ({LAYERS[layer(m)][0]}) imports {short(t)} ({LAYERS[layer(t)][0]})"
          for m, ts in graph().items() for t in sorted(ts) if layer(t) > layer(m)]
    assert not up, "\n".join(up)


def test_nothing_outside_the_widgets_imports_them():
    bad = [f"{short(m)} imports {short(t)}" for m, ts in graph().items() if not short(m).startswith("_widgets")
           for t in ts if short(t).startswith("_widgets")]
    assert not bad, bad


def test_nothing_imports_the_command_line():
    """cli.py is an entry point (the console script), not a library: what it knows that others need
    (the default model of each kind) lives below it (models/registry.py)."""
    bad = [short(m) for m, ts in graph().items() if f"{PACKAGE}.cli" in ts]
    assert not bad, bad


def test_the_library_imports_no_qt_at_module_level():
    bad = [f"{short(m)}:{line} imports {mod}" for m, path in MODULES.items() if not short(m).startswith("_widgets")
           for mod, _, top, line in imports(path, m) if top and mod.split(".")[0] in GUI]
    assert not bad, bad


def _scripts():
    for folder in ("tests", "training", "benchmarks", "scripts"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield p, None
    for m, p in MODULES.items():
        yield p, m


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for path, m in _scripts():
        for mod, names, _, line in imports(path, m):
            if mod.split(".")[0] != PACKAGE or mod == m:
                continue
            for n in names:  # (private modules, napari_colorize._widgets._workers, are modules: allowed)
                if n.startswith("_") and not n.startswith("__") and f"{mod}.{n}" not in MODULES:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {n} from {mod}")
    assert not bad, "\n".join(bad)


def test_the_walk_sees_function_level_and_relative_imports():
    """The walker itself: a function-level relative import is found, resolved and marked as such."""
    found = {(mod, top) for mod, _, top, _ in imports(MODULES[f"{PACKAGE}.models.registry"], f"{PACKAGE}.models.registry")}
    assert (f"{PACKAGE}.models.exemplar", False) in found and (f"{PACKAGE}.models.configs", True) in found
    assert f"{PACKAGE}.models.adapters" in graph()[f"{PACKAGE}.models.registry"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_says_what_it_is_responsible_for(name):
    """Its docstring opens with one line (a sentence of its own) saying what the module does."""
    doc = ast.get_docstring(ast.parse(MODULES[name].read_text()), clean=False)
    assert doc, f"{name} has no docstring"
    lines = doc.splitlines()
    assert lines[0].strip() and lines[0].rstrip().endswith("."), f"{name}: {lines[0]!r}"
    assert len(lines) == 1 or not lines[1].strip(), f"{name}: its first sentence runs on to a second line"
