"""What running a command again does with the folder it ran in: skip a run that ended, resume one
that stopped, refuse one with other settings, and let only one process write the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainers.checkpoints import last_checkpoint
from trainers.checks import resolved_precision
from trainers.compute import compute_change, planned_compute
from trainers.labels import uses_overshoot
from trainers.results import ENDED, RELAUNCH_KEYS, read_meta, stale


def ended_summary(directory: Path) -> dict[str, Any] | None:
    """The summary of an ended run in ``directory``, or None if it has not ended."""
    meta = read_meta(directory)
    if meta is None or meta.get("status") not in ENDED:
        return None
    return {
        "status": f"{meta['status']} (already; force=true to re-run)",
        "steps": meta.get("steps"),
        "results": str(directory),
        "logs": meta.get("logs", "?"),
        **meta.get("final", {}),
    }


def resume_point(directory: Path) -> Path | None:
    """The checkpoint of a run that started and did not end, if any."""
    ckpt = last_checkpoint(directory)
    return ckpt if ckpt.is_file() and read_meta(directory) is not None else None


def logger_version(meta: dict[str, Any]) -> int | None:
    """The logger's version folder a run wrote (a resumed run continues it), if any."""
    logs = meta.get("logs")
    version = Path(logs).name.removeprefix("version_") if logs else ""
    return int(version) if version.isdigit() else None


def refuse_other_settings(cfg: DictConfig, directory: Path) -> None:
    """Refuse a run whose folder holds a run of other settings or of another results version,
    or a float32 run computed another way (kernels, threads, device), unless ``force``."""
    meta = read_meta(directory)
    if cfg.force or meta is None:
        return
    change = stale(meta) or config_change(directory, cfg)
    if change is not None:
        raise ValueError(
            f"{directory} holds a run with other settings ({change}); "
            "use another experiment_name, or force=true to replace it"
        )
    float64 = resolved_precision(str(cfg.precision), str(cfg.trainer.accelerator)) == "64-true"
    change = None if float64 or cfg.any_compute else compute_change(meta, planned_compute(cfg))
    if change is not None:
        raise ValueError(
            f"{directory} holds a float32 run {change}, and float32 numbers differ between "
            "the two (a crossing moves as far as with another seed): any_compute=true counts "
            "it as done, force=true replaces it, or use another experiment_name"
        )


def config_change(directory: Path, cfg: DictConfig) -> str | None:
    """The first setting in which ``cfg`` differs from the run stored in ``directory``, if any.

    Names (job_name), where logs go (``logger.*``, whose name follows job_name) and a γ that the
    optimizer does not use are not settings of the run: a grid over γ × optimizers repeats CM
    for every γ, and the repeats are the same run. Precision is compared as what it resolves
    to, so a folder written when the trainer config held it still matches.
    """
    stored_path = directory / "config.yaml"
    if not stored_path.is_file():
        return None
    ignored = {*RELAUNCH_KEYS, "job_name", "precision", "trainer.precision"}
    if not uses_overshoot(cfg):
        ignored.add("optimizer.overshoot")
    stored = _flat(OmegaConf.to_container(OmegaConf.load(stored_path)))
    current = _flat(OmegaConf.to_container(cfg, resolve=True))
    there, now = _precision(stored), _precision(current)
    if there != now:
        return f"precision: {there!r} there, {now!r} now"
    for key in sorted(stored.keys() & current.keys()):  # keys added by newer code don't count
        if key not in ignored and not key.startswith("logger.") and stored[key] != current[key]:
            return f"{key}: {stored[key]!r} there, {current[key]!r} now"
    return None


def _precision(flat: dict[str, Any]) -> str:
    """The precision a flattened config runs in; older configs set it in ``trainer``."""
    given = flat.get("precision") or flat.get("trainer.precision") or "auto"
    return resolved_precision(str(given), str(flat.get("trainer.accelerator", "auto")))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.removesuffix("."): tree}
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
