import json

import pytest
import torch
from safetensors.torch import load_file

from ganforge.errors import ConfigError
from ganforge.monitor import read_stats
from ganforge.train import load_run, train


def _weights(run_dir, step):
    d = run_dir / "checkpoints" / f"step_{step:06d}"
    return {name: load_file(str(p)) for name in ("generator", "discriminator", "generator_ema")
            if (p := d / f"{name}.safetensors").exists()}


@pytest.mark.parametrize("variant", [
    dict(),
    dict(conditional=True, ema=0.9, model="mlp", model_config={"z_dim": 8, "hidden_g": [32], "hidden_d": [32]}),
    dict(loss="wasserstein", gp_weight=10.0, n_critic=2),
    dict(diffaugment="color,translation,cutout", instance_noise=0.1, instance_noise_steps=9, label_smoothing=0.1,
         pack=2, spectral_norm=True, r1_weight=1.0, g_steps=2),
])
def test_resume_is_bit_identical(tmp_path, tiny_config, variant):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tiny_config(steps=12, checkpoint_every=4, **variant), straight)
    train(tiny_config(steps=6, checkpoint_every=4, **variant), split)  # checkpoint at 4, and 6 (the end)
    train(tiny_config(steps=12, checkpoint_every=4, **variant), split, resume="auto")
    a, b = _weights(straight, 12), _weights(split, 12)
    assert a.keys() == b.keys() and "generator" in a
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    # the stats stream of the resumed run continues where the first part stopped, without duplicates
    steps = [r["step"] for r in read_stats(split / "stats.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_run_directory_contents(tmp_path, tiny_config):
    result = train(tiny_config(steps=10, conditional=True), tmp_path / "run")
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["conditional"] is True and config["spec"]["n_classes"] == 10
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000005.png", "step_000010.png"]
    records = list(read_stats(run / "stats.jsonl"))
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10]
    for key in ("Loss/D", "Loss/G", "D/real", "D/fake", "D/acc_real", "D/acc_fake", "Grad/D", "Grad/G"):
        assert key in records[-1]
    assert result.last_sample == run / "samples" / "step_000010.png"
    # one row per class in the conditional grid: 10 rows of 8
    from PIL import Image

    grid = Image.open(result.last_sample)
    cell = 32 + 2  # 8x8 digits are enlarged to 32 px, 2 px padding
    assert grid.size == (8 * cell + 2, 10 * cell + 2)


def test_discriminator_learns_on_real_data(tmp_path, tiny_config):
    """A smoke test of the step's direction: early on, D separates real from fake and its loss falls."""
    train(tiny_config(steps=30, log_every=5, model_config={"ngf": 8, "ndf": 8, "z_dim": 16}), tmp_path / "r")
    records = list(read_stats(tmp_path / "r" / "stats.jsonl"))
    assert records[-1]["Loss/D"] < records[0]["Loss/D"]
    assert records[-1]["D/real"] > records[-1]["D/fake"]


def test_load_run_and_sample(tmp_path, tiny_config):
    train(tiny_config(steps=6, conditional=True, ema=0.99), tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.uses_ema
    x = run.sample(5, labels=3, seed=1)
    assert x.shape == (5, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, run.sample(5, labels=3, seed=1))  # seeded
    assert not torch.equal(x, run.sample(5, labels=4, seed=1))  # the label matters
    with pytest.raises(ConfigError, match="out of range"):
        run.sample(2, labels=10)


def test_bad_configs(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="larger than the dataset"):
        train(tiny_config(batch_size=100000), tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match="positive"):
        train(tiny_config(steps=0), tmp_path / "b")
    with pytest.raises(ConfigError, match="holds no run"):
        train(tiny_config(), tmp_path / "c", resume="auto")
    train(tiny_config(steps=2), tmp_path / "d")
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(steps=2), tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        train(tiny_config(steps=2), tmp_path / "e")
    assert (tmp_path / "e" / "precious.txt").read_text() == "keep me"
