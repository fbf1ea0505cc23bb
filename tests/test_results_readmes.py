"""Each committed results folder's README says how to regenerate it: its run commands pass
main.py's checks (choices, composition, validation) and its report writes into the folder; a
folder that ships an archive re-derives every table from it, byte for byte."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import main
from trainers.cli import UsageError

RESULTS = Path(main.__file__).resolve().parent / "results"
READMES = sorted(RESULTS.glob("*/README.md"))


def commands(readme: Path) -> list[list[str]]:
    """The shell commands in the README's bash blocks, split as the shell would."""
    blocks = re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_results_readme_commands_compose_and_report_into_their_folder(readme: Path) -> None:
    lines = commands(readme)
    runs = [c[c.index("main.py") + 1 :] for c in lines if "main.py" in c]
    reports = [c[c.index(script) + 1 :] for c in lines for script in DERIVE if script in c]
    assert runs and reports, readme
    for argv in runs:
        try:
            main.checked_args(argv)
        except UsageError as e:  # composes and validates; only its data is not on this machine
            if "missing data file" not in str(e):
                raise
    folder = f"results/{readme.parent.name}"
    for report in reports:  # from the folder's runs or its archives, into the folder
        assert report[0] == folder or report[0].startswith(f"{folder}/"), report
        assert report[report.index("--out") + 1].startswith(folder)


RUN = re.compile(r"/(seed=|members-)")  # run folders: git-ignored, not tables
# What turns runs into a folder's tables; the last two read committed tables, not archives:
# cross_task.py the tasks' tuned tables, members_vs_separate.py two reports' per-seed crossings.
DERIVE = (
    "scripts/report.py",
    "scripts/tune.py",
    "scripts/cross_task.py",
    "scripts/members_vs_separate.py",
)
FROM_TABLES = DERIVE[2:]
ARCHIVED = [r for r in READMES if any(r.parent.rglob("archive/runs.parquet"))]
# Folders whose tables re-derive from what is committed: an archive, or other folders' tables.
DERIVED = [r for r in READMES if r in ARCHIVED or any(s in r.read_text() for s in FROM_TABLES)]


def test_every_results_folder_ships_an_archive_or_says_why_not() -> None:
    for readme in READMES:
        assert readme in ARCHIVED or "no archive" in readme.read_text(), readme.parent.name
    assert ARCHIVED, "no committed archive: the byte-for-byte test below would test nothing"
    assert set(DERIVED) > set(ARCHIVED), "no folder derived from committed tables alone"


def derivations(readme: Path) -> list[list[str]]:
    """The README's commands that derive tables (the report, or tune.py for a tuning grid)
    from committed archives, or a FROM_TABLES script from committed tables, as script and
    arguments: the first one writing each folder (the
    re-derive block comes first; a later one into that folder is a step of redoing the runs);
    at least one."""
    found: dict[str, list[str]] = {}
    for command in commands(readme):
        script = next((s for s in DERIVE if s in command), None)
        source = command[command.index(script) + 1] if script is not None else ""
        if script in FROM_TABLES or source.endswith("/archive"):
            argv = command[command.index(script) + 1 :]
            found.setdefault(argv[argv.index("--out") + 1], [script, *argv])
    assert found, f"{readme}: no command derives tables from what is committed"
    return list(found.values())


@pytest.mark.slow
@pytest.mark.parametrize("readme", DERIVED, ids=lambda p: p.parent.name)
def test_committed_tables_rederive_from_the_archive_byte_for_byte(
    readme: Path, tmp_path: Path
) -> None:
    """Each of the README's commands that derive tables from the committed archives (or
    tables) writes every table it wrote again, byte for byte."""
    from scripts.cross_task import main as cross_task_main
    from scripts.members_vs_separate import main as members_main
    from scripts.report import main as report_main
    from scripts.tune import main as tune_main

    mains = dict(zip(DERIVE, (report_main, tune_main, cross_task_main, members_main), strict=True))

    for n, (script, *argv) in enumerate(derivations(readme)):
        out = RESULTS.parent / argv[argv.index("--out") + 1]
        into = tmp_path / str(n)
        argv[argv.index("--out") + 1] = str(into)
        argv = [str(RESULTS.parent / a) if a.startswith("results/") else a for a in argv]
        mains[script](argv)
        committed = {
            p.relative_to(out): p.read_bytes()
            for p in out.rglob("*")
            if p.suffix in (".csv", ".md", ".tex", ".txt")
            and p.name != "README.md"
            and not RUN.search(str(p))
        }
        assert committed, out
        for name, text in committed.items():
            assert (into / name).read_bytes() == text, name
