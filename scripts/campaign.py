"""The cross-task campaign (issue #43): tuning protocol v2 on one task, run in pieces that resume.

One command does what a task still lacks, in order, and packs each piece into
``results/cross_task/<budget>/<task>/`` before the next: the rate grid (every optimizer of both
families, 7 rates × tuning seeds 1–3), the octaves ``tune.py`` asks for (``widen.sh``, until it is
empty), the evaluation of each choice on seeds 10–100 (``evaluate.sh``), and the tuned table. Runs
are filed in the task's folder as experiments ``grid`` and ``grid_eval``, each packed into its
``archive/`` (committed; the run folders are not), and are skipped where they ended, resumed from
their checkpoints where they were cut off, and restored from the archive where it holds them, so the
same command in a fresh clone carries on where the last one stopped. Jobs run two at a time on one
thread each (two processes on two threads each slow torch many times over on two cores).

    OVERSHOOT_DATA=../shared/data python scripts/campaign.py vae_mnist [--budget cpu]
    python scripts/campaign.py all        # every campaign task with a budget, the done ones skipped
    python scripts/campaign.py vae_mnist --dry     # the commands it would run, nothing run
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from trainers.archive import ARCHIVE, is_archive

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "cross_task"
CODE = ("main.py", "trainers", "data", "models", "overshoot", "configs")
# A task's own settings: Table 1's tasks at the paper's (paper_v1), the GPT stand-in at its own.
HPARAMS = {"gpt_char_shakespeare": "current"}
# Where a task's data here is a subset: its folder below the data root, and how it is read.
DATA = {"3c3d_cifar10": ("cifar10_subset", ["task.data.train_batches=1"])}
FAMILIES = {
    "sgd": "sgd_momentum,sgd_nesterov,sgdo",
    "adam": "adamw,nadam,adamo",
}  # experiment=tuned
MAX_WIDENINGS = 9  # the protocol's cap: 2^±9 around the task's rate
# The campaign's tasks, in the order it runs them (MLP-CA's protocol is results/tuned_v2).
TASKS = ("vae_mnist", "vae_fmnist", "2c2d_fmnist", "3c3d_cifar10", "gpt_char_shakespeare")


def task_overrides(task: str, budget: str) -> list[str]:
    """What every command of ``task`` composes with: its settings, budget and data."""
    args = [f"task={task}", f"hparams={HPARAMS.get(task, 'paper_v1')}", f"budget={budget}"]
    if task in DATA:
        folder, reading = DATA[task]
        args += [f"data.root={Path(os.environ.get('OVERSHOOT_DATA', 'data_cache')) / folder}"]
        args += reading
    return args


def as_members(task: str) -> bool:
    """Whether the task's seeds and rates train faster as the members of one job than as
    separate runs on this CPU: models that say they cannot vectorize, or run slower as members
    (convolutions: VAE-M's conv VAE ran 0.65× its separate runs at 21 members), run apart."""
    from hydra.utils import get_class

    model = OmegaConf.load(ROOT / "configs" / "task" / f"{task}.yaml").model._target_
    hparams = ROOT / "configs" / "task_hparams" / "paper_v1" / f"{task}.yaml"
    if HPARAMS.get(task, "paper_v1") == "paper_v1" and hparams.is_file():
        model = OmegaConf.select(OmegaConf.load(hparams), "model._target_", default=model)
    cls = get_class(model)
    return not getattr(cls, "vectorizes", None) and not getattr(
        cls, "slower_as_members_on_cpu", None
    )


def family(optimizer: str) -> str:
    return str(OmegaConf.load(ROOT / "configs" / "optimizer" / f"{optimizer}.yaml").family)


def multiruns(script: Path) -> list[list[str]]:
    """The main.py overrides of each multirun in ``script`` (tune.py's widen.sh, evaluate.sh),
    less the task's own settings, which the campaign adds."""
    if not script.is_file():
        return []
    out = []
    for line in script.read_text().splitlines():
        words = shlex.split(line)
        if words[:2] == ["python", "main.py"]:
            out.append([w for w in words[2:] if w != "-m" and not w.startswith(SETTINGS)])
    return out


SETTINGS = ("task=", "hparams=")


def has_budget(task: str, budget: str) -> bool:
    """Whether ``budget`` gives ``task`` a length (``paper``: the task's own, always)."""
    steps = OmegaConf.load(ROOT / "configs" / "budget" / f"{budget}.yaml").budget.steps
    return steps is None or task in steps


class Campaign:
    def __init__(self, task: str, budget: str, dry: bool) -> None:
        self.task, self.budget, self.dry = task, budget, dry
        self.experiment = "grid"  # tune.py files the evaluation under grid_eval
        self.out = self.results_dir = RESULTS / budget / task
        self.common = task_overrides(task, budget)
        self.members = as_members(task)

    def run(self, args: list[str], parallel: bool = False) -> None:
        """``python main.py ARGS`` (or a script), one thread per job, two jobs at a time where
        a multirun has several."""
        cmd = [sys.executable, *args]
        print("+", shlex.join(args), flush=True)
        if self.dry:
            return
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)

    def main_py(self, overrides: list[str]) -> list[str]:
        """A multirun of this task, two jobs at a time: each optimizer's seeds and rates the
        members of one job, or (``self.members`` False) each run a job of its own, its rate
        given outright where tune.py wrote it as a factor of the task's."""
        where = [f"results_dir={self.results_dir}", "trainer.enable_progress_bar=false"]
        where += ["~logger", "hydra/launcher=local_parallel"]
        if self.members:
            return ["main.py", "-m", *overrides, *self.common, *where, "vectorize=true"]
        out = []
        for word in overrides:
            if word == "vectorize=true":
                continue
            if word.startswith("members.lr_scale=["):
                scales = word.removeprefix("members.lr_scale=[").removesuffix("]").split(",")
                name = next(w for w in overrides if w.startswith("optimizer=")).split("=")[1]
                name = name.split(",")[0]  # a family's optimizers share its rates
                out += [
                    "members.lr_scale=null",
                    self.rates(family(name), [float(x) for x in scales]),
                ]
                continue
            out.append(word)
        return ["main.py", "-m", *out, *self.common, *where]

    def rates(self, fam: str, scales: list[float]) -> str:
        """``task.<family>.lr=a,b,...``: the task's rate times each scale, exact (powers of 2)."""
        from scripts.tune import task_rate

        rate = task_rate(self.task, HPARAMS.get(self.task, "paper_v1"), fam)
        return f"task.{fam}.lr=" + ",".join(repr(rate * s) for s in scales)

    def pack(self, experiment: str) -> None:
        folder = self.results_dir / experiment
        if self.dry or not folder.is_dir():
            return
        self.run(["scripts/archive.py", "pack", str(folder), "--out", str(folder / ARCHIVE)])

    def tune(self, evaluation: bool) -> Path:
        sources = [str(self.out / self.experiment / ARCHIVE)]
        args = ["scripts/tune.py", *sources, "--out", str(self.out / "tuning")]
        args += ["--experiment-name", self.experiment]
        if evaluation:
            args += ["--evaluation", str(self.out / f"{self.experiment}_eval" / ARCHIVE)]
        self.run(args)
        return self.out / "tuning"

    def lines(self, script: Path) -> list[list[str]]:
        """The multiruns of ``widen.sh`` / ``evaluate.sh``, as this campaign runs them."""
        if self.dry:
            return []
        return [self.main_py(words) for words in multiruns(script)]

    def grid(self) -> None:
        args = ["experiment=tuned", f"experiment_name={self.experiment}", f"task={self.task}"]
        if self.members:
            self.run(self.main_py(args))
        else:  # one multirun per family: its optimizers at its rates
            for optimizers in FAMILIES.values():
                scales = f"members.lr_scale=[{','.join(f'{2.0**k:g}' for k in range(-3, 4))}]"
                self.run(self.main_py([*args, f"optimizer={optimizers}", scales]))
        self.pack(self.experiment)

    def widen(self) -> None:
        for _ in range(MAX_WIDENINGS):
            commands = self.lines(self.tune(evaluation=False) / "widen.sh")
            if not commands:
                return
            for command in commands:
                self.run(command)
            self.pack(self.experiment)
        print(f"{self.task}: widened {MAX_WIDENINGS} times; the cap stops the search")

    def done(self) -> bool:
        """Whether the protocol is complete: a tuned table, and nothing left to widen or to
        evaluate (both scripts as tune.py last wrote them)."""
        tuning = self.out / "tuning"
        left = [multiruns(tuning / name) for name in ("widen.sh", "evaluate.sh")]
        return (tuning / "tuned_table.csv").is_file() and not any(left)

    def evaluate(self) -> None:
        evaluation = self.out / f"{self.experiment}_eval" / ARCHIVE
        tuning = self.tune(evaluation=is_archive(evaluation))
        for command in self.lines(tuning / "evaluate.sh"):
            self.run(command)
        self.pack(f"{self.experiment}_eval")
        self.tune(evaluation=True)


def code_is_committed() -> str | None:
    """Why the campaign cannot run from this checkout (uncommitted code would not match the
    commit its runs record), or None."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", *CODE], cwd=ROOT, capture_output=True, text=True
    )
    if status.returncode != 0:
        return None  # not a git checkout: nothing to compare
    changed = [line[3:] for line in status.stdout.splitlines()]
    return f"uncommitted changes in {', '.join(changed)}" if changed else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    parser.add_argument("task", help=f"a task, or all ({', '.join(TASKS)})")
    parser.add_argument("--budget", default="cpu", help="a configs/budget group: cpu, paper")
    parser.add_argument("--dry", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    tasks = sorted(p.stem for p in (ROOT / "configs" / "task").glob("*.yaml"))
    budgets = sorted(p.stem for p in (ROOT / "configs" / "budget").glob("*.yaml"))
    if args.task not in [*tasks, "all"]:
        valid = ", ".join([*tasks, "all"])
        parser.exit(2, f"{parser.prog}: error: unknown task {args.task!r}; valid: {valid}\n")
    if args.budget not in budgets:
        valid = ", ".join(budgets)
        parser.exit(2, f"{parser.prog}: error: unknown budget {args.budget!r}; valid: {valid}\n")
    if args.task != "all" and not has_budget(args.task, args.budget):
        parser.exit(2, f"{parser.prog}: error: {NO_BUDGET.format(args.task, args.budget)}\n")
    why = None if args.dry else code_is_committed()
    if why is not None:
        parser.exit(2, f"{parser.prog}: error: {why}; commit them or run from a clean checkout\n")
    for task in TASKS if args.task == "all" else [args.task]:
        campaign = Campaign(task, args.budget, args.dry)
        if not has_budget(task, args.budget):
            print(f"{task}: skipped, {NO_BUDGET.format(task, args.budget)}")
        elif campaign.done():
            print(f"{task}: protocol complete already; tables in {campaign.out / 'tuning'}")
        else:
            try:
                campaign.grid()
                campaign.widen()
                campaign.evaluate()
            except subprocess.CalledProcessError as e:
                failed = f"{shlex.join(e.cmd[1:])} failed (status {e.returncode})"
                parser.exit(2, f"{parser.prog}: error: {failed}\n")
            done = "dry, nothing run" if args.dry else "protocol complete"
            print(f"{task}: {done}; tables in {campaign.out / 'tuning'}")


NO_BUDGET = (
    "budget={1} has no step budget for task {0} (configs/budget/{1}.yaml): fix one from its "
    "measured step cost before its runs"
)


if __name__ == "__main__":
    main()
