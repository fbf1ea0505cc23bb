"""scripts/members_vs_separate.py: per-seed crossings of two reports, side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scripts.members_vs_separate import main


def report(folder: Path, per_seed: dict[str, str], threshold: float = 0.5) -> Path:
    """A report's steps_to_threshold.csv: one task, fractions 0.5 and 0.95, the given per_seed
    text per optimizer."""
    rows = [
        {
            "task": "mlp_housing",
            "optimizer": opt,
            "fraction": fraction,
            "threshold": threshold * fraction,
            "savings": 0.1 if opt != "adamw" else 0.0,
            "per_seed": text,
        }
        for opt, text in per_seed.items()
        for fraction in (0.5, 0.95)
    ]
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "steps_to_threshold.csv", index=False)
    return folder


SEPARATE = {"adamw": "10:100 20:120 30:censored", "adamo_g3": "10:90 20:95 30:110"}


def test_a_report_against_itself_crosses_at_the_same_step_on_every_seed(tmp_path: Path) -> None:
    same = report(tmp_path / "a", SEPARATE)
    main([str(same), str(same), "--out", str(tmp_path / "out")])
    joined = pd.read_csv(tmp_path / "out" / "crossings.csv")
    assert len(joined) == 2 * 2 * 3  # optimizers × fractions × seeds
    assert (joined["difference"].dropna() == 0).all()
    assert joined["difference"].isna().sum() == 2  # adamw seed 30 never reaches T, both sides
    md = (tmp_path / "out" / "crossings.md").read_text()
    assert "| adamo_g3 | 0.95 | 0.475 / 0.475 | 3 of 3 | 0 | 0 / 0 (95) |" in md
    assert "| adamw | 0.5 | 0.25 / 0.25 | 2 of 3 | 0 |" in md


def test_a_moved_crossing_and_a_seed_only_one_side_reaches_are_counted(tmp_path: Path) -> None:
    separate = report(tmp_path / "a", SEPARATE)
    members = report(
        tmp_path / "b", {"adamw": "10:100 20:120 30:130", "adamo_g3": "10:90 20:102 30:107"}, 0.6
    )
    main([str(members), str(separate), "--out", str(tmp_path / "out")])
    joined = pd.read_csv(tmp_path / "out" / "crossings.csv").set_index(["optimizer", "seed"])
    assert joined.loc[("adamo_g3", 20), "difference"].tolist() == [7.0, 7.0]
    assert joined.loc[("adamo_g3", 30), "difference"].tolist() == [-3.0, -3.0]
    md = (tmp_path / "out" / "crossings.md").read_text()
    assert "| adamo_g3 | 0.5 | 0.25 / 0.3 | 1 of 3 | 0 | 3 / 7 (95) | 10.0 % → 10.0 % |" in md
    assert "| adamw | 0.5 | 0.25 / 0.3 | 2 of 3 | 1 | 0 / 0 (110) |" in md


def test_a_folder_without_a_report_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    separate = report(tmp_path / "a", SEPARATE)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "nowhere"), str(separate), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"members_vs_separate.py: error: no steps_to_threshold.csv in {tmp_path}/nowhere"
    assert not (tmp_path / "out").exists()
