"""CycleGANStep and its image pool; CycleGAN runs through the trainer (exact resume, evaluation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.losses import cycle_loss, get_loss, least_squares_generator
from ganforge.monitor import Collector, read_stats
from ganforge.nets import config_for_cyclegan
from ganforge.nets.cyclegan import build
from ganforge.train import RunConfig, train
from ganforge.train.cycle_run import adversarial_weight
from ganforge.train.cycle_step import CycleGANStep, ImagePool

NETS = {"ngf": 4, "ndf": 4, "n_blocks": 1}


# --- the image pool ------------------------------------------------------------------------------------------
def test_pool_returns_new_images_while_filling_then_mixes_in_old_ones():
    pool = ImagePool(4, torch.Generator().manual_seed(0))
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new images themselves
    seen_old = False
    for k in range(1, 30):
        batch = torch.full((4, 1, 1, 1), 100.0 * k)
        out = pool.query(batch)
        assert out.shape == batch.shape
        old = out != batch
        seen_old |= bool(old.any())
        for value in out[old]:  # anything not new was stored in the pool before this call
            assert value < 100.0 * k
        assert len(pool.images) == 4
    assert seen_old


def test_pool_of_size_zero_is_off_and_pool_state_round_trips():
    assert torch.equal(ImagePool(0, torch.Generator()).query(torch.ones(3, 1, 2, 2)), torch.ones(3, 1, 2, 2))
    pool = ImagePool(3, torch.Generator().manual_seed(1))
    pool.query(torch.randn(5, 1, 2, 2))
    other = ImagePool(3, torch.Generator())
    other.load_state_dict(pool.state_dict(), torch.device("cpu"))
    assert all(torch.equal(x, y) for x, y in zip(pool.images, other.images, strict=True))
    with pytest.raises(ConfigError, match="pool-size"):
        ImagePool(-1, torch.Generator())


# --- one step ------------------------------------------------------------------------------------------------
def _step(channels_a=1, channels_b=1, **kwargs):
    torch.manual_seed(0)
    nets = build(config_for_cyclegan(**NETS), DataSpec((channels_a, 16, 16)), DataSpec((channels_b, 16, 16)))
    g_ab, g_ba, d_a, d_b = (nets[k] for k in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"))
    opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    loss = get_loss("lsgan")
    step = CycleGANStep(g_ab, g_ba, d_a, d_b, loss, opt_g, opt_d, noise=torch.Generator().manual_seed(0),
                        adversarial_weight=adversarial_weight("lsgan"), **kwargs)
    return step


def test_adversarial_term_equals_the_reference_mse():
    """The reference trains G with MSE(D(G(x)), 1); our LSGAN G loss x adversarial_weight is the same number."""
    logits = torch.randn(3, 1, 5, 5)
    assert torch.allclose(adversarial_weight("lsgan") * least_squares_generator(logits),
                          F.mse_loss(logits, torch.ones_like(logits)))


@pytest.mark.parametrize("cycle_weight, identity_weight", [(10.0, 0.5), (10.0, 0.0), (3.0, 1.0)])
def test_generator_loss_is_the_weighted_sum_of_its_terms(cycle_weight, identity_weight):
    step = _step(cycle_weight=cycle_weight, identity_weight=identity_weight, pool_size=0)
    a, b = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    g_ab, g_ba, d_a, d_b = step.generator_ab, step.generator_ba, step.discriminator_a, step.discriminator_b
    with torch.no_grad():  # the same forward passes, before any weight moves
        adv = 2 * (least_squares_generator(d_b(g_ab(a))) + least_squares_generator(d_a(g_ba(b))))
        cyc = cycle_weight * (cycle_loss(a, g_ba(g_ab(a))) + cycle_loss(b, g_ab(g_ba(b))))
        idt = identity_weight * cycle_weight * ((g_ab(b) - b).abs().mean() + (g_ba(a) - a).abs().mean())
    out = step([(a, b)])
    assert out["loss_g"].item() == pytest.approx((adv + cyc + idt).item(), rel=1e-5)


def test_one_step_moves_all_four_networks_and_reports_both_directions(tmp_path):
    step = _step()
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in step.networks().items()}
    with Collector(tmp_path / "stats.jsonl") as collector:
        step([(torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1)])
        means = collector.flush(1)
    for name, net in step.networks().items():
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before[name], strict=True)), name
    for key in ("Loss/G", "Loss/D", "Loss/G/adv_ab", "Loss/G/adv_ba", "Loss/G/cycle_a", "Loss/G/cycle_b",
                "Loss/G/identity_a", "Loss/D/a", "Loss/D/b", "D/real", "D/fake", "D/acc_real", "D/acc_fake",
                "Grad/G", "Grad/D"):
        assert key in means, key
    assert 0 <= means["D/real"] <= 1 and 0 <= means["D/acc_fake"] <= 1


def test_identity_loss_needs_equal_channels():
    with pytest.raises(ConfigError, match="identity-weight 0"):
        _step(channels_a=1, channels_b=3, identity_weight=0.5)
    _step(channels_a=1, channels_b=3, identity_weight=0.0)  # fine without it


# --- runs ----------------------------------------------------------------------------------------------------
@pytest.fixture
def domains(tmp_path):
    """Two unpaired 16x16 domains from scikit-learn's digits: A as they are, B inverted; paired test splits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron((digits.images * 16).clip(0, 255).astype(np.uint8), np.ones((1, 2, 2), np.uint8))[:, None]
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, x_train=x[:600], x_test=x[1600:1700])
    np.savez(b, x_train=255 - x[600:1200], x_test=255 - x[1600:1700])  # test B = test A translated: paired
    return a, b


def _config(domains, **overrides):
    a, b = domains
    base = dict(model="cyclegan", data=str(a), data_b=str(b), loss="lsgan", batch_size=4, steps=8,
                model_config=dict(NETS), lr_decay="linear", log_every=2, sample_every=4, checkpoint_every=3,
                progress=False, threads=1, pool_size=3)
    base.update(overrides)
    return RunConfig(**base)


def _weights(run_dir, step):
    d = run_dir / "checkpoints" / f"step_{step:06d}"
    return {p.stem: load_file(str(p)) for p in d.glob("*.safetensors")}


def test_cyclegan_resume_is_bit_identical(tmp_path, domains):
    """The pools are part of the checkpoint: 4 + 4 steps with a stop between equal 8 straight (with the
    learning-rate decay, which depends on the total, running in both)."""
    from ganforge.train.trainer import Callback, StopTraining

    class StopAt4(Callback):
        def on_log(self, trainer, step, means):
            if step == 4:
                raise StopTraining("a test stop")

    straight, split = tmp_path / "straight", tmp_path / "split"
    train(_config(domains), straight)
    assert train(_config(domains), split, callbacks=[StopAt4()]).step == 4
    train(_config(domains), split, resume="auto")
    a, b = _weights(straight, 8), _weights(split, 8)
    assert sorted(a) == ["discriminator_a", "discriminator_b", "generator_ab", "generator_ba"]
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    steps = [r["step"] for r in read_stats(split / "stats.jsonl")]
    assert steps == [2, 4, 6, 8]


def test_cyclegan_run_directory_and_evaluation(tmp_path, domains):
    run = tmp_path / "run"
    train(_config(domains, eval_every=4, eval_n=50, paired_test=True, identity_weight=0.0), run)
    record = json.loads((run / "config.json").read_text())
    assert record["spec_a"]["shape"] == [1, 16, 16] and record["config"]["model"] == "cyclegan"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000004.png", "step_000008.png"]
    assert (run / "report.html").is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    names = {m["metric"] for m in metrics}
    assert {"cycle_l1_a", "cycle_l1_b", "l1_a2b", "psnr_a2b", "ssim_a2b", "l1_b2a", "ssim_b2a"} <= names
    assert {m["step"] for m in metrics} == {4, 8}
    assert all(m["protocol"]["n_real"] == 50 for m in metrics)


def test_cyclegan_settings_that_do_not_apply_are_refused(domains):
    with pytest.raises(ConfigError, match="pack"):
        _config(domains, pack=2).validate()
    with pytest.raises(ConfigError, match="--a and --b"):
        _config(domains, data_b=None).validate()
