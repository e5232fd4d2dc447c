"""The package's imports flow one way: libraries never import the run layer, and no module imports itself back.

Read from the source (the import statements of every module, those inside functions and ``TYPE_CHECKING`` blocks
included), so a lazy import that would close a loop or reach up a layer is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import curate

PACKAGE = Path(curate.__file__).parent
LIBRARIES = ("rag", "quality", "ingest", "export", "train", "evaluate", "llm")
RUN_LAYER = ("curate.orchestrate", "curate.pipeline", "curate.rowsteps", "curate.steps", "curate.batches",
             "curate.executors")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """Every curate module ``path`` imports: ``from curate.x import y`` names ``curate.x.y`` when that is a module,
    else ``curate.x``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                      for alias in node.names}
    return {n for n in names if n == "curate" or n.startswith("curate.")}


def reaches(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def test_the_walk_sees_function_level_imports():
    """The check would catch a lazy import: the pipeline imports delivery steps inside ``Plan.steps``."""
    assert "curate.deliver.steps" in imported(MODULES["curate.pipeline"])


def test_libraries_import_nothing_of_the_run_layer():
    found = [f"{name} imports {target}"
             for name, path in MODULES.items() if name.split(".")[1:2] and name.split(".")[1] in LIBRARIES
             for target in sorted(imported(path)) if any(reaches(target, layer) for layer in RUN_LAYER)]
    assert not found, "libraries must not import the run layer:\n" + "\n".join(found)


def test_no_import_loop():
    """No cycle among modules; a package importing its own submodules (a lazy registry) is not one."""
    graph = {name: {t for t in imported(path) if t in MODULES and t != name and not t.startswith(name + ".")}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    loops: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                loops.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)
