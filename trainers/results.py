"""The results folder, the one boundary between training and scripts: where each run's folder is
(``<results_dir>/<experiment>/<task>/<optimizer label>/seed=<s>/``, the label named from the
run's config), what its status can be, and its files (config.yaml, meta.json, steps.csv,
evals.csv), written atomically.

Rows are streamed to ``<name>.part`` files as they come (nothing accumulates in memory) and
renamed into place when the run ends, so a reader never sees a half-written file. A resumed run
cuts the ``.part`` files back to its checkpoint's step and appends from there."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

STEP_FIELDS = ["step", "epoch", "lr", "loss", "loss_base", "accuracy", "wall_time", "step_time"]

# What ``steps.csv`` means, recorded in meta.json. 2: ``loss_base`` and ``accuracy`` at the
# deployed weights before the update (1, unrecorded: after it for Overshoot, before for the rest).
# Runs of another version are never resumed, skipped as done or mixed into a report with these.
RESULTS_VERSION = 2

# Keys that may differ between a run and its re-launch (where it runs, not what it computes).
RELAUNCH_KEYS = (
    "force",
    "any_compute",
    "kernels",  # float32 runs compare how they computed instead (compute_change)
    "vectorize",  # a member of a vectorized job is the same run as its separate run
    "members.seed",
    "members.overshoot",
    "members.lr.sgd",
    "members.lr.adam",
    "members.lr_scale",
    "members.apart",
    "results_dir",
    "data.root",
    "data.download",
    "trainer.enable_progress_bar",
)

SEED_PREFIX = "seed="
ARCHIVE = "archive"  # an experiment's archive: <results_dir>/<experiment>/archive/


class Status(StrEnum):
    """A run's ``meta.json`` status. Finished and diverged runs have ended and enter reports;
    the others resume when their command is run again."""

    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


ENDED = frozenset({Status.FINISHED, Status.DIVERGED})  # members equal their strings


@dataclass(frozen=True)
class RunPath:
    """Where one run's folder is: experiment / task / optimizer label / seed."""

    experiment: str
    task: str
    optimizer: str
    seed: int

    def folder(self, results_dir: Path | str) -> Path:
        return (
            Path(results_dir)
            / self.experiment
            / self.task
            / self.optimizer
            / f"{SEED_PREFIX}{self.seed}"
        )

    @classmethod
    def parse(cls, folder: Path) -> RunPath:
        """The run whose folder is ``folder`` (a path that ``folder()`` built)."""
        seed = folder.name.removeprefix(SEED_PREFIX)
        if seed == folder.name or not seed.isdigit() or len(folder.parts) < 4:
            raise ValueError(f"{folder} is not a run folder (.../<task>/<optimizer>/seed=<s>)")
        return cls(
            folder.parent.parent.parent.name,
            folder.parent.parent.name,
            folder.parent.name,
            int(seed),
        )


def run_folders(root: Path) -> Iterator[Path]:
    """Every run folder under ``root`` (a results_dir or one experiment in it), sorted."""
    return (p for p in sorted(root.glob(f"**/{SEED_PREFIX}*")) if p.is_dir())


@contextmanager
def folder_lock(directory: Path) -> Iterator[bool]:
    """Holds the folder's lock while the run trains; yields False if another process holds it
    (parallel jobs of a sweep, e.g. the same CM run listed once per γ of a grid)."""
    lock = FileLock(directory / ".lock")
    try:
        lock.acquire(blocking=False)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def stale(meta: dict[str, Any]) -> str | None:
    """Why a run's results cannot stand beside this version's, or None if they can."""
    version = meta.get("results_version", 1)
    if version == RESULTS_VERSION:
        return None
    return f"results version {version}, not {RESULTS_VERSION} (measured by another harness)"


def flat_settings(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A config's settings as ``{"a.b.c": value}``: how two runs' configs are compared."""
    if not isinstance(tree, dict):
        return {prefix.removesuffix("."): tree}
    nested = (flat_settings(sub, f"{prefix}{key}.") for key, sub in tree.items())
    return {k: v for flat in nested for k, v in flat.items()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename. The
    file takes the user's umask like any other (a temporary file is made 0600, which on a shared
    file system would hide results from the group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The ``meta.json`` of the run in ``directory``, or None if it has none."""
    path = directory / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _open_part(path: Path, fields: list[str]) -> tuple[IO[str], csv.DictWriter[str]]:
    """A streaming CSV writer on ``path`` (kept open by the caller), header written."""
    f = open(path, "w", newline="")  # noqa: SIM115 - kept open for streaming
    writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    return f, writer


class RunResults:
    """The results folder of one run. ``write=False`` (DDP ranks other than 0) writes nothing."""

    def __init__(self, directory: Path, write: bool = True) -> None:
        self.dir = directory
        self.write = write
        self.meta: dict[str, Any] = {}
        self._files: dict[str, tuple[IO[str], csv.DictWriter[str]]] = {}

    def start(self, config_yaml: str, meta: dict[str, Any]) -> None:
        if not self.write:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / "config.yaml", config_yaml)
        self.update_meta(status=Status.RUNNING, results_version=RESULTS_VERSION, **meta)

    def update_meta(self, **values: Any) -> None:
        if not self.write:
            return
        self.meta.update(values)
        write_atomic(self.dir / "meta.json", json.dumps(self.meta, indent=2, default=str) + "\n")

    def resume(self, step: int, **meta: Any) -> None:
        """Continue an interrupted run from its checkpoint at ``step``: drop later rows."""
        if not self.write:
            return
        self.meta = read_meta(self.dir) or {}
        for part in self.dir.glob("*.part"):
            with open(part, newline="") as done:
                rows = list(csv.DictReader(done))
                fields = list(rows[0]) if rows else None
            if fields is None:
                part.unlink()
                continue
            opened = _open_part(part.with_suffix(".tmp"), fields)
            opened[1].writerows(r for r in rows if int(r["step"]) <= step)
            os.replace(part.with_suffix(".tmp"), part)
            self._files[part.name.removesuffix(".part")] = opened
        resumes = [*self.meta.get("resumed_at_steps", []), step]
        self.update_meta(status=Status.RUNNING, resumed_at_steps=resumes, **meta)

    def append(self, name: str, row: dict[str, Any], fields: list[str]) -> None:
        if not self.write:
            return
        if name not in self._files:
            self._files[name] = _open_part(self.dir / f"{name}.part", fields)
        self._files[name][1].writerow(row)

    def sync(self) -> None:
        """Push streamed rows to the OS (called before a checkpoint is written)."""
        for f, _ in self._files.values():
            f.flush()

    def close(self, status: Status, **meta: Any) -> None:
        """End without finishing: the ``.part`` files stay for a resumed run."""
        for f, _ in self._files.values():
            f.close()
        self._files.clear()
        self.update_meta(status=status, **meta)

    def finish(self, status: Status, **meta: Any) -> None:
        if not self.write:
            return
        for name, (f, _) in self._files.items():
            f.close()
            os.replace(self.dir / f"{name}.part", self.dir / name)
        self._files.clear()
        self.update_meta(status=status, **meta)


# Names a run is filed under, from its config.
def uses_overshoot(cfg: DictConfig) -> bool:
    """Whether ``optimizer.overshoot`` (γ) changes what this run computes.

    True in two-model mode and for every optimizer config whose factory reads γ (SGDO, AdamO,
    the wrapper around any optimizer), so a new Overshoot config needs no registration.
    """
    factory = OmegaConf.to_container(cfg.optimizer.factory, resolve=False)
    return bool(cfg.two_models) or "${optimizer.overshoot}" in str(factory)


def optimizer_label(cfg: DictConfig) -> str:
    """Folder name of the optimizer: its name, γ where Overshoot is used, the mode, and with
    ``lr_in_label`` its learning rate (a grid of rates files each apart)."""
    name = str(cfg.optimizer.name)
    rate = f"_lr{cfg.task[cfg.optimizer.family].lr:g}" if cfg.get("lr_in_label") else ""
    if not uses_overshoot(cfg):
        return f"{name}{rate}"
    mode = "_two_models" if cfg.two_models else ""
    return f"{name}{mode}_g{cfg.optimizer.overshoot:g}{rate}"


def run_folder(cfg: DictConfig) -> Path:
    """``<results_dir>/<experiment>/<task>/<optimizer label>/seed=<s>``."""
    path = RunPath(str(cfg.experiment_name), str(cfg.task.name), optimizer_label(cfg), cfg.seed)
    return path.folder(cfg.results_dir)
