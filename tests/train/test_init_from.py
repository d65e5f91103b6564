"""--init-from: a new run's generator starts from another run's checkpoint (weights only)."""

import json

import numpy as np
import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.train import RunConfig, train
from ganforge.train.checkpoint import load_weights, warm_start
from ganforge.train.run import build_networks, load_run
from ganforge.train.video_run import build_video_networks


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal up to what Adam moves a weight in a few steps at lr 1e-12 (BN running stats excluded)."""
    keys = [k for k in a if "running" not in k and "num_batches" not in k]
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-8) for k in keys)


def test_image_gan_starts_from_the_source_generator(tmp_path, tiny_config):
    train(tiny_config(steps=6), tmp_path / "a")
    source = load_weights(tmp_path / "a" / "checkpoints" / "step_000006", "generator")
    # a vanishing learning rate for G: after training, G must still hold the source weights
    config = tiny_config(steps=2, lr_g=1e-12, init_from=str(tmp_path / "a"), seed=7)
    train(config, tmp_path / "b")
    after = load_weights(tmp_path / "b" / "checkpoints" / "step_000002", "generator")
    assert _same(source, after)
    record = json.loads((tmp_path / "b" / "config.json").read_text())
    assert record["init_from_checkpoint"].endswith("step_000006")
    # without --init-from the same seed starts elsewhere
    train(tiny_config(steps=2, lr_g=1e-12, seed=7), tmp_path / "c")
    assert not _same(source, load_weights(tmp_path / "c" / "checkpoints" / "step_000002", "generator"))


def test_resume_uses_the_run_own_checkpoint_not_the_source(tmp_path, tiny_config):
    train(tiny_config(steps=4), tmp_path / "a")
    train(tiny_config(steps=4, init_from=str(tmp_path / "a"), seed=3), tmp_path / "b")
    assert load_run(tmp_path / "b").config.init_from == str(tmp_path / "a")
    # the same 8 steps in one go, and as 4 + a resume: the resume continues from b's own step 4 (were the
    # source loaded again, its weights would replace b's and the two would differ)
    train(tiny_config(steps=8, init_from=str(tmp_path / "a"), seed=3), tmp_path / "straight")
    train(tiny_config(steps=8, init_from=str(tmp_path / "a"), seed=3), tmp_path / "b", resume="auto")
    resumed = load_weights(tmp_path / "b" / "checkpoints" / "step_000008", "generator")
    straight = load_weights(tmp_path / "straight" / "checkpoints" / "step_000008", "generator")
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_a_checkpoint_directory_works_too(tmp_path, tiny_config):
    train(tiny_config(steps=10), tmp_path / "a")
    config = tiny_config()
    g, _ = build_networks(config, _digits_spec(config))
    used = warm_start(tmp_path / "a" / "checkpoints" / "step_000005", g)
    assert used.name == "step_000005"
    assert _same(g.state_dict(), load_weights(used, "generator"))


def _digits_spec(config):
    from ganforge.train.run import _load_data

    return _load_data(config).spec


def test_bad_sources_say_what_to_give(tmp_path, tiny_config):
    config = tiny_config()
    g, _ = build_networks(config, _digits_spec(config))
    with pytest.raises(ConfigError, match="not a run directory"):
        warm_start(tmp_path, g)
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no checkpoint yet"):
        warm_start(tmp_path / "empty", g)
    train(tiny_config(steps=5, model_config={"ngf": 16, "ndf": 8, "z_dim": 16}), tmp_path / "wide")
    with pytest.raises(ConfigError, match="does not fit"):
        warm_start(tmp_path / "wide", g)
    with pytest.raises(ConfigError, match="not available for cyclegan"):
        RunConfig(model="cyclegan", data="a", data_b="b", init_from="x", steps=1).validate()


def test_video_predictor_fine_tunes_from_an_mse_run(tmp_path):
    clips = (np.random.default_rng(0).random((16, 6, 1, 16, 16)) * 255).astype("uint8")
    np.save(tmp_path / "clips.npy", clips)
    base = dict(model="video_predict", data=str(tmp_path / "clips.npy"), batch_size=4, context_frames=3,
                future_frames=3, model_config={"width": 4, "hidden": 8}, progress=False, doctor=False,
                sample_every=100, checkpoint_every=2, log_every=1, threads=1)
    train(RunConfig(steps=2, adv_weight=0.0, **base), tmp_path / "mse")
    config = RunConfig(steps=2, adv_weight=0.01, spectral_norm=True, lr_g=1e-12, init_from=str(tmp_path / "mse"),
                       **base)
    nets = build_video_networks(config, (1, 16, 16))
    source = load_weights(tmp_path / "mse" / "checkpoints" / "step_000002", "generator")
    assert not _same(nets["generator"].state_dict(), source)
    train(config, tmp_path / "adv")
    assert _same(load_weights(tmp_path / "adv" / "checkpoints" / "step_000002", "generator"), source)
    stats = [json.loads(line) for line in (tmp_path / "adv" / "stats.jsonl").read_text().splitlines()]
    assert any("D/real" in s for s in stats)  # the adversarial phase ran
