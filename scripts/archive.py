"""Pack a grid's runs into an archive (trainers/archive.py), or unpack one into run folders.

    python scripts/archive.py pack results/<experiment> [MORE SOURCES ...] [--out DIR] [--replace]
    python scripts/archive.py unpack results/<experiment>/archive [--results-dir results]

``pack`` merges results folders and archives (each run once; the same run with other curves or
settings is refused in one line, or with ``--replace`` the earlier source's stands) into
``--out`` (default ``<first source>/archive``), keeping what an archive already there holds.
``unpack`` writes each archived run's folder where its experiment's runs go, so a relaunch counts
it as done; a relaunch also restores a run from its experiment's archive by itself
(``<results_dir>/<experiment>/archive``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.collect import read_sources
from trainers.archive import (
    ARCHIVE,
    MergeError,
    RunRecord,
    archive_lock,
    check_same,
    is_archive,
    read_archive,
    read_folder,
    unpack,
    write_archive,
)

ROOT = Path(__file__).resolve().parents[1]


def pack(
    sources: list[Path], out: Path, replace: bool = False
) -> tuple[list[RunRecord], list[str]]:
    """Archive every ended run of ``sources`` (and of an archive already in ``out``) in ``out``,
    under its lock, and none where there is none; returns the runs and those left out, with
    why. With ``replace`` a run of an earlier source replaces the same run with other curves in
    a later one (``out`` comes last). The end of a multirun packs its experiment this way too."""
    with archive_lock(out):
        merged = [*sources, out] if is_archive(out) and out not in sources else sources
        records, problems = read_sources(merged, replace)
        if records:
            write_archive(records, out)
    return records, problems


def unpack_all(archive: Path, results_dir: Path) -> list[Path]:
    """Write each run of ``archive`` as its folder under ``results_dir``; a folder that holds
    the same run already stays, one that holds another run is refused (MergeError)."""
    written = []
    for record in read_archive(archive):
        folder = record.key.folder(results_dir)
        there = read_folder(folder) if folder.is_dir() else None
        if isinstance(there, RunRecord):
            check_same(there, record)
            continue
        unpack(record, folder)
        written.append(folder)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="results folders and archives → one archive")
    packing.add_argument("sources", type=Path, nargs="+")
    packing.add_argument("--out", type=Path)
    packing.add_argument(
        "--replace",
        action="store_true",
        help="a run of an earlier source replaces the same run with other curves in a later "
        "one (--out last), e.g. one trained again with force=true; without it that is refused",
    )
    unpacking = commands.add_parser("unpack", help="an archive → run folders")
    unpacking.add_argument("archive", type=Path)
    unpacking.add_argument("--results-dir", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    for source in args.sources if args.command == "pack" else [args.archive]:
        if not source.is_dir():  # before the lock, which would create its folder
            parser.exit(2, f"{parser.prog}: error: results folder {source} does not exist\n")
    try:
        if args.command == "pack":
            out = args.out or args.sources[0] / ARCHIVE
            records, problems = pack(args.sources, out, args.replace)
            for problem in problems:
                print(f"left out: {problem}")
            if not records:
                parser.exit(
                    2,
                    f"{parser.prog}: error: no ended runs in {' '.join(map(str, args.sources))}\n",
                )
            size = sum(p.stat().st_size for p in out.iterdir() if p.suffix == ".parquet")
            print(f"archive: {out} ({len(records)} runs, {size / 1e6:.2f} MB)")
        else:
            if not is_archive(args.archive):
                parser.exit(2, f"{parser.prog}: error: {args.archive} holds no runs.parquet\n")
            written = unpack_all(args.archive, args.results_dir)
            print(f"unpacked {len(written)} runs under {args.results_dir}")
    except MergeError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
    main()
