"""A command's plan and each job's claim, read directly (no training): what a vectorized job
trains when a member's folder is held by another process, when it resumes (every member it
held, or none), and with ``force``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.launch import config
from trainers.fit.trainer import last_checkpoint
from trainers.plan import GROUP_FILE, Job, claim, make_plan
from trainers.results import folder_lock

BUSY = "running in another process; skipped"
SEEDS = [0, 1, 2]


def members(tmp_path: Path, *extra: str) -> DictConfig:
    return config(tmp_path, ["vectorize=true", f"members.seed={SEEDS}".replace(" ", ""), *extra])


def job_of(cfg: DictConfig) -> Job:
    (job,) = make_plan(cfg)
    assert [r.cfg.seed for r in job.runs] == SEEDS
    return job


def end(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"status": "finished", "results_version": 2}))


def held_by_the_job(job: Job, seeds: list[int]) -> None:
    """What an interrupted job leaves: its checkpoint and the members it held."""
    names = ["/".join(r.folder.parts[-4:]) for r in job.runs if r.cfg.seed in seeds]
    last_checkpoint(job.folder).parent.mkdir(parents=True)
    last_checkpoint(job.folder).write_bytes(b"")
    (job.folder / GROUP_FILE).write_text(json.dumps({"members": names}))


def test_a_member_held_by_another_process_is_left_to_it(tmp_path: Path) -> None:
    job = job_of(members(tmp_path))
    other = job.runs[1].folder
    other.mkdir(parents=True)
    with folder_lock(other) as held_elsewhere, claim(job, force=False) as claimed:
        assert held_elsewhere
        assert [r.cfg.seed for r in claimed.train] == [0, 2] and claimed.resume is None
        assert claimed.left[other]["status"] == BUSY
        listed = json.loads((job.folder / GROUP_FILE).read_text())["members"]
        assert [name.rsplit("=", 1)[1] for name in listed] == ["0", "2"]


def test_a_resume_takes_every_member_it_held_or_none(tmp_path: Path) -> None:
    job = job_of(members(tmp_path))
    held_by_the_job(job, [0, 1])
    with claim(job, force=False) as claimed:  # seed 2 joined the command: the job resumes 0, 1
        assert [r.cfg.seed for r in claimed.train] == [0, 1]
        assert claimed.resume == last_checkpoint(job.folder)
    with folder_lock(job.runs[1].folder), claim(job, force=False) as claimed:
        # not seed 0 alone from a checkpoint that holds 0 and 1
        assert claimed.train == [] and claimed.resume is None
        assert {s["status"] for s in claimed.left.values()} == {BUSY}


def test_ended_members_are_left_and_force_trains_them_again_from_the_start(
    tmp_path: Path,
) -> None:
    job = job_of(members(tmp_path))
    end(job.runs[0].folder)
    with claim(job, force=False) as claimed:
        assert [r.cfg.seed for r in claimed.train] == [1, 2]
        assert claimed.left[job.runs[0].folder]["status"].startswith("finished (already")
    held_by_the_job(job, [0, 1, 2])
    forced = job_of(members(tmp_path, "force=true"))
    with claim(forced, force=True) as claimed:
        assert [r.cfg.seed for r in claimed.train] == SEEDS and claimed.resume is None


@pytest.mark.parametrize("precision", ["high", "32-true"])
def test_rates_as_factors_are_members_of_their_own_rates(tmp_path: Path, precision: str) -> None:
    """``members.lr_scale`` in float64 and float32 alike: each member's config holds its rate,
    and its folder is the separate run's at that rate."""
    scales = "members.lr_scale=[0.5,2]"
    cfg = members(tmp_path, scales, "lr_in_label=true", f"precision={precision}")
    (job,) = make_plan(cfg)
    rates = sorted({r.cfg.task.sgd.lr for r in job.runs})
    assert rates == [0.005, 0.02]  # configs/task/mlp_diabetes.yaml: 0.01
    for run in job.runs:
        one = config(tmp_path, [f"task.sgd.lr={run.cfg.task.sgd.lr}", "lr_in_label=true"])
        one.seed, one.precision = run.cfg.seed, precision
        (single,) = make_plan(one)
        assert single.folder == run.folder
