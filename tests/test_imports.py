"""The project's modules import one another in one direction: no circle, counting the imports
inside functions too (a lazy import hides a circle from Python, not from a reader)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("overshoot", "trainers", "data", "models", "scripts")


def project_modules() -> dict[str, Path]:
    modules = {"main": ROOT / "main.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
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


# Every project file whose code runs (module bodies included) while main.py trains one run.
TRACER = """
import os, runpy, sys, threading
root = sys.argv[1]
ran = set()
def note(frame, event, arg):
    if event == "call":
        ran.add(frame.f_code.co_filename)
sys.setprofile(note)
threading.setprofile(note)
sys.argv = [os.path.join(root, "main.py"), *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    sys.setprofile(None)
    for f in sorted(ran):
        if f.startswith(root + os.sep) and os.sep + ".venv" + os.sep not in f:
            print("RAN", os.path.relpath(f, root))
"""
MOST_FILES_A_RUN_RUNS = 20


def test_one_run_runs_the_code_of_at_most_twenty_project_files(tmp_path: Path) -> None:
    """What a maintainer reads to follow one run: the files whose code runs in
    ``python main.py task=mlp_housing optimizer=sgdo`` (fewer steps; the same files). The tracer
    is the oracle: a file loaded only for another path (vectorized members, the two-model
    reference, an archive, another optimizer) is not among them."""
    args = ["task=mlp_housing", "optimizer=sgdo", "max_steps=20", f"results_dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", TRACER, str(ROOT), *args, "~logger"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    ).stdout
    ran = [line.removeprefix("RAN ") for line in out.splitlines() if line.startswith("RAN ")]
    assert "trainers/fit/module.py" in ran and "overshoot/sgdo.py" in ran, out  # it traced
    assert "status: finished after 20 steps" in out, out
    assert not {"trainers/members/__init__.py", "overshoot/adamo.py", "trainers/archive.py"} & set(
        ran
    )
    assert not any(f.startswith("scripts/") for f in ran), ran
    assert len(ran) <= MOST_FILES_A_RUN_RUNS, ran
