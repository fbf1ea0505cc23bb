"""Compose a run's config in-process, as main.py would, for tests that call ``train`` directly."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import main


def config(tmp_path: Path, overrides: list[str], experiment: str = "peers") -> DictConfig:
    """Tiny-run settings (trainer=debug, results under ``tmp_path``) plus ``overrides``."""
    with initialize_config_dir(config_dir=str(main.CONFIGS), version_base="1.3"):
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
