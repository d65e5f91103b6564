"""Stabilisers: DiffAugment, instance noise, label smoothing, packing, presets, and the callback hooks."""

import json

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.losses import get_loss, smooth_real_labels
from ganforge.monitor import read_stats
from ganforge.train import RunConfig, train
from ganforge.train.augment import cutout, diff_augment, parse_policy, translation
from ganforge.train.config import PRESETS, preset_settings
from ganforge.train.trainer import Callback, StopTraining


# --- DiffAugment -----------------------------------------------------------------------------------------
def test_translation_moves_content_by_at_most_an_eighth_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = translation(x)
    assert y.shape == x.shape
    for img in y[:, 0]:
        nz = img.nonzero()
        assert len(nz) == 1  # the dot is moved, never duplicated (shift 2 px, so it stays inside)
        dy, dx = (nz[0] - torch.tensor([8, 8])).tolist()
        assert abs(dy) <= 2 and abs(dx) <= 2
    assert len({tuple(img.nonzero()[0].tolist()) for img in y[:, 0]}) > 5  # per-image shifts
    # content shifted out of the frame is replaced by zeros, not wrapped around
    full = torch.ones(32, 1, 16, 16)
    shifted = translation(full)
    zeros = (shifted == 0).flatten(1).sum(1)
    assert zeros.max() > 0 and (shifted[zeros == 0] == 1).all()


def test_cutout_zeroes_a_half_size_square():
    torch.manual_seed(1)
    x = torch.ones(200, 2, 16, 16)
    y = cutout(x)
    zeros = (y[:, 0] == 0).flatten(1).sum(1)
    assert zeros.max() == 64  # an 8x8 square when it lies fully inside
    assert zeros.min() >= 16  # at a corner at least a quarter of it remains inside
    assert torch.equal(y[:, 0] == 0, y[:, 1] == 0)  # the same square on every channel


def test_diff_augment_is_differentiable_and_seeded():
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    torch.manual_seed(3)
    a = diff_augment(x, parse_policy("color,translation,cutout"))
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(3)
    b = diff_augment(x, parse_policy("color,translation,cutout"))
    assert torch.equal(a, b)


def test_diff_augment_refuses_unknown_policies_and_vectors():
    with pytest.raises(ConfigError, match="unknown policy flip"):
        parse_policy("color,flip")
    with pytest.raises(ConfigError, match="images"):
        diff_augment(torch.zeros(4, 2), ("cutout",))


# --- label smoothing ---------------------------------------------------------------------------------------
def test_one_sided_label_smoothing_matches_bce_with_soft_targets():
    torch.manual_seed(0)
    r, f = torch.randn(32), torch.randn(32)
    smoothed = smooth_real_labels(get_loss("non_saturating"), 0.1)
    want = F.binary_cross_entropy_with_logits(r, torch.full_like(r, 0.9)) + \
        F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    assert torch.allclose(smoothed.discriminator(r, f), want, atol=1e-6)
    ls = smooth_real_labels(get_loss("lsgan"), 0.2)
    assert torch.allclose(ls.discriminator(r, f), 0.5 * ((r - 0.8) ** 2).mean() + 0.5 * (f**2).mean())
    assert smooth_real_labels(get_loss("hinge"), 0.0) is get_loss("hinge")
    with pytest.raises(ConfigError, match="no"):
        smooth_real_labels(get_loss("hinge"), 0.1)


# --- what D sees: instance noise and packing ---------------------------------------------------------------
def _step(tiny_config, tmp_path, **kw):
    from ganforge.train.gan_step import GANStep
    from ganforge.train.run import build_networks

    cfg = tiny_config(**kw)
    g, d = build_networks(cfg, __import__("ganforge.data", fromlist=["load"]).load("digits").spec)
    opt = torch.optim.Adam(d.parameters())
    return GANStep(g, d, get_loss("non_saturating"), torch.optim.Adam(g.parameters()), opt,
                   noise=torch.Generator().manual_seed(0), instance_noise=cfg.instance_noise, pack=cfg.pack)


def test_instance_noise_anneals_to_zero(tiny_config, tmp_path):
    step = _step(tiny_config, tmp_path, instance_noise=0.5)
    x = torch.zeros(16, 1, 8, 8)
    step.iteration = 10**6
    assert step.d_input(x).std() == pytest.approx(0.5, rel=0.15)  # constant without a horizon
    step.load_settings({"instance_noise_steps": 100, "instance_noise_start": 20})
    for iteration, sigma in ((0, 0.5), (20, 0.5), (70, 0.25), (120, 0.0), (500, 0.0)):
        step.iteration = iteration
        assert step.noise_std() == pytest.approx(sigma)
    step.iteration = 70
    assert step.d_input(x).std() == pytest.approx(0.25, rel=0.15)
    step.iteration = 120
    assert torch.equal(step.d_input(x), x)


def test_packing_puts_consecutive_samples_side_by_side(tiny_config, tmp_path):
    step = _step(tiny_config, tmp_path, pack=2)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8)
    packed = step.d_input(x)
    assert packed.shape == (2, 2, 8, 8)
    assert packed[0, :, 0, 0].tolist() == [0.0, 1.0] and packed[1, :, 0, 0].tolist() == [2.0, 3.0]
    assert step.discriminator(packed).shape == (2,)  # D was built for 2 channels


def test_pack_settings_are_checked(tiny_config):
    with pytest.raises(ConfigError, match="divisible"):
        tiny_config(pack=3, batch_size=32).validate()
    with pytest.raises(ConfigError, match="conditional"):
        tiny_config(pack=2, conditional=True).validate()
    with pytest.raises(ConfigError, match="label-smoothing"):
        tiny_config(label_smoothing=0.7).validate()


@pytest.mark.parametrize("data,extra", [
    ("ring8", dict(model="mlp", model_config={"z_dim": 4, "hidden_g": [16], "hidden_d": [16]}, pack=4,
                   instance_noise=0.1, minibatch_std=True)),
    ("digits", dict(diffaugment="translation,cutout", spectral_norm=True, minibatch_std=True, ema=0.99)),
])
def test_stabilised_runs_train_and_sample(tmp_path, tiny_config, data, extra):
    from ganforge.train import load_run

    result = train(tiny_config(data=data, steps=8, **extra), tmp_path / "run")
    last = list(read_stats(tmp_path / "run" / "stats.jsonl"))[-1]
    assert all(torch.isfinite(torch.tensor(float(last[k]))) for k in ("Loss/D", "Loss/G", "Probe/diversity"))
    assert result.step == 8
    samples = load_run(tmp_path / "run").sample(8)
    assert samples.shape[0] == 8


# --- presets ------------------------------------------------------------------------------------------------
def test_presets():
    robust = RunConfig().merged(preset_settings("robust"))
    robust.validate()
    assert robust.preset == "robust" and robust.spectral_norm and robust.ema > 0
    assert robust.model_overrides()["spectral_norm"] is True
    with pytest.raises(ConfigError, match="robust"):
        preset_settings("fast")
    assert set(PRESETS) >= {"robust", "ttur", "dcgan"}


def test_cli_preset_is_layered_under_flags(tmp_path):
    from ganforge.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--preset", "robust", "--ema", "0.9", "--data", "digits", "--model-opt", "ngf=8",
               "--model-opt", "ndf=8", "--steps", "2", "--out", str(out), "--no-progress", "--no-report"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["preset"] == "robust" and cfg["spectral_norm"] is True and cfg["ema"] == 0.9


def test_layer_settings_merges_network_settings_and_swaps_run_lengths():
    from ganforge.train.config import layer_settings

    preset = {"model_config": {"z_dim": 2, "hidden_g": (128, 128)}, "steps": 40_000, "ema": 0.999}
    merged = layer_settings(preset, {"model_config": {"z_dim": 4}, "epochs": 3.0})
    assert merged["model_config"] == {"z_dim": 4, "hidden_g": (128, 128)}  # one key changed, widths kept
    assert "steps" not in merged and merged["epochs"] == 3.0 and merged["ema"] == 0.999
    assert layer_settings({"epochs": 2.0}, {"steps": 10}) == {"steps": 10}
    assert layer_settings(preset, {"model_config": None})["model_config"] is None  # explicit None still wins


def test_cli_mixture2d_preset_trains_the_measured_recipe(tmp_path):
    from ganforge.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--preset", "mixture2d", "--data", "ring8", "--model-opt", "hidden_d=[32,32]",
               "--steps", "30", "--log-every", "10", "--out", str(out), "--no-progress", "--no-report"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["model"] == "mlp" and cfg["preset"] == "mixture2d" and cfg["steps"] == 30
    assert cfg["model_config"]["z_dim"] == 2 and list(cfg["model_config"]["hidden_g"]) == [128, 128, 128]
    assert list(cfg["model_config"]["hidden_d"]) == [32, 32]
    assert cfg["r1_weight"] == 1.0 and cfg["ema"] == 0.999 and cfg["lr_decay"] == "linear"
    # without --steps the preset's 40k steps hold; --epochs replaces them instead of clashing
    from ganforge.cli import _config_from_args, build_parser

    args = build_parser().parse_args(["train", "--preset", "mixture2d", "--data", "grid25", "--epochs", "2"])
    _, settings, _ = _config_from_args(args)
    assert settings["epochs"] == 2 and "steps" not in settings
    args = build_parser().parse_args(["train", "--preset", "mixture2d", "--data", "grid25"])
    assert _config_from_args(args)[1]["steps"] == 40_000


# --- callbacks --------------------------------------------------------------------------------------------
def test_a_callback_can_stop_training_with_a_checkpoint(tmp_path, tiny_config):
    seen = []

    class StopAt6(Callback):
        def on_log(self, trainer, step, means):
            seen.append((step, "Probe/swd" in means))
            if step == 6:
                raise StopTraining("enough")

    result = train(tiny_config(steps=20, log_every=2, checkpoint_every=5), tmp_path / "run", callbacks=[StopAt6()])
    assert result.stopped == "enough" and result.step == 6
    assert seen == [(2, True), (4, True), (6, True)]
    assert (tmp_path / "run" / "checkpoints" / "step_000006").is_dir()


# --- the doctor in the loop -----------------------------------------------------------------------------
def test_auto_remedy_rolls_back_and_switches_on_a_stabiliser(tmp_path, tiny_config, monkeypatch):
    """A planted mode_collapse finding at step 8 (begun at 6): the run goes back to checkpoint 4, turns on
    DiffAugment and halves lr_g, logs the action, and still ends at the requested step."""
    from ganforge.monitor.doctor import Doctor, Finding, read_doctor_log

    real_observe = Doctor.observe
    fired = []

    def observe(self, record):
        found = real_observe(self, record)
        if record["step"] == 8 and not fired:
            fired.append(True)
            found = found + [Finding("mode_collapse", "warning", 6, 8, "planted", {"Probe/diversity": 0.1}, "pack")]
        return found

    monkeypatch.setattr(Doctor, "observe", observe)
    result = train(tiny_config(steps=12, log_every=2, checkpoint_every=4, auto_remedy=True), tmp_path / "run")
    assert result.step == 12
    actions = [r for r in read_doctor_log(tmp_path / "run") if r["kind"] == "action"]
    assert len(actions) == 1 and actions[0]["because"] == "mode_collapse"
    detail = actions[0]["detail"]
    assert detail["rollback"] == {"from_step": 8, "to_step": 4, "checkpoint": "step_000004"}
    assert detail["augment"][1] == ["translation", "cutout"]
    assert detail["lr_g"][1] == pytest.approx(detail["lr_g"][0] / 2)
    # the stats stream was cut back at the rollback and continued without duplicates
    steps = [r["step"] for r in read_stats(tmp_path / "run" / "stats.jsonl")]
    assert steps == [2, 4, 6, 8, 10, 12]
    # the changed settings are in the checkpoint, so a resumed run keeps them
    from ganforge.train.checkpoint import load_state

    state = load_state(tmp_path / "run" / "checkpoints" / "step_000012")
    assert state["step_settings"]["augment"] == ["translation", "cutout"]
    assert state["optimizers"]["generator"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_stop_at_equilibrium_stops_when_the_doctor_says_so(tmp_path, tiny_config, monkeypatch):
    from ganforge.monitor.doctor import Doctor, Finding

    def active(self):
        if self._last_step_seen >= 6:
            return [Finding("healthy_equilibrium", "info", 4, 6, "balanced", {}, "")]
        return []

    real_observe = Doctor.observe

    def observe(self, record):
        self._last_step_seen = record["step"]
        return real_observe(self, record)

    monkeypatch.setattr(Doctor, "active", active)
    monkeypatch.setattr(Doctor, "observe", observe)
    result = train(tiny_config(steps=20, log_every=2, stop_at_equilibrium=True), tmp_path / "run")
    assert result.step == 6 and "equilibrium" in result.stopped


def test_linear_lr_decay(tmp_path, tiny_config):
    from ganforge.train.checkpoint import load_state

    train(tiny_config(steps=10, lr_decay="linear", lr_decay_start=0.5, checkpoint_every=5), tmp_path / "run")
    for step, factor in ((5, 1.0), (10, 0.2)):  # the lr of the last step taken: step 4 (1.0), step 9 (1 - 4/5)
        groups = load_state(tmp_path / "run" / "checkpoints" / f"step_{step:06d}")["optimizers"]
        for name in ("generator", "discriminator"):
            g = groups[name]["param_groups"][0]
            assert g["base_lr"] == pytest.approx(2e-4) and g["lr"] == pytest.approx(2e-4 * factor)
    with pytest.raises(ConfigError, match="lr-decay"):
        tiny_config(lr_decay="cosine").validate()


def test_resume_keeps_one_doctor_log(tmp_path, tiny_config, monkeypatch):
    """A resumed run drops the first session's end-of-session summaries and the findings of the part it redoes."""
    from ganforge.monitor.doctor import Doctor, Finding, read_doctor_log

    real_observe = Doctor.observe

    def observe(self, record):  # a finding that begins at step 4, whichever session sees it
        found = real_observe(self, record)
        if record["step"] == 4:
            found = found + [Finding("oscillation", "warning", 4, 4, "planted", {}, "")]
        return found

    monkeypatch.setattr(Doctor, "observe", observe)
    train(tiny_config(steps=6, log_every=2, checkpoint_every=2), tmp_path / "run")
    assert [r["final"] for r in read_doctor_log(tmp_path / "run") if r.get("final")] == []  # none open at the end
    (tmp_path / "run" / "doctor.jsonl").open("a").write(
        '{"kind": "finding", "code": "oscillation", "severity": "warning", "step": 2, "last_step": 6, '
        '"message": "m", "evidence": {}, "advice": "", "final": true}\n')
    train(tiny_config(steps=8, log_every=2, checkpoint_every=2), tmp_path / "run", resume=str(
        tmp_path / "run" / "checkpoints" / "step_000002"))
    log = read_doctor_log(tmp_path / "run")
    assert not any(r.get("final") and r["step"] == 2 for r in log)
    assert [r["step"] for r in log if r["code"] == "oscillation" and not r.get("final")] == [4]


# --- more generator updates per step --------------------------------------------------------------------
def test_g_steps_updates_the_generator_that_many_times_per_step(tiny_config, tmp_path):
    from ganforge.train.gan_step import GANStep
    from ganforge.train.run import build_networks

    spec = __import__("ganforge.data", fromlist=["load"]).load("digits").spec
    cfg = tiny_config(pack=2)
    real = torch.rand(8, 1, 8, 8) * 2 - 1
    after = {}
    for g_steps in (1, 2):
        torch.manual_seed(0)
        g, d = build_networks(cfg, spec)
        opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
        step = GANStep(g, d, get_loss("non_saturating"), opt_g, opt_d, noise=torch.Generator().manual_seed(0),
                       pack=2, g_steps=g_steps)
        step([(real, None)])
        steps_g = {int(s["step"]) for s in opt_g.state.values()}
        steps_d = {int(s["step"]) for s in opt_d.state.values()}
        assert steps_g == {g_steps} and steps_d == {1}
        after[g_steps] = torch.cat([p.detach().flatten() for p in g.parameters()])
    assert not torch.equal(after[1], after[2])
    with pytest.raises(ConfigError, match="--g-steps"):
        GANStep(g, d, get_loss("non_saturating"), opt_g, opt_d, noise=torch.Generator(), g_steps=0)
    with pytest.raises(ConfigError, match="--g-steps"):
        tiny_config(g_steps=0).validate()


def test_g_steps_flag_reaches_the_config_and_is_refused_where_no_step_has_it():
    from ganforge.cli import _config_from_args, build_parser

    _, settings, _ = _config_from_args(build_parser().parse_args(["train", "--g-steps", "2", "--data", "digits"]))
    assert settings["g_steps"] == 2 and RunConfig(**settings).g_steps == 2
    with pytest.raises(ConfigError, match="--g-steps"):
        RunConfig(model="cyclegan", data="digits", data_b="digits", g_steps=2).validate()
