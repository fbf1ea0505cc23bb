"""The benchmarks as a user runs them, where that is quick: a failure says the child's own line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_time_null_without_data_says_the_childs_line_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "OVERSHOOT_DATA": str(tmp_path / "empty")}
    bench = [sys.executable, str(ROOT / "scripts" / "bench_time_null.py"), "--repeats", "1"]
    proc = subprocess.run(bench, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        "bench_time_null.py: error: main.py -m task=mlp_energy seed=0,1,2,3,4 "
        "optimizer=sgd_momentum,sgdo failed: main.py: error: no job of this multirun finds its "
        f"data: missing data file {tmp_path / 'empty'}/"
    )
