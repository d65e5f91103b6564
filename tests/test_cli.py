"""The command line, run in-process through ``main`` (and once as a real process for signals)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main

TINY = ["--model-opt", "ngf=8", "--model-opt", "ndf=8", "--model-opt", "z_dim=16", "--threads", "1", "--no-progress"]


def run_cli(*args):
    return main([str(a) for a in args])


def test_train_then_sample(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--data", "digits", "--steps", 8, "--batch-size", 32, "--out", out,
                   "--sample-every", 4, "--conditional", *TINY) == 0
    printed = capsys.readouterr().out
    assert f"samples: {out / 'samples' / 'step_000008.png'}" in printed
    assert f"report: {out / 'report.html'}" in printed and "<svg" in (out / "report.html").read_text()
    assert (out / "checkpoints" / "step_000008" / "generator.safetensors").exists()

    assert run_cli("sample", out, "--n", 12, "--out", tmp_path / "s.png") == 0
    assert Image.open(tmp_path / "s.png").size[0] > 0
    assert run_cli("sample", out, "--n", 6, "--label", 7, "--out", tmp_path / "s.npz") == 0
    arrays = np.load(tmp_path / "s.npz")
    assert arrays["x"].shape == (6, 1, 8, 8) and arrays["x"].dtype == np.uint8
    assert arrays["y"].tolist() == [7] * 6
    assert run_cli("sample", out, "--n", 3, "--out", tmp_path / "s.npy") == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 1, 8, 8)
    capsys.readouterr()
    assert run_cli("info", out, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["config"]["data"] == "digits" and info["latest_stats"]["step"] == 8
    assert run_cli("info", out) == 0
    assert "checkpoints: 8" in capsys.readouterr().out


def test_toml_config_and_flag_precedence(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "digits"\nsteps = 4\nbatch-size = 16\nloss = "hinge"\n[model_config]\nngf = 8\nndf = 8\n')
    out = tmp_path / "run"
    assert run_cli("train", "--config", cfg, "--loss", "lsgan", "--out", out, "--no-progress", "--threads", 1) == 0
    stored = json.loads((out / "config.json").read_text())["config"]
    assert stored["batch_size"] == 16 and stored["loss"] == "lsgan" and stored["model_config"]["ngf"] == 8


def test_resume_cli(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--data", "digits", "--steps", 4, "--batch-size", 16, "--out", out, *TINY) == 0
    assert run_cli("train", "--out", out, "--resume", "auto", "--steps", 6, "--no-progress") == 0
    assert (out / "checkpoints" / "step_000006").exists()


def _error(capsys, *args):
    code = run_cli(*args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_bad_inputs(tmp_path, capsys):
    assert "unknown dataset" in _error(capsys, "train", "--data", "no_such_data", "--out", tmp_path / "a", *TINY)
    (tmp_path / "empty").mkdir()
    assert "empty" in _error(capsys, "train", "--data", tmp_path / "empty", "--out", tmp_path / "b", *TINY).lower()
    odd = tmp_path / "odd"
    odd.mkdir()
    for i in range(4):
        Image.fromarray(np.full((27, 27), i * 40, dtype=np.uint8)).save(odd / f"{i}.png")
    err = _error(capsys, "train", "--data", odd, "--out", tmp_path / "c", *TINY)
    assert "27" in err and "DCGAN" in err
    assert "positive" in _error(capsys, "train", "--data", "digits", "--steps", "-5", "--out", tmp_path / "d", *TINY)
    assert "positive" in _error(capsys, "train", "--data", "digits", "--steps", "0", "--out", tmp_path / "d", *TINY)
    assert "larger than the dataset" in _error(capsys, "train", "--data", "digits", "--batch-size", 5000,
                                               "--out", tmp_path / "e", *TINY)
    assert "holds no run" in _error(capsys, "train", "--out", tmp_path / "f", "--resume", "auto")
    for name in "abcde":  # none of the refused runs left a directory behind
        assert not (tmp_path / name).exists()


def test_refuses_to_clobber_or_mix_runs(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--data", "digits", "--steps", 2, "--batch-size", 16, "--out", out, *TINY) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert "already holds a run" in _error(capsys, "train", "--data", "digits", "--steps", 2, "--out", out, *TINY)
    err = _error(capsys, "train", "--out", out, "--resume", "auto", "--model", "mlp")
    assert "different model" in err
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_corrupt_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--data", "digits", "--steps", 2, "--batch-size", 16, "--out", out, *TINY) == 0
    weights = out / "checkpoints" / "step_000002" / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "corrupt or truncated" in _error(capsys, "sample", out, "--out", tmp_path / "x.png")
    assert "corrupt or truncated" in _error(capsys, "train", "--out", out, "--resume", "auto", "--steps", 4)
    assert "not a ganforge run" in _error(capsys, "sample", tmp_path, "--out", tmp_path / "x.png")


def test_sigint_writes_checkpoint_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganforge", "train", "--data", "digits", "--steps", "100000", "--batch-size", "16",
         "--out", str(out), "--log-every", "1", "--checkpoint-every", "100000", *TINY],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    stats = out / "stats.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (stats.exists() and stats.stat().st_size > 0):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume auto" in err
    (ckpt,) = (out / "checkpoints").iterdir()
    step = int(ckpt.name.split("_")[1])
    assert step > 0
    assert main(["train", "--out", str(out), "--resume", "auto", "--steps", str(step + 2), "--no-progress"]) == 0
    assert (out / "checkpoints" / f"step_{step + 2:06d}").exists()


def test_doctor_and_report_commands(tmp_path, capsys):
    """A run with a frozen D (its learning rate 1e-12): training writes doctor.jsonl and report.html live;
    `ganforge doctor` replays the stats and names the problem; `ganforge report` rewrites the page."""
    out = tmp_path / "run"
    assert run_cli("train", "--data", "ring8", "--model", "mlp", "--model-opt", "hidden_g=[32,32]",
                   "--model-opt", "hidden_d=[32,32]", "--model-opt", "z_dim=4", "--lr-d", 1e-12, "--steps", 600,
                   "--log-every", 20, "--sample-every", 300, "--out", out, "--no-progress") == 0
    assert (out / "report.html").is_file() and (out / "doctor.jsonl").is_file()
    capsys.readouterr()
    assert run_cli("doctor", out, "--json") == 0
    found = json.loads(capsys.readouterr().out)
    codes = {f["code"] for f in found["findings"]}
    assert "discriminator_not_learning" in codes, codes
    assert run_cli("doctor", out, "--strict") == 1  # a warning
    assert "discriminator_not_learning" in capsys.readouterr().out
    (out / "report.html").unlink()
    assert run_cli("report", out, "--out", tmp_path / "r.html") == 0
    html = (tmp_path / "r.html").read_text()
    assert "discriminator_not_learning" in html and "<svg" in html
    assert "not a ganforge run directory" in _error(capsys, "doctor", tmp_path / "nothing")


def test_help_for_every_subcommand(capsys):
    for sub in ("train", "sample", "info", "eval", "doctor", "report", "tune"):
        with pytest.raises(SystemExit) as e:
            main([sub, "--help"])
        assert e.value.code == 0
    assert "--resume" in capsys.readouterr().out


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "ganforge", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ganforge ")
    assert Path(sys.executable).exists()


def test_resume_can_anneal_a_plateaued_run(tmp_path):
    """--lr-decay on resume: the same weights as a run that had the decay from the start (the schedule is a
    function of the step), and the stored config says what the continued run used."""
    from safetensors.torch import load_file

    base = ["--data", "digits", "--batch-size", 16, "--seed", 3, *TINY]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_cli("train", *base, "--steps", 10, "--lr-decay", "linear", "--lr-decay-start", 0.5,
                   "--out", whole) == 0
    assert run_cli("train", *base, "--steps", 5, "--out", split) == 0
    assert run_cli("train", "--out", split, "--resume", "auto", "--steps", 10, "--lr-decay", "linear",
                   "--lr-decay-start", 0.5, "--no-progress") == 0
    stored = json.loads((split / "config.json").read_text())["config"]
    assert stored["lr_decay"] == "linear" and stored["steps"] == 10
    a, b = (load_file(r / "checkpoints" / "step_000010" / "generator.safetensors") for r in (whole, split))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and switched off again: the learning rate goes back to its base value
    assert run_cli("train", "--out", split, "--resume", "auto", "--steps", 12, "--lr-decay", "none",
                   "--no-progress") == 0
    from ganforge.train.checkpoint import load_state

    group = load_state(split / "checkpoints" / "step_000012")["optimizers"]["generator"]["param_groups"][0]
    assert group["lr"] == group["base_lr"]


def test_checkpoint_by_step_number(tmp_path, capsys):
    """`--checkpoint 2` names checkpoints/step_000002 (RunDir.checkpoint_path), for sampling as for evaluation."""
    out = tmp_path / "run"
    assert run_cli("train", "--data", "digits", "--steps", 4, "--batch-size", 16, "--checkpoint-every", 2,
                   "--keep-checkpoints", 5, "--out", out, *TINY) == 0
    assert run_cli("sample", out, "--n", 4, "--checkpoint", 2, "--out", tmp_path / "a.npy") == 0
    assert run_cli("sample", out, "--n", 4, "--checkpoint", out / "checkpoints" / "step_000002",
                   "--out", tmp_path / "b.npy") == 0
    assert run_cli("sample", out, "--n", 4, "--out", tmp_path / "c.npy") == 0  # latest: step 4
    a, b, c = (np.load(tmp_path / f"{x}.npy") for x in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert "step_000003 does not exist" in _error(capsys, "sample", out, "--checkpoint", 3, "--out", tmp_path / "d.npy")
