"""Run the harness from tests: ``config`` composes a run in-process, as main.py would, for tests
that call ``train`` directly; ``run_main`` runs main.py as a user does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import main
from trainers.cli import CONFIGS

MAIN = str(Path(main.__file__).resolve())


def config(tmp_path: Path, overrides: list[str], experiment: str = "peers") -> DictConfig:
    """Tiny-run settings (trainer=debug, results under ``tmp_path``) plus ``overrides``."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "config",
            [
                "trainer=debug",
                f"results_dir={tmp_path / 'results'}",
                f"experiment_name={experiment}",
                *overrides,
            ],
        )
    for key in ("optimizer.factory.compile_mode", "optimizer.factory.inner.compile_mode"):
        if OmegaConf.select(cfg, key, default=False) is not False:
            OmegaConf.update(cfg, key, None)  # HeavyBall uncompiled: seconds, not minutes, here
    return cfg


def main_config(argv: list[str], results: Path, data_root: Path | str) -> DictConfig:
    """The config ``python main.py ARGV`` runs (one run), through main.py's own checks
    (reference flags translated, choices, composition, validation), results under ``results``:
    in this process, seconds faster than a new interpreter."""
    where = [f"results_dir={results}", f"data.root={data_root}"]
    args = main.checked_args([*argv, *where])
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", [a for a in args if not a.startswith("-")])


def run_main(
    args: list[str],
    cwd: Path,
    data_root: Path | str,
    timeout: float | None = None,
    environ: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python main.py ARGS`` in ``cwd`` with OVERSHOOT_DATA=``data_root`` (in ``environ``,
    else this process's environment); it must succeed."""
    env = {**(os.environ if environ is None else environ), "OVERSHOOT_DATA": str(data_root)}
    proc = subprocess.run(
        [sys.executable, MAIN, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def main_refuses(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """``python main.py ARGS`` in ``cwd`` must exit with status 2; returns its stderr lines."""
    proc = subprocess.run(
        [sys.executable, MAIN, *args], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()


def stop_after_checkpoint(proc: subprocess.Popen[str], ckpt: Path, sig: signal.Signals) -> None:
    """Send ``sig`` as soon as a checkpoint newer than the current one is on disk."""
    before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
    deadline = time.monotonic() + 120
    while not (ckpt.exists() and ckpt.stat().st_mtime_ns != before):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.wait(timeout=120)
