"""Where datasets live: config ``data.root``, else env ``OVERSHOOT_DATA``, else ``./data_cache``."""

from __future__ import annotations

import os
from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing and cannot be downloaded; the message says how to supply it."""


def resolve_root(root: str | None) -> Path:
    value = root or os.environ.get("OVERSHOOT_DATA") or "data_cache"
    return Path(value).expanduser().resolve()


def find_first(root: Path, candidates: list[str], how: str) -> Path:
    """Return the first existing ``root/candidate``, or raise naming what was looked for."""
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    raise DataNotFoundError(
        f"missing data file {root / candidates[0]}; {how} "
        "(set data.root=DIR or OVERSHOOT_DATA=DIR to the folder that holds it)"
    )
