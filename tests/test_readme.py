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
    # At initialisation the loss on 10 classes is ln 10 ≈ 2.30 (an optimizer that never stepped
    # would print that); 100 steps fit the 512 random labels to 0.05 (AdamW) and 0.25 (AdamO).
    assert all(0.0 < float(line.split()[1]) < 0.5 for line in lines)
