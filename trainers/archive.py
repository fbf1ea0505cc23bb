"""The results folder in compact form: every ended run of a grid in three Parquet tables that
pandas reads as they are, small enough to commit and to bring back from another machine.

``runs.parquet``: one row per run, its key (experiment, task, optimizer, seed), status, and its
``config.yaml`` and ``meta.json`` verbatim. ``steps.parquet``: the key, ``step`` and
``loss_base`` (the loss at the weights a user deploys, which every table and figure reads) in the
dtype the run recorded (float32, or float64 for ``precision=high``), so nothing is rounded. The
loss at the held weights (``loss``: an Overshoot run's overshot weights) is not archived: no table
reads it, it was a third of a steps file, and it stays in the run folder's ``steps.csv`` and its
TensorBoard log. ``evals.parquet``: the key and each evaluation. Parquet because it is columnar
and typed (one float32 is four bytes, not CSV's twenty characters), compressed per column
(floats split by byte and zstd'd, steps delta-coded), and read by pandas, pyarrow, polars or
DuckDB without this code.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from filelock import FileLock

from trainers.results import (
    ARCHIVE,
    ENDED,
    RELAUNCH_KEYS,
    STEP_FIELDS,
    RunPath,
    Status,
    flat_settings,
    folder_lock,
    read_meta,
    stale,
    write_atomic,
)

KEY = ["experiment", "task", "optimizer", "seed"]
HELD_ELSEWHERE = "held by another process (still training)"  # why a run is not read yet
# Settings that say where or how a run was filed, not what it computed.
NOT_SETTINGS = {*RELAUNCH_KEYS, "job_name", "experiment_name"}
FILES = ("runs.parquet", "steps.parquet", "evals.parquet")
STEP_COLUMNS = ["step", "loss_base"]  # what an archive keeps of steps.csv


@dataclass
class RunRecord:
    """One ended run, from a run folder or an archive: what reports and relaunches need."""

    key: RunPath
    config_yaml: str
    meta: dict[str, Any]
    steps: pd.DataFrame  # step, loss_base (float64; float32 runs' values are float32s)
    evals: pd.DataFrame  # stage, epoch, step, loss, accuracy
    source: str

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """``config_yaml`` parsed once (libyaml's parser where present: reports read every
        record's config, and the pure-Python parser took most of a tuning table's time)."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(self.config_yaml, Loader=loader) or {}

    @property
    def name(self) -> str:
        k = self.key
        return f"{k.experiment}/{k.task}/{k.optimizer}/seed={k.seed}"


def is_archive(path: Path) -> bool:
    return (path / FILES[0]).is_file()


def read_folder(folder: Path) -> RunRecord | str:
    """The ended run in ``folder``, or why it cannot be read as one."""
    meta = read_meta(folder)
    if meta is None:
        return "no meta.json"
    status = meta.get("status", "unknown")
    if status in ENDED and stale(meta):
        return str(stale(meta))
    steps_csv = folder / "steps.csv"
    if status not in ENDED or not steps_csv.is_file():
        if status == Status.RUNNING and (folder / ".lock").is_file():
            with folder_lock(folder) as free:
                if not free:
                    return f"status {status}, {HELD_ELSEWHERE}"
        return f"status {status}"
    try:
        steps = pd.read_csv(steps_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        return f"steps.csv unreadable ({str(e).splitlines()[0]})"
    if not {"step", "loss_base"} <= set(steps.columns):
        return "steps.csv lacks its step and loss_base columns (cut or corrupted)"
    if meta.get("steps") is not None and len(steps) != meta["steps"]:
        return f"steps.csv holds {len(steps)} steps where meta.json records {meta['steps']}"
    evals_csv = folder / "evals.csv"
    evals = pd.read_csv(evals_csv) if evals_csv.is_file() else pd.DataFrame()
    return RunRecord(
        RunPath.parse(folder),
        (folder / "config.yaml").read_text(),
        meta,
        steps.reindex(columns=STEP_COLUMNS),
        evals,
        str(folder),
    )


def float32_exact(values: pd.Series) -> bool:
    """Whether every value is a float32 (a float32 run's losses, written as doubles)."""
    x = values.to_numpy(dtype="float64")
    return bool(np.array_equal(x.astype("float32").astype("float64"), x, equal_nan=True))


def read_archive(path: Path) -> list[RunRecord]:
    runs = pd.read_parquet(path / "runs.parquet")
    steps = pd.read_parquet(path / "steps.parquet")
    evals = pd.read_parquet(path / "evals.parquet")
    step_groups = dict(list(steps.groupby(KEY, sort=False, observed=True)))
    eval_groups = dict(list(evals.groupby(KEY, sort=False, observed=True)))
    records = []
    for row in runs.itertuples(index=False):
        key = (row.experiment, row.task, row.optimizer, row.seed)
        meta = json.loads(row.meta_json)
        own = step_groups[key].reset_index(drop=True)
        evals_of = eval_groups.get(key, pd.DataFrame(columns=KEY))
        records.append(
            RunRecord(
                RunPath(row.experiment, row.task, row.optimizer, int(row.seed)),
                row.config_yaml,
                meta,
                own[STEP_COLUMNS].astype({"step": "int64", "loss_base": "float64"}),
                evals_of.drop(columns=KEY).reset_index(drop=True),
                str(path),
            )
        )
    return records


@contextmanager
def archive_lock(out: Path) -> Iterator[None]:
    """Held while an archive is read, merged and written: two multiruns of one experiment that
    end together (or a pack beside one) would otherwise each write what they read, and the
    last to write would drop the other's runs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / f".{out.name}.lock"):
        yield


UNPACKED = "unpacked_from"  # meta.json's note of the archive a run folder was restored from


def as_trained(meta: dict[str, Any]) -> dict[str, Any]:
    """A run's meta.json as its training wrote it: an archive re-packed from restored folders
    holds the same bytes wherever it was restored."""
    return {k: v for k, v in meta.items() if k != UNPACKED}


def write_archive(records: list[RunRecord], out: Path) -> None:
    """``records`` as an archive in ``out`` (each file written atomically)."""
    keys = [_key(r) for r in records]
    runs = pd.DataFrame(
        [
            {
                **dict(zip(KEY, k, strict=True)),
                "status": r.meta.get("status"),
                "config_yaml": r.config_yaml,
                "meta_json": json.dumps(as_trained(r.meta), indent=2, default=str) + "\n",
            }
            for k, r in zip(keys, records, strict=True)
        ],
        columns=[*KEY, "status", "config_yaml", "meta_json"],
    )
    exact = all(float32_exact(r.steps["loss_base"]) for r in records)
    wide = "float32" if exact else "float64"  # the dtype the runs recorded: nothing rounded
    parts = [
        r.steps[STEP_COLUMNS].astype({"loss_base": wide}).assign(**dict(zip(KEY, k, strict=True)))
        for k, r in zip(keys, records, strict=True)
    ]
    steps = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=STEP_COLUMNS)
    keyed = [
        r.evals.assign(**dict(zip(KEY, k, strict=True))) for k, r in zip(keys, records, strict=True)
    ]
    evals = pd.concat(keyed, ignore_index=True) if keyed else pd.DataFrame(columns=KEY)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "runs.parquet", _parquet(runs))
    typed = _typed_steps(steps, wide)
    write_atomic(out / "steps.parquet", _parquet(typed, floats=["loss_base"]))
    write_atomic(out / "evals.parquet", _parquet(evals))


def _key(record: RunRecord) -> tuple[str, str, str, int]:
    k = record.key
    return (k.experiment, k.task, k.optimizer, k.seed)


def _typed_steps(steps: pd.DataFrame, wide: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **{k: steps[k].astype("category") for k in KEY[:3]},
            "seed": steps["seed"].astype("int32"),
            "step": steps["step"].astype("int32"),
            "loss_base": steps["loss_base"].astype(wide),
        }
    )


def _parquet(frame: pd.DataFrame, floats: list[str] | None = None) -> bytes:
    """Parquet bytes, zstd; ``floats`` split by byte (their exponent and leading mantissa bytes
    repeat from step to step, which zstd then finds), integer columns delta-coded."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    encodings = {c: "BYTE_STREAM_SPLIT" for c in floats or []}
    encodings.update({c: "DELTA_BINARY_PACKED" for c in ("seed", "step") if c in frame and floats})
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        compression_level=19,
        use_dictionary=[c for c in frame.columns if c not in encodings],
        column_encoding=encodings or None,
    )
    return buffer.getvalue()


class MergeError(ValueError):
    """Two sources hold the same run (task, optimizer, seed) with other curves or settings."""


def check_same(a: RunRecord, b: RunRecord) -> None:
    """Raise MergeError unless ``a`` and ``b`` are one run: equal curves and settings."""
    why = None
    steps_a, steps_b = a.steps["step"].to_numpy(), b.steps["step"].to_numpy()
    if not np.array_equal(steps_a, steps_b):
        why = f"{len(steps_a)} against {len(steps_b)} steps"
    elif not np.array_equal(a.steps["loss_base"], b.steps["loss_base"], equal_nan=True):
        at = np.flatnonzero(~np.isclose(a.steps["loss_base"], b.steps["loss_base"], 0, 0, True))
        why = f"loss_base differs from step {int(steps_a[at[0]])}"
    else:
        settings = [flat_settings(r.config) for r in (a, b)]
        for key in sorted(settings[0].keys() & settings[1].keys()):
            if key not in NOT_SETTINGS and settings[0][key] != settings[1][key]:
                why = f"{key}: {settings[0][key]!r} against {settings[1][key]!r}"
                break
    if why is not None:
        raise MergeError(
            f"{a.name} in {a.source} and {b.name} in {b.source} are not the same run ({why}); "
            "report them apart or leave one out"
        )


def unpack(record: RunRecord, folder: Path) -> None:
    """Write ``record`` as the run folder ``folder`` (config.yaml and meta.json as they were,
    steps.csv and evals.csv with the archived columns): a relaunch finds it ended."""
    steps = record.steps.astype({"loss_base": "float64"})
    columns = [c for c in STEP_FIELDS if c in steps]
    write_atomic(folder / "config.yaml", record.config_yaml)
    write_atomic(folder / "steps.csv", steps[columns].to_csv(index=False))
    write_atomic(folder / "evals.csv", record.evals.to_csv(index=False))
    meta = {**record.meta, UNPACKED: record.source}
    write_atomic(folder / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")


@functools.cache
def _archived(path: Path, modified: int) -> dict[RunPath, RunRecord]:
    return {r.key: r for r in read_archive(path)}


def restore(folder: Path) -> bool:
    """Unpack the run of ``folder`` from its experiment's archive (``<experiment>/archive``)
    where the folder holds no run: grids grow from committed archives without re-running them.
    True if it did."""
    archive = folder.parents[2] / ARCHIVE
    if read_meta(folder) is not None or not is_archive(archive):
        return False
    runs = _archived(archive, (archive / FILES[0]).stat().st_mtime_ns)
    record = runs.get(RunPath.parse(folder))
    if record is None:
        return False
    unpack(record, folder)
    return True
