"""Each committed results folder's README says how to regenerate it: its run commands pass
main.py's checks (choices, composition, validation) and its report writes into the folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import main

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
    reports = [c[c.index("scripts/report.py") + 1 :] for c in lines if "scripts/report.py" in c]
    assert runs and reports, readme
    for argv in runs:
        main.checked_args(argv)
    folder = f"results/{readme.parent.name}"
    for report in reports:
        assert report[0] == folder and report[report.index("--out") + 1] == folder
