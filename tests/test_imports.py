"""The project's modules import one another in one direction: no circle, counting the imports
inside functions too (a lazy import hides a circle from Python, not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("overshoot", "trainers", "data", "models", "scripts")


def project_modules() -> dict[str, Path]:
    modules = {"main": ROOT / "main.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in it (``from trainers import x`` counts
    as ``trainers.x`` where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found & known


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state and (found := visit(other)):
                return found
        state[module] = 2
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_module_of_the_project_imports_itself_round_a_circle() -> None:
    modules = project_modules()
    graph = {name: imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert graph["trainers.train"], "the walk found no imports: it would pass on anything"
    assert cycle(graph) is None, " → ".join(cycle(graph) or [])


def test_the_walk_finds_a_circle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle(graph) == ["a", "b", "c", "a"]
    source = "def f() -> None:\n    from trainers.train import train\n"
    probe = ROOT / "tests" / "_probe_for_imports.py"
    probe.write_text(source)
    try:
        assert imports(probe, {"trainers.train"}) == {"trainers.train"}
    finally:
        probe.unlink()


def test_the_optimizers_import_torch_and_nothing_of_the_harness() -> None:
    modules = project_modules()
    for name, path in modules.items():
        if name.startswith("overshoot"):
            outside = {m for m in imports(path, set(modules)) if not m.startswith("overshoot")}
            assert not outside, f"{name} imports {outside}"
