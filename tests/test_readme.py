"""The README's demo code block runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path


def test_readme_demo_runs_and_reports_both_optimizers() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["AdamW", "AdamO"]
    assert all(0.0 < float(line.split()[1]) < 2.31 for line in lines)
