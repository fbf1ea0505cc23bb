"""The tuning grid (#31): rates as factors of the task's (``members.lr_scale``), and
``scripts/tune.py``'s choice of each optimizer's rate by rules fixed in advance."""

from __future__ import annotations

import math
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

import main
from scripts import tune
from scripts.collect import read_sources
from scripts.threshold import first_index, seed_mean, trailing_mean
from tests.launch import config, main_config
from trainers.cli.checks import validate
from trainers.plan import member_configs
from trainers.results import optimizer_label
from trainers.train import train

SCALES = [0.5, 1, 2]
WINDOW = 20


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CM and SGDO at γ = 0 (CM step for step) at three rates around diabetes's, two seeds each."""
    tmp = tmp_path_factory.mktemp("tuned")
    for optimizer in ("optimizer=sgd_momentum", "optimizer=sgdo"):
        members = ["vectorize=true", "members.seed=[1,2]", f"members.lr_scale={SCALES}"]
        overrides = [optimizer, "optimizer.overshoot=0", "lr_in_label=true", "max_steps=120"]
        train(config(tmp, [*overrides, *members, "logger=csv"], experiment="tuned"))
    return tmp / "results" / "tuned"


def test_scaled_rates_are_filed_as_their_rates(grid: Path, tmp_path: Path) -> None:
    task_rate = 0.01  # configs/task/mlp_diabetes.yaml
    cfg = config(tmp_path, ["vectorize=true", "lr_in_label=true", "members.lr_scale=[4,0.25]"])
    rates = [member.task.sgd.lr for member in member_configs(cfg)]
    assert rates == [4 * task_rate, 0.25 * task_rate]  # a factor times the rate, in order
    for scale in SCALES:
        rate = task_rate * scale
        folder = grid / "mlp_diabetes" / f"sgd_momentum_lr{rate:g}" / "seed=1"
        assert OmegaConf.load(folder / "config.yaml").task.sgd.lr == rate


def test_gamma_zero_picks_the_baselines_rate_with_its_scores(grid: Path) -> None:
    """The null case: SGDO at γ = 0 records CM's curves, so each rule gives it CM's rate and
    CM's score, seed by seed."""
    records, _ = read_sources([grid])
    rates = tune.rate_grid(records, WINDOW, 0.95)
    assert set(rates["rate"]) == {0.005, 0.01, 0.02}
    cm, sgdo = (
        rates[rates["optimizer"] == o].reset_index(drop=True) for o in ("sgd_momentum", "sgdo_g0")
    )
    pd.testing.assert_series_equal(cm["steps_to_t"], sgdo["steps_to_t"])
    pd.testing.assert_series_equal(cm["final"], sgdo["final"])
    assert cm["steps_to_t"].map(math.isfinite).any()
    chosen = tune.choose(rates).set_index(["optimizer", "rule"])
    for rule in tune.RULES:
        ours, theirs = chosen.loc[("sgdo_g0", rule)], chosen.loc[("sgd_momentum", rule)]
        assert ours["rate"] == theirs["rate"] and ours["score"] == theirs["score"]


def test_the_rules_as_stated() -> None:
    """A rate where one seed never reaches T loses to a slower rate that always does; a
    diverged seed makes a rate's final loss infinite; ties go to the smaller rate."""
    rows = [  # rate, seed, steps to T, final loss
        (0.1, 1, 50.0, 0.30),
        (0.1, 2, math.inf, math.inf),
        (0.2, 1, 80.0, 0.20),
        (0.2, 2, 90.0, 0.25),
        (0.4, 1, 80.0, 0.20),
        (0.4, 2, 90.0, 0.25),
    ]
    grid = pd.DataFrame(rows, columns=["rate", "seed", "steps_to_t", "final"])
    grid = grid.assign(task="t", family="sgd", optimizer="sgdo_g5", task_rate=0.2)
    chosen = tune.choose(grid).set_index("rule")
    assert chosen.loc["steps", "rate"] == 0.2 and chosen.loc["steps", "score"] == 85.0
    assert chosen.loc["final", "rate"] == 0.2 and chosen.loc["final", "scale"] == 1.0
    assert chosen.loc["steps", "grid_edge"] == ""  # 0.2 lies inside the grid, 0.1 … 0.4
    fastest_at_the_top = grid.assign(steps_to_t=grid["steps_to_t"] * (grid["rate"] != 0.4))
    assert tune.choose(fastest_at_the_top).set_index("rule").loc["steps", "grid_edge"] == "largest"
    bottom = grid.assign(steps_to_t=grid["steps_to_t"].where(grid["rate"] != 0.1, 10.0))
    at_the_bottom = tune.choose(bottom).set_index("rule").loc["steps"]
    assert at_the_bottom["rate"] == 0.1 and at_the_bottom["grid_edge"] == "smallest"


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_the_script_writes_its_tables_and_figure(grid: Path, tmp_path: Path, protocol: str) -> None:
    tune.main([str(grid), "--out", str(tmp_path), "--window", str(WINDOW), "--protocol", protocol])
    chosen = pd.read_csv(tmp_path / "tuned_rates.csv")
    assert set(chosen["optimizer"]) == {"sgd_momentum", "sgdo_g0"}
    assert len(pd.read_csv(tmp_path / "rate_grid.csv")) == 2 * len(SCALES) * 2
    assert (tmp_path / "sensitivity_mlp_diabetes.png").stat().st_size > 10_000


def test_a_grid_without_the_baseline_at_the_tasks_rate_is_refused(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = grid.parent / "only_sgdo"
    (only / "mlp_diabetes").mkdir(parents=True)
    for folder in (grid / "mlp_diabetes").glob("sgdo_g0_lr*"):
        shutil.copytree(folder, only / "mlp_diabetes" / folder.name)
    with pytest.raises(SystemExit) as exit_:
        tune.main([str(only), "--out", str(tmp_path), "--window", str(WINDOW)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no finished sgd_momentum run at the task's rate 0.01" in err and err.count("\n") == 1


def test_members_without_vectorize_are_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["members.lr_scale=[0.5,1]", "lr_in_label=true"])
    with pytest.raises(ValueError, match=r"members.lr_scale=\[0.5, 1\]: .* pass vectorize=true"):
        validate(cfg)
    for key, value in (("seed", "[1, 2]"), ("overshoot", "[3, 5]"), ("lr.adam", "[0.1, 0.2]")):
        cfg = config(tmp_path, [f"members.{key}={value.replace(' ', '')}", "lr_in_label=true"])
        with pytest.raises(ValueError, match=rf"members.{key}=\{value[:-1]}\]: .* vectorize=true"):
            validate(cfg)
    cfg = config(tmp_path, ["members.lr_scale=[0.5,1]", "vectorize=true", "optimizer=sgdo"])
    with pytest.raises(ValueError, match="need lr_in_label=true"):
        validate(cfg)


def test_the_tuned_table_reads_zero_for_the_baseline_and_gamma_zero(grid: Path) -> None:
    """The null case of the evaluation: the grid's runs stand in for the evaluation seeds. The
    tuned baseline against itself reads 0 %, SGDO at γ = 0 at the rate it picked (CM's) reads 0 %
    seed by seed, and T is the baseline's at the task's own rate, not the tuned baseline's. The
    choice is the final-loss rule's, 0.02 (steps picks the task's 0.01), so T's source shows."""
    records, _ = read_sources([grid])
    rates = tune.rate_grid(records, WINDOW, 0.95)
    chosen = tune.choose(rates)
    chosen = chosen[chosen["rule"] == "final"].assign(rule="steps")
    table = tune.tuned_table(records, chosen, WINDOW, 0.95).set_index("optimizer")
    assert table.loc["sgdo_g0", "rate"] == table.loc["sgd_momentum", "rate"] == 0.02
    for opt in ("sgd_momentum", "sgdo_g0"):
        row = table.loc[opt]
        assert row["baseline"] == "sgd_momentum" and row["savings"] == 0.0
    sgdo = table.loc["sgdo_g0"]
    assert sgdo["savings_seed_mean"] == 0.0 and sgdo["p_value"] == 1.0 and sgdo["n_paired"] == 2
    threshold = rates.loc[rates["rate"] == 0.01, "threshold"].iloc[0]  # the task's rate
    assert (table["threshold"] == threshold).all()
    tuned = [r.steps["loss_base"] for r in records if r.key.optimizer == "sgd_momentum_lr0.02"]
    mean = trailing_mean(seed_mean(tuned).to_numpy(), WINDOW)
    assert mean[0] - 0.95 * (mean[0] - mean[-1]) != threshold  # the tuned baseline's own T
    assert table.loc["sgd_momentum", "steps"] == first_index(mean, threshold) + WINDOW
    assert "baseline" in tune.tuned_markdown(table.reset_index())
    without = [r for r in records if r.key.optimizer != "sgd_momentum_lr0.01"]
    with pytest.raises(ValueError, match="no finished sgd_momentum run at the task's rate among"):
        tune.tuned_table(without, chosen, WINDOW, 0.95)  # T would silently be the tuned one's


def test_the_evaluation_commands_run_each_choice_on_the_evaluation_seeds(
    grid: Path, tmp_path: Path
) -> None:
    """One multirun per optimizer at its chosen rate (here 0.02, the final-loss rule's), and the
    baseline at the task's rate (0.01) as well, which sets T; each passes main.py's checks and
    files its runs under the rate in experiment tuned_eval."""
    records, _ = read_sources([grid])
    rates = tune.rate_grid(records, WINDOW, 0.95)
    chosen = tune.choose(rates)
    chosen = chosen[chosen["rule"] == "final"].assign(rule="steps")
    commands = tune.evaluation_commands(rates, chosen, "10,20")
    ran = []
    for command in commands.values():
        assert command.startswith("python main.py -m experiment=tuned_eval task=mlp_diabetes ")
        argv = command.split()[3:]
        assert "seed=10,20" in argv and "vectorize=true" in argv
        one = [a for a in argv if a not in ("seed=10,20", "vectorize=true")] + ["seed=10"]
        cfg = main_config(one, tmp_path, tmp_path)
        assert cfg.experiment_name == "tuned_eval" and cfg.seed == 10
        ran.append((optimizer_label(cfg), cfg.task.sgd.lr))
    expected = {("sgd_momentum_lr0.02", 0.02), ("sgd_momentum_lr0.01", 0.01)}
    assert set(ran) == expected | {("sgdo_g0_lr0.02", 0.02)} and len(ran) == 3


def test_the_script_writes_the_tuned_table(grid: Path, tmp_path: Path) -> None:
    args = [str(grid), "--out", str(tmp_path), "--window", str(WINDOW), "--protocol", "v1"]
    tune.main([*args, "--evaluation", str(grid)])
    table = pd.read_csv(tmp_path / "tuned_table.csv")
    assert set(table["optimizer"]) == {"sgd_momentum", "sgdo_g0"}
    assert "sgdo_g0" in (tmp_path / "tuned_table.md").read_text()
    commands = [
        line for line in (tmp_path / "evaluate.sh").read_text().splitlines() if "main.py" in line
    ]
    seeds = ",".join(str(10 * k) for k in range(1, 11))
    assert len(commands) == 2  # one per optimizer, at its chosen rate (both: 0.01, the task's)
    for optimizer in ("sgd_momentum", "sgdo"):
        at = f"optimizer={optimizer} optimizer.overshoot=0 task.sgd.lr=0.01 seed={seeds} "
        assert sum(at in c and "experiment=tuned_eval" in c for c in commands) == 1, commands


def test_the_tuned_table_says_which_seed_mean_never_reaches_t() -> None:
    """Housing's tuned CM (8x) has one seed that never reaches T, so its seed mean does not
    either: the paper's saving is not computable for any of its family, the per-seed one is, and
    every cell counts the censored seeds instead of calling the optimizer 'not reached'. The
    saving in real steps stands beside the paper's (index) saving."""
    common = {"task": "t", "rate": 0.008, "grid_edge": "", "baseline": "cm", "n_seeds": 10}
    nan = math.nan
    rows = [
        {"optimizer": "cm", "steps": nan, "savings": nan, "savings_real_steps": nan},
        {"optimizer": "fast", "steps": 4516.0, "savings": nan, "savings_real_steps": nan},
        {"optimizer": "never", "steps": nan, "savings": nan, "savings_real_steps": nan},
        {"optimizer": "ok", "steps": 90.0, "savings": 0.1, "savings_real_steps": 0.05},
    ]
    per_seed = {"savings_seed_mean": 0.342, "savings_ci95": 0.045, "p_value": 1e-6}
    table = pd.DataFrame([{**common, **per_seed, "n_paired": 7, **r} for r in rows])
    table["n_censored"] = [1, 2, 10, 0]
    table.loc[2, "n_paired"] = 0
    pattern = r"^\| t +\| (\w+) .*\| (.+?) +\| (.+?) +\|$"
    cells = {o: cs for o, *cs in re.findall(pattern, tune.tuned_markdown(table), re.M)}
    assert cells == {
        "cm": ["–", "baseline (its seed mean never reaches T, 1 of 10 censored)"],
        "fast": [
            "–",
            "– (the baseline's seed mean never reaches T; per seed 34.2 ± 4.5, p=1e-06, "
            "7 seeds, 2 of 10 censored)",
        ],
        "never": [
            "–",
            "– (its seed mean never reaches T; per seed no interval: 0 seed pairs, "
            "10 of 10 censored)",
        ],
        "ok": ["5.0 %", "10.0 % (34.2 ± 4.5, p=1e-06, 7 seeds)"],
    }


def v2(grid: Path, out: Path, *more: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """tune.py under protocol v2 (the default) on ``grid``: its rate grid, its choices by the
    steps rule, and its widen.sh."""
    tune.main([str(grid), *map(str, more), "--out", str(out), "--window", str(WINDOW)])
    chosen = pd.read_csv(out / "tuned_rates.csv", keep_default_na=False)
    steps = chosen[chosen["rule"] == "steps"].set_index("optimizer")
    return pd.read_csv(out / "rate_grid.csv"), steps, (out / "widen.sh").read_text()


def test_v2_a_rate_that_loses_one_tuning_seed_scores_infinite_and_moves_the_choice_down(
    grid: Path, tmp_path: Path
) -> None:
    """On the fixture v2 picks 0.01 for CM (fastest, and 0.02 above it reaches T on both seeds).
    With CM's seed 2 at 0.02 diverged (its meta.json says so, as the harness writes it), that
    seed scores ∞ in rate_grid.csv, 0.02 loses its seed mean, 0.01 loses its margin, and the
    choice falls to 0.005, the grid's smallest rate, so the grid widens down an octave. SGDO at
    γ = 0, untouched, keeps CM's first choice."""
    _, before, _ = v2(grid, tmp_path / "before")
    assert before.loc["sgd_momentum", "rate"] == 0.01 and before.loc["sgd_momentum", "widen"] == ""
    broken = tmp_path / "grid"
    shutil.copytree(grid, broken)
    meta = broken / "mlp_diabetes" / "sgd_momentum_lr0.02" / "seed=2" / "meta.json"
    meta.write_text(meta.read_text().replace('"status": "finished"', '"status": "diverged"'))
    rates, steps, widen = v2(broken, tmp_path / "after")
    lost = rates[(rates["optimizer"] == "sgd_momentum") & (rates["rate"] == 0.02)]
    assert lost.set_index("seed")["steps_to_t"].map(math.isinf).to_dict() == {1: False, 2: True}
    cm = steps.loc["sgd_momentum"]
    assert cm["rate"] == 0.005 and cm["widen"] == "down"
    assert cm["note"] == "fastest feasible 1x, but 2x lost 1 of 2 seeds (margin)"
    assert cm["infeasible_octaves"] == "1"
    assert "optimizer=sgd_momentum optimizer.overshoot=0 'members.lr_scale=[0.25]'" in widen
    assert steps.loc["sgdo_g0", "rate"] == 0.01 and "sgdo" not in widen


def test_v2_a_grid_whose_fastest_rate_is_its_largest_widens_up_and_the_octave_run_closes_it(
    grid: Path, tmp_path: Path
) -> None:
    """Without its 0.02 runs the fixture's fastest rate, 0.01, is the grid's largest: the
    choice falls back to 0.005 (0.01 above it is feasible) until the octave above 0.01 has run,
    and widen.sh holds that octave for each optimizer. Running those
    commands (the fixture's budget and seeds added) makes 0.02 again, bit for bit as the full
    grid has it, and tune.py then chooses 0.01 with nothing left to widen."""
    cut = tmp_path / "cut"
    shutil.copytree(grid, cut, ignore=shutil.ignore_patterns("*_lr0.02"))
    _, steps, widen = v2(cut, tmp_path / "first")
    assert list(steps["widen"]) == ["up", "up"] and list(steps["rate"]) == [0.005, 0.005]
    assert steps.loc["sgd_momentum", "note"] == "fastest feasible 1x, but 2x not run yet (margin)"
    commands = [shlex.split(line) for line in widen.splitlines()]
    assert len(commands) == 2
    for argv in commands:
        args = argv[argv.index("main.py") + 1 :]
        main.checked_args(args)  # the command passes main.py's checks as written
        assert "members.lr_scale=[2]" in args and "experiment=tuned" in args
        runnable = [a for a in args if a not in ("-m", "experiment=tuned")]
        extra = ["lr_in_label=true", "max_steps=120", "members.seed=[1,2]", "logger=csv"]
        train(config(tmp_path, [*runnable, *extra], experiment="unused"))
    added = tmp_path / "results" / "tuned_v2"
    rates, steps, widen = v2(cut, tmp_path / "second", added)
    assert widen == "" and list(steps["rate"]) == [0.01, 0.01]
    full, _, _ = v2(grid, tmp_path / "full")
    pd.testing.assert_frame_equal(rates, full)


def test_v2_evaluation_reads_zero_for_gamma_zero_and_a_lost_seed_makes_its_median_infinite(
    grid: Path, tmp_path: Path
) -> None:
    """The null case of v2's evaluation, the grid's runs standing in for the evaluation seeds:
    SGDO at γ = 0 reaches T on as many seeds as CM, its median and paired savings read 0 (p =
    1) and no difference is shown. With its seed 2 diverged it reaches T on 1 of 2, its median
    (a miss counting ∞) is ∞, so no median saving, and it loses, however fast its other seed."""
    args = [str(grid), "--window", str(WINDOW), "--seeds", "1,2", "--evaluation"]
    tune.main([*args, str(grid), "--out", str(tmp_path / "null")])
    table = pd.read_csv(tmp_path / "null" / "tuned_table.csv").set_index("optimizer")
    sgdo, cm = table.loc["sgdo_g0"], table.loc["sgd_momentum"]
    assert sgdo["reached"] == cm["reached"] == 2 and sgdo["diverged"] == 0
    assert sgdo["median_steps"] == cm["median_steps"] and sgdo["saving_median"] == 0.0
    assert sgdo["saving_paired"] == 0.0 and sgdo["p_value"] == 1.0 and sgdo["n_paired"] == 2
    assert (sgdo["verdict"], cm["verdict"]) == ("no difference shown", "baseline")
    assert (tmp_path / "null" / "evaluate.sh").read_text() == ""  # nothing left to run
    broken = tmp_path / "evaluation"
    shutil.copytree(grid, broken)
    meta = broken / "mlp_diabetes" / "sgdo_g0_lr0.01" / "seed=2" / "meta.json"
    meta.write_text(meta.read_text().replace('"status": "finished"', '"status": "diverged"'))
    tune.main([*args, str(broken), "--out", str(tmp_path / "lost")])
    sgdo = pd.read_csv(tmp_path / "lost" / "tuned_table.csv").set_index("optimizer").loc["sgdo_g0"]
    assert (sgdo["reached"], sgdo["diverged"], sgdo["verdict"]) == (1, 1, "loses")
    assert math.isinf(sgdo["median_steps"]) and math.isnan(sgdo["saving_median"])
    row = next(
        line
        for line in (tmp_path / "lost" / "tuned_table.md").read_text().splitlines()
        if "sgdo_g0" in line
    )
    assert "| 1 of 2 " in row and "| ∞ " in row and row.rstrip(" |").endswith("loses")


def test_the_script_refuses_what_it_cannot_tune_in_one_line_and_exit_2(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A results folder that does not exist, one with no run filed by rate, and an evaluation
    with no run at a chosen rate: each one line, status 2, and no table written."""
    unrated = tmp_path / "unrated"
    shutil.copytree(grid / "mlp_diabetes" / "sgd_momentum_lr0.01", unrated / "t" / "sgd_momentum")
    elsewhere = tmp_path / "elsewhere" / "mlp_diabetes"  # the grid's slowest rate only
    for folder in (grid / "mlp_diabetes").glob("*_lr0.005"):
        shutil.copytree(folder, elsewhere / folder.name)
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "nowhere")], f"results folder {tmp_path / 'nowhere'} does not exist"),
        ([str(unrated)], "no runs filed by rate (lr_in_label=true) found"),
        (
            [str(grid), "--protocol", "v1", "--evaluation", str(elsewhere.parent)],
            "no run at a chosen rate in the evaluation",
        ),
    ]
    for args, line in cases:
        with pytest.raises(SystemExit) as exit_:
            tune.main([*args, "--out", str(out), "--window", str(WINDOW)])
        assert exit_.value.code == 2, args
        assert capsys.readouterr().err == f"tune.py: error: {line}\n", args
    assert not (out / "tuned_table.csv").exists()


def test_v2_an_evaluation_cut_off_before_its_baseline_waits_for_it(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Evaluation runs of SGDO alone (the campaign cut off before CM's): no T yet, so no table,
    and evaluate.sh lists what is missing; not an error that stops the campaign's resume."""
    partial = tmp_path / "partial" / "mlp_diabetes"
    for folder in (grid / "mlp_diabetes").glob("sgdo_g0_*"):
        shutil.copytree(folder, partial / folder.name)
    out = tmp_path / "out"
    args = [str(grid), "--window", str(WINDOW), "--seeds", "1,2", "--out", str(out)]
    tune.main([*args, "--evaluation", str(partial.parent)])
    assert "the evaluation lacks 1 multirun (evaluate.sh): no table yet" in capsys.readouterr().out
    (waiting,) = (out / "evaluate.sh").read_text().splitlines()  # CM, chosen at the task's rate
    assert "optimizer=sgd_momentum " in waiting and "seed=1,2 " in waiting, waiting
    assert not (out / "tuned_table.csv").exists()


def test_v2_a_family_whose_baseline_has_no_rate_has_no_rows(
    grid: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """VAE-FM's CM: no rate of its grid kept every tuning seed, so its family has nothing to be
    compared with; its table has no rows of the family rather than stopping on the missing T."""
    from scripts import protocol_v2

    records, _ = read_sources([grid])
    windows = {"mlp_diabetes": WINDOW}
    chosen = protocol_v2.choose(tune.rate_grid(records, WINDOW, 0.95))
    assert len(tune.tuned_table_v2(records, chosen, windows, 0.95)) == 2  # CM and SGDO γ0
    cm = chosen["optimizer"] == "sgd_momentum"
    chosen.loc[cm, "rate"] = math.nan
    assert tune.untuned_baselines(chosen)["optimizer"].tolist() == ["sgd_momentum"]
    without = [r for r in records if not r.key.optimizer.startswith("sgd_momentum")]
    assert tune.tuned_table_v2(without, chosen, windows, 0.95).empty
