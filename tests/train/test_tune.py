"""Hyperparameter sweeps (ganforge.train.tune): real tiny trainings on ring8, a few tenths of a second each."""

import argparse
import json
import math
import subprocess
import tomllib
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from ganforge.errors import ConfigError  # noqa: E402
from ganforge.monitor import read_stats  # noqa: E402
from ganforge.train import RunConfig  # noqa: E402
from ganforge.train.config import load_toml  # noqa: E402
from ganforge.train.trainer import Interrupted  # noqa: E402
from ganforge.train.tune import (  # noqa: E402
    DEFAULT_SPACE,
    Param,
    add_tune_parser,
    apply_params,
    cmd_tune,
    format_space,
    parse_space,
    resolve_objective,
    to_toml,
    tune,
)

TINY = {"hidden_g": (32, 32), "hidden_d": (32, 32), "z_dim": 8}
STEPS = 40
LR_ONLY = parse_space("lr_g=log:1e-4:1e-2")


def tiny(**overrides) -> RunConfig:
    """A ring8 MLP GAN: 40 steps of batch 64, stats (and the Probe/swd objective) every 10 steps."""
    settings = dict(model="mlp", data="ring8", model_config=dict(TINY), steps=STEPS, batch_size=64, log_every=10,
                    sample_every=1000, checkpoint_every=1000, progress=False, report=False, doctor=False, threads=1)
    settings.update(overrides)
    return RunConfig(**settings)


def load_study(out: Path):
    return optuna.load_study(study_name="ganforge-tune", storage=f"sqlite:///{out / 'study.db'}")


# --- the search space ---------------------------------------------------------------------------------------
def test_parse_space_reads_every_kind_and_round_trips():
    text = ("lr_g=log:1e-5:1e-2, beta1=float:0:0.9,n_critic=int:1:5,loss=choice:non_saturating|hinge,"
            "spectral_norm=choice:true|false,pack=choice:1|2,diffaugment=choice:|color,translation")
    space = parse_space(text)
    by_name = {p.name: p for p in space}
    assert by_name["lr_g"] == Param("lr_g", "log", 1e-5, 1e-2)
    assert by_name["beta1"] == Param("beta1", "float", 0.0, 0.9)
    assert by_name["n_critic"] == Param("n_critic", "int", 1, 5)
    assert by_name["loss"].choices == ("non_saturating", "hinge")
    assert by_name["spectral_norm"].choices == (True, False)  # read as the setting's type
    assert by_name["pack"].choices == (1, 2) and isinstance(by_name["pack"].choices[0], int)
    assert by_name["diffaugment"].choices == ("", "color,translation")  # a comma inside a value is kept
    assert parse_space(format_space(space)) == space
    assert parse_space(format_space(DEFAULT_SPACE)) == DEFAULT_SPACE
    assert [p.name for p in DEFAULT_SPACE] == ["lr_g", "lr_d", "beta1", "n_critic"]


@pytest.mark.parametrize("text, fragments", [
    ("lr=log:1e-5:1e-2", ["'lr=log:1e-5:1e-2'", "not a setting", "lr_g"]),
    ("lr_g=log:0:1e-2", ["LOW > 0"]),
    ("lr_g=float:1e-2:1e-5", ["LOW < HIGH"]),
    ("lr_g=log:1e-5", ["LOW:HIGH"]),
    ("lr_g=log:small:1", ["LOW 'small' is not a number"]),
    ("n_critic=float:1:5", ["integer setting", "int:1:5"]),
    ("n_critic=int:1.5:5", ["whole bounds"]),
    ("seed=int:0:9", ["'seed=int:0:9'", "cannot be searched"]),
    ("data=choice:ring8|grid25", ["cannot be searched", "same data"]),
    ("spectral_norm=float:0:1", ["use choice"]),
    ("spectral_norm=choice:maybe", ["'maybe' is not true or false"]),
    ("loss=hinge", ["unknown kind 'hinge'"]),
    ("beta1", ["expected NAME=KIND"]),
    ("lr_g=log:1e-5:1e-2,lr_g=log:1e-4:1e-3", ["'lr_g=log:1e-4:1e-3'", "appears twice"]),
    ("pack=choice:1|1", ["repeated"]),
    ("  ", ["empty"]),
])
def test_parse_space_errors_name_the_entry(text, fragments):
    with pytest.raises(ConfigError) as e:
        parse_space(text)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_apply_params_sets_betas_from_beta1_and_beta2():
    config = apply_params(tiny(betas=(0.5, 0.99)), {"beta1": 0.1, "lr_g": 1e-3, "n_critic": 2})
    assert config.betas == (0.1, 0.99) and config.lr_g == 1e-3 and config.n_critic == 2


def test_resolve_objective_defaults_and_errors():
    assert resolve_objective(tiny(), None, None).name == "Probe/swd"
    assert resolve_objective(tiny(eval_every=10), None, None).source == "ranking"
    assert resolve_objective(tiny(eval_every=10), "precision", None).direction == "maximize"
    assert resolve_objective(tiny(), "Probe/diversity", "maximize").direction == "maximize"
    with pytest.raises(ConfigError, match="--eval-every"):
        resolve_objective(tiny(), "fd_identity", None)
    with pytest.raises(ConfigError, match="lower-is-better"):
        resolve_objective(tiny(eval_every=10), None, "maximize")


def test_to_toml_round_trips_through_tomllib():
    settings = {"a": 1, "b": 1e-05, "c": "quote \" and \\ and é", "d": [0.5, 0.999], "e": True,
                "model_config": {"hidden_g": [32, 32], "odd key": 3}, "skipped": None}
    expected = {k: v for k, v in settings.items() if v is not None}
    assert tomllib.loads(to_toml(settings, "a header\nover two lines")) == expected


# --- sweeps -------------------------------------------------------------------------------------------------
def test_sweep_finds_the_best_trial_and_writes_summaries(tmp_path):
    out = tmp_path / "sweep"
    base = tiny()
    result = tune(base, out, n_trials=4, progress=False, prune=False)

    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["trials"]) == 4 and result.finished == 4
    assert all(t["state"] == "complete" for t in summary["trials"])
    for record in summary["trials"]:
        run = out / record["run_dir"]
        assert record["steps"] == STEPS and record["seconds"] > 0 and set(record["params"]) == {
            "lr_g", "lr_d", "beta1", "n_critic"}
        # a trial's value is the best Probe/swd its run logged
        swd = [r["Probe/swd"] for r in read_stats(run / "stats.jsonl")]
        assert len(swd) == STEPS // 10 and record["value"] == pytest.approx(min(swd))
    values = [t["value"] for t in summary["trials"]]
    assert summary["best"]["value"] == min(values) == result.best.value == load_study(out).best_value
    assert len({json.dumps(t["params"], sort_keys=True) for t in summary["trials"]}) == 4  # distinct settings

    settings = load_toml(out / "best_config.toml")
    config = RunConfig.from_dict(settings)
    config.validate()
    assert config.to_dict() == json.loads(json.dumps(apply_params(base, result.best.params).to_dict()))
    assert config.lr_g == result.best.params["lr_g"] and config.betas[0] == result.best.params["beta1"]

    md = (out / "summary.md").read_text()
    assert f"## Best: trial {result.best.number}" in md
    assert f"ganforge train --config {out / 'best_config.toml'}" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "complete" in line]
    assert [int(line.split("|")[1]) for line in table] == [t.number for t in sorted(result.trials,
                                                                                    key=lambda t: t.value)]


def test_median_pruner_stops_trials_behind_the_first(tmp_path):
    out = tmp_path / "sweep"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=10)
    result = tune(tiny(), out, n_trials=5, space=parse_space("lr_g=log:1e-5:1e-1"), pruner=pruner, progress=False)
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert result.finished == 5 and pruned, [(t.state, t.params) for t in result.trials]
    for t in pruned:
        assert t.steps < STEPS and t.value is None and f"pruned at step {t.steps}: best Probe/swd so far" in t.reason
        # the run really stopped there, with a checkpoint to look at
        assert max(r["step"] for r in read_stats(t.run_dir / "stats.jsonl")) == t.steps
        assert (t.run_dir / "checkpoints" / f"step_{t.steps:06d}" / "meta.json").is_file()
    assert result.best is not None and result.best.state == "complete"


def test_resume_keeps_finished_trials(tmp_path):
    out = tmp_path / "sweep"
    first = tune(tiny(), out, n_trials=2, space=LR_ONLY, progress=False, prune=False)
    stamps = {t.number: (t.run_dir / "config.json").stat().st_mtime_ns for t in first.trials}
    again = tune(tiny(progress=True), out, n_trials=4, space=LR_ONLY, progress=False, prune=False)  # may change
    assert again.finished == 4 and [t.number for t in again.trials] == [0, 1, 2, 3]
    assert {t.number: (t.run_dir / "config.json").stat().st_mtime_ns for t in again.trials[:2]} == stamps
    assert [t.params for t in again.trials[:2]] == [t.params for t in first.trials]
    assert again.trials[2].params != first.trials[0].params  # a continued sweep does not redraw the first settings
    assert len(json.loads((out / "summary.json").read_text())["trials"]) == 4
    assert tune(tiny(), out, n_trials=3, space=LR_ONLY, progress=False).finished == 4  # nothing left to do


def test_a_trial_left_running_by_a_killed_process_runs_again(tmp_path):
    out = tmp_path / "sweep"
    tune(tiny(), out, n_trials=1, space=LR_ONLY, progress=False)
    stale = load_study(out).ask()  # as if a process died mid-trial: asked, never told
    lr = stale.suggest_float("lr_g", 1e-4, 1e-2, log=True)
    result = tune(tiny(), out, n_trials=2, space=LR_ONLY, progress=False)
    states = {t.number: t for t in result.trials}
    assert states[1].state == "fail" and states[1].interrupted and "ran again as trial 2" in states[1].reason
    assert states[2].state == "complete" and states[2].params == {"lr_g": lr}
    assert result.finished == 2  # the interrupted trial is not counted


def test_a_trial_run_by_a_live_process_is_left_alone(tmp_path):
    out = tmp_path / "sweep"
    tune(tiny(), out, n_trials=1, space=LR_ONLY, progress=False)
    other = subprocess.Popen(["sleep", "30"])
    try:
        trial = load_study(out).ask()
        trial.set_user_attr("pid", other.pid)
        import socket

        trial.set_user_attr("host", socket.gethostname())
        with pytest.raises(ConfigError, match=f"being run by process {other.pid}"):
            tune(tiny(), out, n_trials=2, space=LR_ONLY, progress=False)
    finally:
        other.kill()
        other.wait()


def test_an_interrupted_trial_is_queued_again(tmp_path, monkeypatch):
    import ganforge.train.run as run_module

    real_train = run_module.train

    def interrupted_train(config, out, resume=None, callbacks=None):
        raise Interrupted(2, 5, Path(out) / "checkpoints" / "step_000005")

    out = tmp_path / "sweep"
    monkeypatch.setattr(run_module, "train", interrupted_train)
    with pytest.raises(Interrupted):
        tune(tiny(), out, n_trials=2, space=LR_ONLY, progress=False)
    monkeypatch.setattr(run_module, "train", real_train)
    result = tune(tiny(), out, n_trials=1, space=LR_ONLY, progress=False)
    assert [t.state for t in result.trials] == ["fail", "complete"] and result.trials[0].interrupted
    assert result.trials[1].params == result.trials[0].params and result.finished == 1


def test_continuing_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "sweep"
    tune(tiny(), out, n_trials=1, space=LR_ONLY, progress=False)
    with pytest.raises(ConfigError, match=r"batch_size: study 64, now 32"):
        tune(tiny(batch_size=32), out, n_trials=2, space=LR_ONLY, progress=False)
    with pytest.raises(ConfigError, match=r"space: study 'lr_g=log:0.0001:0.01', now 'lr_g=log:0.0001:0.1'"):
        tune(tiny(), out, n_trials=2, space=parse_space("lr_g=log:1e-4:1e-1"), progress=False)
    with pytest.raises(ConfigError, match="objective"):
        tune(tiny(), out, n_trials=2, space=LR_ONLY, metric="Loss/G", progress=False)
    assert tune(tiny(threads=2), out, n_trials=1, space=LR_ONLY, progress=False).finished == 1  # harmless change


def test_a_directory_of_trials_without_a_study_is_refused(tmp_path):
    (tmp_path / "trial_0000").mkdir()
    with pytest.raises(ConfigError, match="no study.db"):
        tune(tiny(), tmp_path, n_trials=1, progress=False)


def test_an_impossible_combination_fails_the_trial_not_the_sweep(tmp_path):
    out = tmp_path / "sweep"
    result = tune(tiny(), out, n_trials=2, space=parse_space("pack=choice:3,lr_g=log:1e-4:1e-2"), progress=False)
    assert [t.state for t in result.trials] == ["fail", "fail"] and result.finished == 2
    assert all("--pack 3 needs --batch-size divisible" in t.reason for t in result.trials)
    assert result.best is None and not (out / "best_config.toml").exists()
    assert "No trial has completed" in (out / "summary.md").read_text()
    assert json.loads((out / "summary.json").read_text())["best"] is None


def test_a_diverging_trial_is_pruned_with_its_reason(tmp_path, monkeypatch):
    import ganforge.train.run as run_module

    monkeypatch.setattr(run_module, "sliced_wasserstein", lambda *a, **k: math.nan)
    result = tune(tiny(), tmp_path / "sweep", n_trials=1, space=LR_ONLY, progress=False)
    (trial,) = result.trials
    assert trial.state == "pruned" and trial.steps == 10 and "diverged: Probe/swd is nan at step 10" in trial.reason


def test_evaluation_scores_are_the_objective_when_eval_every_is_set(tmp_path):
    base = tiny(eval_every=20, eval_n=64, eval_metrics=["fd"])
    result = tune(base, tmp_path / "ranked", n_trials=1, space=LR_ONLY, progress=False)
    named = tune(base, tmp_path / "named", n_trials=1, space=LR_ONLY, metric="fd_identity", progress=False)
    for r in (result, named):
        (trial,) = r.trials
        fd = [s["value"] for s in map(json.loads, (trial.run_dir / "metrics.jsonl").read_text().splitlines())]
        assert len(fd) == 2 and trial.value == pytest.approx(min(fd))


def test_a_metric_no_run_records_stops_the_sweep(tmp_path):
    with pytest.raises(ConfigError, match=r"Probe/nothing was never recorded.*Probe/swd"):
        tune(tiny(), tmp_path / "sweep", n_trials=3, space=LR_ONLY, metric="Probe/nothing", progress=False)
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert [t["state"] for t in summary["trials"]] == ["fail"]


def test_timeout_starts_no_trial_after_it(tmp_path):
    assert tune(tiny(), tmp_path / "sweep", n_trials=3, space=LR_ONLY, timeout=1e-9, progress=False).finished == 0


# --- command line -------------------------------------------------------------------------------------------
def test_cli_glue_layers_settings_and_runs_a_sweep(tmp_path, capsys):
    from ganforge import cli

    parser = argparse.ArgumentParser(prog="ganforge")
    sub = parser.add_subparsers(dest="command")
    p = add_tune_parser(sub, cli._add_train_flags)
    p.set_defaults(func=lambda args: cmd_tune(args, cli._explicit_settings))
    toml = tmp_path / "base.toml"
    toml.write_text('data = "ring8"\nbatch_size = 64\nlog_every = 10\nsample_every = 1000\ncheckpoint_every = 1000\n'
                    'model_config = {hidden_g = [32, 32], hidden_d = [32, 32], z_dim = 8}\n')
    out = tmp_path / "sweep"
    args = parser.parse_args(["tune", "--config", str(toml), "--steps", "20", "--threads", "1", "--no-doctor",
                              "--no-report", "--no-progress", "--trials", "2", "--space", "lr_g=log:1e-4:1e-2",
                              "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 trials finished" in printed and "ganforge train --config" in printed
    best = RunConfig.from_dict(load_toml(out / "best_config.toml"))
    assert best.model == "mlp" and best.steps == 20 and best.model_config["z_dim"] == 8  # TOML < flags, mlp default
    with pytest.raises(ConfigError, match="--data"):
        cmd_tune(parser.parse_args(["tune", "--trials", "1"]), cli._explicit_settings)
    with pytest.raises(ConfigError, match="without --resume"):
        cmd_tune(parser.parse_args(["tune", "--data", "ring8", "--resume", "auto"]), cli._explicit_settings)
    assert "sweep directory" in p.format_help()

