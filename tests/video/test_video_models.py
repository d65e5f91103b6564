"""Video networks, steps, streams, training runs and resume."""

import json

import pytest
import torch
from safetensors.torch import load_file
from video_helpers import GENERATE_NET, PREDICT_NET

from ganforge.data.video import ClipWindows, resize_clips
from ganforge.errors import ConfigError
from ganforge.losses import get_loss
from ganforge.monitor import Collector
from ganforge.nets.video import (
    ClipDiscriminator,
    FramePredictor,
    GeneratorConfig,
    PredictorConfig,
    build_generator,
    build_predictor,
)
from ganforge.train import RunConfig, train
from ganforge.train.trainer import Callback, StopTraining
from ganforge.train.video_step import MoCoGANStep, VideoStep


@pytest.mark.parametrize(("size", "levels"), [(32, 3), (64, 3), (16, 2)])
def test_predictor_shapes_any_context_and_horizon(size, levels):
    g = FramePredictor(PredictorConfig(width=4, hidden=8, levels=levels), 1, (size, size))
    for k, m in ((3, 2), (1, 5)):
        out = g(torch.randn(2, k, 1, size, size), m)
        assert out.shape == (2, m, 1, size, size)
        assert float(out.detach().abs().max()) <= 1.0  # tanh: model range


def test_predictor_refuses_bad_sizes_and_inputs():
    with pytest.raises(ConfigError, match="multiples of 8"):
        FramePredictor(PredictorConfig(levels=3), 1, (28, 28))
    g = FramePredictor(PredictorConfig(width=4, hidden=8), 1, (32, 32))
    with pytest.raises(ValueError, match=r"\(B, T, 1, 32, 32\)"):
        g(torch.randn(2, 3, 1, 16, 16), 2)


@pytest.mark.parametrize("frames", [1, 2, 4, 20])
def test_clip_discriminator_any_length(frames):
    d = ClipDiscriminator(1, (32, 32), frames, ndf=4)
    assert d(torch.randn(3, frames, 1, 32, 32)).shape == (3,)


def test_mocogan_generator_keeps_content_and_varies_motion():
    g, di, dv = build_generator(GeneratorConfig(**GENERATE_NET), 1, (32, 32), 6)
    gen = torch.Generator().manual_seed(0)
    z_c, eps, h0 = g.latents(3, 6, gen, "cpu")
    clips = g.eval()(z_c, eps, h0)
    assert clips.shape == (3, 6, 1, 32, 32)
    assert di(clips[:, 0]).shape == (3,) and dv(clips).shape == (3,)
    # same content, other motion noise: a different clip; frames within a clip differ (motion)
    other = g(z_c, torch.randn(3, 6, 4, generator=gen), h0)
    assert not torch.allclose(clips, other)
    assert not torch.allclose(clips[:, 0], clips[:, -1])


def _predict_step(adv_weight):
    torch.manual_seed(0)
    g, d = build_predictor(PredictorConfig(**PREDICT_NET), 1, (32, 32), 8)
    loss = get_loss("non_saturating")
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    step = VideoStep(g, d, loss, opt_g, opt_d, noise=torch.Generator(), context_frames=4, future_frames=4,
                     adv_weight=adv_weight, gdl_weight=1.0)
    return step, g, d


def test_video_step_updates_both_networks_and_reports(tmp_path, clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    stream = ClipWindows(clips, 4, 8, seed=0)
    step, g, d = _predict_step(0.05)
    before_g = [p.detach().clone() for p in g.parameters()]
    before_d = [p.detach().clone() for p in d.parameters()]
    with Collector(tmp_path / "stats.jsonl") as c:
        step([stream.next()])
        means = c.flush(1)
    assert any(not torch.equal(a, b) for a, b in zip(before_g, g.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, d.parameters(), strict=True))
    for key in ("Loss/D", "Loss/G", "Loss/G/mse", "Loss/G/gdl", "Loss/G/adv", "D/real", "D/fake", "D/acc_real",
                "D/acc_fake", "Grad/G", "Grad/D", "Pred/mse_per_frame"):
        assert key in means, key
    # G's loss is the weighted sum of its terms; the adversarial one per pixel of a frame (Mathieu's scale)
    pixels = clips[0, 0].numel()
    expected = means["Loss/G/mse"] + means["Loss/G/gdl"] + 0.05 / pixels * means["Loss/G/adv"]
    assert means["Loss/G"] == pytest.approx(expected, rel=1e-5)


def test_mse_only_step_leaves_the_discriminator_alone(tmp_path, clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    step, g, d = _predict_step(0.0)
    before = [p.detach().clone() for p in d.parameters()]
    with Collector(tmp_path / "stats.jsonl") as c:
        step([ClipWindows(clips, 4, 8, seed=0).next()])
        means = c.flush(1)
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True))
    assert "Loss/D" not in means and "Loss/G/adv" not in means


def test_prediction_loss_falls(clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    stream = ClipWindows(resize_clips(clips, 16), 8, 8, seed=1)  # 16x16 frames keep the test fast
    torch.manual_seed(0)
    g, d = build_predictor(PredictorConfig(width=4, hidden=8, levels=2), 1, (16, 16), 8)
    step = VideoStep(g, d, get_loss("non_saturating"), torch.optim.Adam(g.parameters(), lr=2e-3),
                     torch.optim.Adam(d.parameters(), lr=2e-3), noise=torch.Generator(), context_frames=4,
                     future_frames=4, adv_weight=0.0, gdl_weight=1.0)
    step.measure = False
    losses = [float(step([stream.next()])["loss_g"]) for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_mocogan_step_updates_all_three(tmp_path, clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    torch.manual_seed(0)
    g, di, dv = build_generator(GeneratorConfig(**GENERATE_NET), 1, (32, 32), 6)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam([*di.parameters(), *dv.parameters()], lr=1e-3)
    step = MoCoGANStep(g, di, dv, get_loss("non_saturating"), opt_g, opt_d, noise=torch.Generator().manual_seed(0),
                       image_frames=2)
    nets = (g, di, dv)
    before = [[p.detach().clone() for p in n.parameters()] for n in nets]
    with Collector(tmp_path / "stats.jsonl") as c:
        step([ClipWindows(clips, 4, 6, seed=0).next()])
        means = c.flush(1)
    for b, n in zip(before, nets, strict=True):
        assert any(not torch.equal(x, y) for x, y in zip(b, n.parameters(), strict=True))
    assert {"Loss/D/image", "Loss/D/video", "D/real", "DI/real", "Grad/D_image"} <= set(means)


def test_clip_windows_replay_by_position(clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    a = ClipWindows(clips, 4, 5, seed=3)
    first = [a.next()[0] for _ in range(3)]
    b = ClipWindows(clips, 4, 5, seed=3)
    b.position = 2
    assert torch.equal(b.next()[0], first[2])
    assert first[0].shape == (4, 5, 1, 32, 32) and float(first[0].min()) >= -1
    with pytest.raises(ConfigError, match="fewer than the 9"):
        ClipWindows(clips, 4, 9)


def test_resize_clips_area():
    x = torch.zeros(1, 2, 1, 4, 4, dtype=torch.uint8)
    x[..., :2, :2] = 200
    y = resize_clips(x, 2)
    assert y.dtype == torch.uint8 and y.shape == (1, 2, 1, 2, 2)
    assert y[0, 0, 0].tolist() == [[200, 0], [0, 0]]


def _config(clip_file, **kw):
    base = dict(model="video_predict", data=str(clip_file), context_frames=4, future_frames=4, steps=8,
                batch_size=4, log_every=2, sample_every=4, checkpoint_every=4, progress=False, threads=1,
                model_config=dict(PREDICT_NET))
    base.update(kw)
    return RunConfig(**base)


def _weights(run_dir, step):
    d = run_dir / "checkpoints" / f"step_{step:06d}"
    return {p.stem: load_file(str(p)) for p in d.glob("*.safetensors")}


class _StopAt4(Callback):
    def on_log(self, trainer, step, means):
        if step == 4:
            raise StopTraining("a test stop")


@pytest.mark.parametrize("model", ["video_predict", "video_generate"])
def test_resume_is_bit_identical(tmp_path, clip_file, model):
    extra = {} if model == "video_predict" else {"clip_frames": 6, "model_config": dict(GENERATE_NET)}
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(_config(clip_file, model=model, **extra), straight)
    assert train(_config(clip_file, model=model, **extra), split, callbacks=[_StopAt4()]).step == 4
    train(_config(clip_file, model=model, **extra), split, resume="auto")
    a, b = _weights(straight, 8), _weights(split, 8)
    assert "generator" in a and "discriminator" in a
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)


def test_run_directory_and_evaluation(tmp_path, clip_file):
    from ganforge.train.video_run import evaluate_video, load_video_run, load_video_test_set

    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="video eval RUN_DIR --test"):
        train(_config(clip_file, eval_every=4), run)
    assert not run.exists()  # refused before anything was written
    train(_config(clip_file), run)
    record = json.loads((run / "config.json").read_text())
    assert record["video"] == {"frame_shape": [1, 32, 32], "window": 8}
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000004.png", "step_000008.png"]
    assert (run / "report.html").is_file()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert "Probe/mse" in stats[-1] and "Probe/swd" in stats[-1]
    trained = load_video_run(run)
    with pytest.raises(ConfigError, match="--test"):
        load_video_test_set(trained.config)
    test = load_video_test_set(trained.config, n=6, test=str(clip_file))
    scores = {s.metric: s for s in evaluate_video(trained.config, trained, test)}
    assert set(scores) == {"mse", "mae", "psnr", "ssim", "sharpness", "gradient_ratio"}
    assert scores["mse"].protocol.n_real == 6 and len(scores["mse"].extra["per_step"]) == 4


def test_video_settings_are_checked(clip_file):
    with pytest.raises(ConfigError, match="context-frames"):
        _config(clip_file, context_frames=0).validate()
    with pytest.raises(ConfigError, match="adv-weight"):
        _config(clip_file, adv_weight=-1.0).validate()
    with pytest.raises(ConfigError, match="pack"):
        _config(clip_file, pack=2).validate()


# --- discriminator stabilisers and the doctor's remedies for video -----------------------------------------
def test_video_step_instance_noise_schedule_and_r1(tmp_path, clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    step, g, d = _predict_step(0.05)
    step.load_settings({"instance_noise": 0.5, "instance_noise_steps": 10, "r1_weight": 2.0})
    step.iteration = 4
    assert step.noise_std() == pytest.approx(0.5 * (1 - 4 / 10))
    torch.manual_seed(0)
    x = torch.zeros(4000)
    assert float(step.noised(x).std()) == pytest.approx(0.3, rel=0.05)
    step.iteration = 12
    assert step.noise_std() == 0.0 and torch.equal(step.noised(x), x)  # annealed away, input untouched
    step.iteration = 4
    with Collector(tmp_path / "stats.jsonl") as c:
        step([ClipWindows(clips, 4, 8, seed=0).next()])
        means = c.flush(1)
    assert means["Loss/D/r1"] > 0
    assert step.settings() == {"instance_noise": 0.5, "instance_noise_steps": 10, "instance_noise_start": 0,
                               "r1_weight": 2.0}
    with pytest.raises(ConfigError, match="label_smoothing"):
        step.load_settings({"label_smoothing": 0.1})


def test_instance_noise_and_r1_change_what_the_discriminator_learns(clip_file):
    """Same seeds, same batch: a D step with noise and R1 ends at other weights than one without."""
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    batch = ClipWindows(clips, 4, 8, seed=0).next()
    weights = []
    for settings in ({}, {"instance_noise": 0.3}, {"r1_weight": 10.0}):
        step, g, d = _predict_step(0.05)
        step.load_settings(settings)
        step.measure = False
        torch.manual_seed(1)
        step([batch])
        weights.append(torch.cat([p.detach().flatten() for p in d.parameters()]))
    assert not torch.allclose(weights[0], weights[1]) and not torch.allclose(weights[0], weights[2])


def test_mocogan_step_r1_on_both_discriminators(tmp_path, clip_file):
    from ganforge.data.video import read_clips

    clips, _ = read_clips(clip_file)
    torch.manual_seed(0)
    g, di, dv = build_generator(GeneratorConfig(**GENERATE_NET), 1, (32, 32), 6)
    step = MoCoGANStep(g, di, dv, get_loss("non_saturating"), torch.optim.Adam(g.parameters(), lr=1e-3),
                       torch.optim.Adam([*di.parameters(), *dv.parameters()], lr=1e-3),
                       noise=torch.Generator().manual_seed(0), image_frames=2, instance_noise=0.1, r1_weight=1.0)
    with Collector(tmp_path / "stats.jsonl") as c:
        step([ClipWindows(clips, 4, 6, seed=0).next()])
        means = c.flush(1)
    assert means["Loss/D/r1"] > 0 and means["Loss/D_image/r1"] > 0


def test_video_config_takes_the_stabilisers_it_has(clip_file):
    _config(clip_file, instance_noise=0.1, instance_noise_steps=8, r1_weight=1.0, auto_remedy=True).validate()
    _config(clip_file, model="video_generate", clip_frames=6, r1_weight=1.0).validate()
    with pytest.raises(ConfigError, match="label-smoothing"):
        _config(clip_file, label_smoothing=0.1).validate()
    with pytest.raises(ConfigError, match="MSE-only"):
        _config(clip_file, adv_weight=0.0, r1_weight=1.0).validate()


def test_auto_remedy_on_a_video_run(tmp_path, clip_file, monkeypatch):
    """A planted mode_collapse at step 4 (begun at 3): the video run rolls back to checkpoint 2, switches on
    annealed instance noise in place of DiffAugment (which frames-in-time models lack), halves lr_g, keeps
    the new settings in its checkpoints, and ends at the requested step."""
    from ganforge.monitor.doctor import Doctor, Finding, read_doctor_log
    from ganforge.train.checkpoint import load_state

    real_observe = Doctor.observe

    def observe(self, record):
        found = real_observe(self, record)
        if record["step"] == 4 and not any(r.get("kind") == "action" for r in read_doctor_log(run)):
            found = found + [Finding("mode_collapse", "warning", 3, 4, "planted", {"Probe/diversity": 0.1}, "")]
        return found

    run = tmp_path / "run"
    monkeypatch.setattr(Doctor, "observe", observe)
    result = train(_config(clip_file, log_every=2, checkpoint_every=2, auto_remedy=True), run)
    assert result.step == 8
    actions = [r for r in read_doctor_log(run) if r["kind"] == "action"]
    assert len(actions) == 1
    detail = actions[0]["detail"]
    assert detail["rollback"]["to_step"] == 2
    assert detail["instance_noise"] == [0.0, 0.1] and "augment" not in detail
    state = load_state(run / "checkpoints" / "step_000008")
    assert state["step_settings"]["instance_noise"] == 0.1
    assert state["step_settings"]["instance_noise_start"] == 2  # from the rolled-back step, annealed to the end

