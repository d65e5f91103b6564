"""Discriminator rejection sampling: the acceptance rule against a closed form, and a trained 2-D run."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.train import RunConfig, load_run, train
from ganforge.train.rejection import RejectionSampler, fit_rejection, load_rejection


class _FirstCoordinate(nn.Module):
    """A 'generator' whose samples are N(0, 1) in 1-D."""

    z_dim = 1

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, z, labels=None):
        return z + 0 * self.dummy


class _ExactRatio(nn.Module):
    """The exact log density ratio of N(1, 1) to N(0, 1): log p_data(x) - log p_G(x) = x - 1/2."""

    def forward(self, x, labels=None):
        return x.flatten() - 0.5


def _sampler():
    run = type("Run", (), {})()
    run.generator = _FirstCoordinate()
    run.spec = DataSpec(shape=(1,), kind="vector", n_classes=0, name="normal")
    return RejectionSampler(run, _ExactRatio(), {})


def test_exact_ratio_turns_the_generator_into_the_data():
    """With the true density ratio, accepted samples of N(0, 1) follow N(1, 1) (γ = 0 is plain rejection
    sampling), and the acceptance rate is exp(-M) E[exp(x - 1/2)] = exp(-M) for the bound M reached."""
    sampler = _sampler()
    x = sampler.sample(20_000, seed=0).flatten().numpy()
    assert abs(x.mean() - 1.0) < 0.03 and abs(x.std() - 1.0) < 0.03
    rate = sampler.info["last_acceptance"]
    assert 0.005 < rate < 0.2  # M is about the largest of 10,000 draws of x - 1/2: exp(-M) ~ 0.03
    # a negative gamma accepts more and is less faithful; a positive one accepts fewer
    loose = _sampler()
    y = loose.sample(5000, seed=1, gamma=-6.0).flatten().numpy()
    assert loose.info["last_acceptance"] > 5 * rate and y.mean() < 0.9


def test_seeded_and_refuses_bad_requests():
    a, b = _sampler().sample(500, seed=3), _sampler().sample(500, seed=3)
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="positive"):
        _sampler().sample(0)
    with pytest.raises(ConfigError, match="conditional"):
        _sampler().sample(5, labels=1)
    with pytest.raises(ConfigError, match="rejection-gamma"):  # nothing can be accepted at this shift
        _sampler().sample(50, gamma=60.0, max_candidates_per_sample=2)


def _distance_to_modes(x):
    """Mean distance of each sample to its nearest ring8 mode (the ring has radius 2, modes std 0.02)."""
    from ganforge.data.toy import RING8

    x = np.asarray(x)
    return float(np.linalg.norm(x[:, None, :] - RING8.modes[None], axis=2).min(1).mean())


@pytest.mark.slow
def test_rejection_sharpens_a_trained_ring(tmp_path):
    """A short ring8 run spreads mass between and around the modes; the fitted ratio removes much of it."""
    config = RunConfig(model="mlp", data="ring8", model_config={"z_dim": 8, "hidden_g": [64, 64], "hidden_d": [64, 64]},
                       steps=600, batch_size=128, seed=0, sample_every=600, checkpoint_every=600, log_every=100,
                       progress=False, threads=1, report=False)
    run_dir = tmp_path / "run"
    train(config, run_dir)
    plain = _distance_to_modes(load_run(run_dir).sample(2000, seed=5))
    sampler = fit_rejection(run_dir, steps=2000, progress=False)
    sharp = _distance_to_modes(sampler.sample(2000, seed=5))
    assert sharp < 0.7 * plain, (plain, sharp)
    info = json.loads((run_dir / "rejection" / "rejection.json").read_text())
    assert info["checkpoint"] == "step_000600" and info["steps"] == 2000
    again = load_rejection(run_dir)  # reloaded: same weights, same samples for the same seed
    assert torch.equal(again.sample(300, seed=9), sampler.sample(300, seed=9))


def test_cli_rejection_fits_once_and_reuses(tmp_path, capsys):
    from ganforge.cli import main

    run_dir = tmp_path / "run"
    config = RunConfig(model="mlp", data="ring8", model_config={"z_dim": 4, "hidden_g": [16], "hidden_d": [16]},
                       steps=20, batch_size=32, sample_every=20, checkpoint_every=20, log_every=10, progress=False,
                       threads=1, report=False)
    train(config, run_dir)
    args = ["sample", str(run_dir), "--n", "50", "--rejection", "--rejection-steps", "20", "--rejection-gamma", "-3",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.npy")]) == 0
    assert "of candidates accepted" in capsys.readouterr().out
    weights = run_dir / "rejection" / "discriminator.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert main([*args, "--out", str(tmp_path / "b.npy")]) == 0
    assert weights.stat().st_mtime_ns == stamp  # reused, not refitted
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert np.load(tmp_path / "a.npy").shape == (50, 2)
    # another learning rate is another fit: refitted, and recorded
    assert main([*args, "--rejection-lr", "1e-3", "--out", str(tmp_path / "c.npy")]) == 0
    assert weights.stat().st_mtime_ns != stamp
    assert json.loads((run_dir / "rejection" / "rejection.json").read_text())["lr"] == 1e-3


def test_packed_runs_get_a_fresh_single_sample_discriminator(tmp_path):
    """A packed run's D judges pairs; rejection sampling trains a fresh D of the same family for one sample,
    without minibatch-std (a sample's score must not depend on its batch mates), and reloads it exactly."""
    run_dir = tmp_path / "run"
    config = RunConfig(model="mlp", data="ring8", model_config={"z_dim": 4, "hidden_g": [16], "hidden_d": [16]},
                       steps=40, batch_size=32, pack=2, minibatch_std=True, sample_every=40, checkpoint_every=40,
                       log_every=10, progress=False, threads=1, report=False)
    train(config, run_dir)
    with pytest.raises(ConfigError, match="no rejection discriminator"):
        load_rejection(run_dir)
    sampler = fit_rejection(run_dir, steps=300, lr=1e-3, progress=False)
    assert sampler.info["fresh_discriminator"] is True
    assert sampler.discriminator.minibatch_std is None  # the run's D had it
    x = torch.randn(64, 2)
    assert sampler.discriminator(x).numel() == 64  # one score per sample
    assert sampler.info["final_loss"] < 2 * math.log(2)  # it tells this early G's samples from the ring
    again = load_rejection(run_dir)
    assert again.info["fresh_discriminator"] is True
    with torch.no_grad():
        assert torch.equal(sampler.discriminator.eval()(x), again.discriminator.eval()(x))
    out = sampler.sample(100, seed=0, gamma=-3.0)
    assert out.shape == (100, 2) and math.isfinite(float(out.sum()))
