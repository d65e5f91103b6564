"""Training, loading and evaluating video models: future-frame prediction (``model="video_predict"``)
and clip generation (``model="video_generate"``, MoCoGAN).

Data: ``"moving_mnist"`` (clips drawn on the fly from MNIST training digits; evaluation on the fixed,
cached test set built from MNIST *test* digits, see `ganforge.data.video`), or a clip file/folder that
`ganforge.data.video.read_clips` reads, from which training windows are cut at random. ``image_size``
resizes frames (e.g. 32 for a cheaper CPU run; Moving MNIST is drawn at 64 and area-downscaled).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganforge import __version__
from ganforge.data.images import to_model_range
from ganforge.data.video import (
    ClipWindows,
    MovingMNIST,
    ResizedStream,
    _batch_seed,
    _mnist_digits,
    moving_mnist,
    moving_mnist_test_set,
    read_clips,
    resize_clips,
)
from ganforge.errors import CheckpointError, ConfigError
from ganforge.grid import save_grid
from ganforge.losses import get_loss
from ganforge.monitor import report
from ganforge.train.checkpoint import load_weights, warm_start
from ganforge.train.config import VIDEO_MODELS, RunConfig
from ganforge.train.quality import sliced_wasserstein
from ganforge.train.rundir import RunDir
from ganforge.train.runtime import configure_threads, resolve_device
from ganforge.train.trainer import Callback, Trainer, TrainResult
from ganforge.train.video_step import MoCoGANStep, VideoStep

MOVING_MNIST = "moving_mnist"
N_VALID = 64  # fixed validation clips for the checkpoint score and the probes
N_PREVIEW = 4  # clips in a sample grid
VALID_SEED_OFFSET = 99_991  # validation clips: MNIST *training* digits, a seed no training batch uses


def window_frames(config: RunConfig) -> int:
    """Frames per training example: context + future (prediction) or the clip length (generation)."""
    return config.context_frames + config.future_frames if config.model == "video_predict" else config.clip_frames


def _is_moving_mnist(data: str) -> bool:
    return str(data).lower().replace("-", "_") == MOVING_MNIST


def frame_size(config: RunConfig, native: int) -> int:
    return int(config.image_size) if config.image_size else native


@dataclass
class VideoData:
    stream: Any  # next() -> (clips (B, T, C, H, W) in [-1, 1], None); position settable
    valid: Tensor  # uint8 (N_VALID, T, C, H, W): fixed clips for scores, probes and previews (never test data)
    shape: tuple[int, int, int]  # (C, H, W) of a frame as the model sees it
    source: str
    n_examples: int  # clips available (for --epochs); Moving MNIST counts as 10,000 per epoch


def load_video_data(config: RunConfig, device: torch.device, clips: Tensor | None = None) -> VideoData:
    """The training stream and fixed validation clips ``config`` describes (or uint8 ``clips`` given in
    memory in place of reading ``config.data``); ConfigError when unreadable."""
    window = window_frames(config)
    if _is_moving_mnist(config.data):
        digits = _mnist_digits("train", config.data_dir)
        stream: Any = MovingMNIST(config.batch_size, digits=digits, n_frames=window, n_digits=config.video_digits,
                                  seed=config.seed, device=device)
        valid = moving_mnist(digits, N_VALID, window, n_digits=config.video_digits,
                             seed=_batch_seed(config.seed, VALID_SEED_OFFSET))
        source, n_examples, native = f"moving_mnist ({config.video_digits} digits, MNIST train)", 10_000, 64
    else:
        if clips is None:
            clips, _ = read_clips(config.data)
        stream = ClipWindows(clips, config.batch_size, window, seed=config.seed, device=device)
        valid = ClipWindows(clips, N_VALID, window, seed=config.seed + VALID_SEED_OFFSET).batch(0)
        source, n_examples, native = str(config.data), len(clips), clips.shape[-1]
        if clips.shape[-1] != clips.shape[-2] and config.image_size:
            raise ConfigError(f"--image-size resizes to squares; {config.data} has {clips.shape[-2]}x"
                              f"{clips.shape[-1]} frames: drop --image-size")
    size = frame_size(config, native)
    if size != valid.shape[-1]:
        stream = ResizedStream(stream, size)
        valid = resize_clips(valid, size)
    return VideoData(stream, valid, tuple(valid.shape[2:]), source, n_examples)  # type: ignore[arg-type]


def build_video_networks(config: RunConfig, shape: tuple[int, int, int]) -> dict[str, nn.Module]:
    """The networks of a video run, by name as they are stored in checkpoints."""
    from ganforge.nets import video

    c, h, w = shape
    overrides = config.model_overrides()
    torch.manual_seed(config.seed)  # the initial weights are part of the run: a function of the seed only
    if config.model == "video_predict":
        net_config = _config(video.PredictorConfig, overrides)
        g, d = video.build_predictor(net_config, c, (h, w), window_frames(config))
        return {"generator": g, "discriminator": d}
    net_config = _config(video.GeneratorConfig, overrides)
    g, di, dv = video.build_generator(net_config, c, (h, w), config.clip_frames)
    return {"generator": g, "image_discriminator": di, "discriminator": dv}


def _config(cls: type, overrides: dict[str, Any]) -> Any:
    import dataclasses

    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown video model setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return cls(**overrides)


def _generate_clips(generator: nn.Module, n: int, frames: int, seed: int, device: torch.device,
                    batch_size: int = 64) -> Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    out = []
    was = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            for i in range(0, n, batch_size):
                m = min(batch_size, n - i)
                out.append(generator(*generator.latents(m, frames, g, device)).cpu())
    finally:
        generator.train(was)
    return torch.cat(out)


def _predict(predictor: nn.Module, context: Tensor, n_frames: int, device: torch.device,
             batch_size: int = 64) -> Tensor:
    was = predictor.training
    predictor.eval()
    try:
        with torch.no_grad():
            out = [predictor(context[i: i + batch_size].to(device), n_frames).cpu()
                   for i in range(0, len(context), batch_size)]
    finally:
        predictor.train(was)
    return torch.cat(out)


def train_video(config: RunConfig, out: str | os.PathLike, resume: str | None = None,
                callbacks: list[Callback] | None = None, clips: Tensor | None = None) -> TrainResult:
    """Train a video model as ``config`` says, writing the run directory ``out``.

    Same contract as `ganforge.train.train`: ``resume`` None / ``"auto"`` / a checkpoint path; callbacks
    may stop the run; `Interrupted` after a checkpoint on SIGINT/SIGTERM. ``clips`` (uint8 (N, T, C, H, W))
    trains on an array: it is saved as ``config.data`` (a path inside ``out``) when the run is created, so
    ``--resume`` and the record find it there.
    """
    if config.model not in VIDEO_MODELS:
        raise ConfigError(f"train_video needs model video_predict or video_generate, got {config.model!r}")
    config.validate()
    if config.eval_every > 0 and not _is_moving_mnist(config.data):
        raise ConfigError(f"--eval-every needs held-out clips: Moving MNIST has a fixed test set, {config.data} "
                          "has none; train without --eval-every and score the run afterwards with `ganforge "
                          "video eval RUN_DIR --test HELD_OUT_CLIPS`")
    from ganforge.train.run import fit_trainer, mean_pairwise_distance, resume_checkpoint

    run = RunDir(out)
    checkpoint = resume_checkpoint(run, resume)
    configure_threads(config.threads)
    device = resolve_device(config.device)
    data = load_video_data(config, device, clips)
    total = config.total_steps(data.n_examples)
    nets = build_video_networks(config, data.shape)
    warm = warm_start(config.init_from, nets["generator"]) if config.init_from and checkpoint is None else None
    for net in nets.values():
        net.to(device)
    loss = get_loss(config.loss)
    noise = torch.Generator(device=device).manual_seed(config.seed)
    torch.manual_seed(config.seed)
    generator = nets["generator"]
    d_params = [p for name, net in nets.items() if name != "generator" for p in net.parameters()]
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(d_params, lr=config.lr_d, betas=config.betas)
    valid = to_model_range(data.valid)  # (N_VALID, T, C, H, W) in [-1, 1], CPU
    k, m = config.context_frames, config.future_frames
    step: VideoStep | MoCoGANStep
    stabilisers = {"instance_noise": config.instance_noise, "instance_noise_steps": config.instance_noise_steps,
                   "r1_weight": config.r1_weight}
    if config.model == "video_predict":
        step = VideoStep(generator, nets["discriminator"], loss, opt_g, opt_d, noise=noise, context_frames=k,
                         future_frames=m, adv_weight=config.adv_weight, gdl_weight=config.gdl_weight,
                         **stabilisers)

        def preview(path: Path) -> None:
            """Per clip two rows: the true clip, then its context followed by the prediction."""
            clips = valid[:N_PREVIEW]
            pred = _predict(generator, clips[:, :k], m, device)
            rows = []
            for clip, p in zip(clips, pred, strict=True):
                rows += [clip[: k + m], torch.cat([clip[:k], p])]
            save_grid(torch.cat(rows), path, nrow=k + m)

        def predictions() -> Tensor:
            return _predict(generator, valid[:, :k], m, device)

        def score() -> float:
            """MSE per frame (summed over the frame, pixels in [0, 1]) on the fixed validation clips."""
            return float(((predictions() - valid[:, k: k + m]) / 2).pow(2).sum(dim=(2, 3, 4)).mean())

        def probe() -> None:
            pred = predictions()
            report("Probe/mse", float(((pred - valid[:, k: k + m]) / 2).pow(2).sum(dim=(2, 3, 4)).mean()))
            report("Probe/swd", sliced_wasserstein(pred.flatten(0, 1), valid[:, k: k + m].flatten(0, 1),
                                                   n_projections=64))
    else:
        net_config = generator.config
        step = MoCoGANStep(generator, nets["image_discriminator"], nets["discriminator"], loss, opt_g, opt_d,
                           noise=noise, image_frames=net_config.image_frames, **stabilisers)
        t = config.clip_frames
        real_spread = mean_pairwise_distance(valid)

        def preview(path: Path) -> None:
            clips = _generate_clips(generator, 2 * N_PREVIEW, t, config.seed + 1, device)
            save_grid(clips.flatten(0, 1), path, nrow=t)

        def fakes() -> Tensor:
            return _generate_clips(generator, N_VALID, t, config.seed + 2, device)

        def score() -> float:
            return sliced_wasserstein(fakes(), valid)

        def probe() -> None:
            fake = fakes()
            report("Probe/swd", sliced_wasserstein(fake, valid, n_projections=64))
            report("Probe/diversity", mean_pairwise_distance(fake) / max(real_spread, 1e-12))

    record = {
        "ganforge_version": __version__,
        "config": config.to_dict(),
        "video": {"frame_shape": list(data.shape), "window": window_frames(config)},
        "data_source": data.source,
        "total_steps": total,
        "device": str(device),
    }
    if warm is not None:
        record["init_from_checkpoint"] = str(warm)
    if checkpoint is None:
        run.create(record)
        if clips is not None:
            from ganforge.data.video import write_clips

            write_clips(clips, config.data)
    evaluator = None
    if config.eval_every > 0:
        from ganforge.metrics.protocol import append_scores

        test = load_video_test_set(config, n=config.eval_n)

        def evaluator(at_step: int) -> float:
            scores = evaluate_video(config, nets, test, device=device, seed=config.seed)
            for s in scores:
                s.step, s.checkpoint = at_step, f"step_{at_step:06d}"
            append_scores(run.path / "metrics.jsonl", scores)
            primary = config.best_metric or ("mse" if config.model == "video_predict" else "swd_clips")
            return next((s.value for s in scores if s.metric == primary), scores[0].value)
    hooks: list[Callback] = []
    if config.doctor:
        from ganforge.train.doctor_hook import DoctorCallback

        hooks.append(DoctorCallback(config, run.path, n_classes=0, total_steps=total, is_image=True))
    hooks += list(callbacks or [])
    trainer = Trainer(step, data.stream, run, config, total, preview=preview, score=score,  # type: ignore[arg-type]
                      evaluate=evaluator, probe=probe, callbacks=hooks)
    what = (f"{k} -> {m} frame prediction" + ("" if config.adv_weight > 0 else " (MSE + GDL only)")
            if config.model == "video_predict" else f"{config.clip_frames}-frame clip generation (MoCoGAN)")
    banner = (f"training {what} on {data.source}: frames {data.shape}, {total} steps of {config.batch_size} "
              f"on {device}")
    return fit_trainer(trainer, run, config, total, checkpoint, banner)


# --- a trained run --------------------------------------------------------------------------------------
@dataclass
class TrainedVideo:
    """The generator of a video run, rebuilt from its directory."""

    generator: nn.Module
    config: RunConfig
    frame_shape: tuple[int, int, int]
    checkpoint: Path
    device: torch.device

    @property
    def task(self) -> str:
        return "predict" if self.config.model == "video_predict" else "generate"

    def predict(self, context: Tensor, n_frames: int | None = None) -> Tensor:
        """Next ``n_frames`` (default: the trained number) after ``context`` (N, K, C, H, W) in [-1, 1]."""
        if self.task != "predict":
            raise ConfigError("this run generates clips; it does not predict frames (use sample)")
        c, h, w = self.frame_shape
        if context.dim() != 5 or tuple(context.shape[2:]) != (c, h, w):
            raise ConfigError(f"context must be clips (N, T, {c}, {h}, {w}) for this model, got "
                              f"{tuple(context.shape)}")
        return _predict(self.generator, context, n_frames or self.config.future_frames, self.device)

    def sample(self, n: int, seed: int = 0, frames: int | None = None) -> Tensor:
        """``n`` generated clips (n, T, C, H, W) in [-1, 1]."""
        if self.task != "generate":
            raise ConfigError("this run predicts frames from a context; it does not sample clips (use predict)")
        return _generate_clips(self.generator, n, frames or self.config.clip_frames, seed, self.device)


def load_video_run(run_dir: str | os.PathLike, checkpoint: str | None = None, device: str = "cpu") -> TrainedVideo:
    """Rebuild a video run's generator from config.json and a checkpoint (``latest``, ``best`` or a path)."""
    run = RunDir(run_dir)
    record = run.read_config()
    config = RunConfig.from_dict(record["config"])
    if config.model not in VIDEO_MODELS or "video" not in record:
        raise ConfigError(f"{run.path} is a {config.model} run, not a video run (train one with "
                          "`ganforge video train`)")
    path = run.checkpoint_path(checkpoint)
    shape = tuple(record["video"]["frame_shape"])
    nets = build_video_networks(config, shape)  # type: ignore[arg-type]
    generator = nets["generator"]
    weights = load_weights(path, "generator")
    if weights is None:
        raise CheckpointError(f"checkpoint {path} holds no generator weights")
    generator.load_state_dict(weights)
    target = resolve_device(device)
    return TrainedVideo(generator.to(target).eval(), config, shape, path, target)  # type: ignore[arg-type]


# --- evaluation -----------------------------------------------------------------------------------------
@dataclass
class VideoTestSet:
    clips: Tensor  # uint8 (N, T, C, H, W)
    reference: str


def load_video_test_set(config: RunConfig, n: int = 2000, test: str | None = None) -> VideoTestSet:
    """Held-out clips: ``test`` (a clip file/folder), else for Moving MNIST the fixed test set (MNIST test
    digits, seed 1234, cached), resized to the run's frames; else a ConfigError asking for ``--test``."""
    window = window_frames(config)
    if test is not None:
        clips, _ = read_clips(test)
        reference = str(test)
    elif _is_moving_mnist(config.data):
        clips = moving_mnist_test_set(config.data_dir, n=max(n, 2000), n_frames=window,
                                      n_digits=config.video_digits)[:n]
        reference = f"moving_mnist:test({config.video_digits} digits, {window} frames, seed 1234)"
    else:
        raise ConfigError(f"{config.data} has no built-in test set; give held-out clips with --test FILE")
    if clips.shape[1] < window:
        raise ConfigError(f"test clips have {clips.shape[1]} frames; the model needs {window}")
    size = frame_size(config, clips.shape[-1])
    clips = resize_clips(clips[:n, :window], size)
    return VideoTestSet(clips, reference)


def evaluate_video(config: RunConfig, nets: dict[str, nn.Module] | TrainedVideo, test: VideoTestSet, *,
                   device: torch.device | str = "cpu", seed: int = 0, ssim: bool = True,
                   judge: Any = None) -> list:
    """Scores of a video run's generator on ``test``, with their protocol.

    Prediction: MSE, MAE (per frame, summed over pixels in [0, 1]), PSNR, SSIM, sharpness and gradient
    ratio of the predicted future given the test clips' context. Generation: sliced Wasserstein distance
    between generated and test clips (``swd_clips``) and, for single-digit Moving MNIST, the digit judge's
    ``recognisable`` share and ``identity_consistency`` (with the test clips' own values in ``extra``).
    """
    from ganforge.metrics.protocol import Protocol, Score
    from ganforge.metrics.video import digit_scores, prediction_errors

    generator = nets.generator if isinstance(nets, TrainedVideo) else nets["generator"]
    device = torch.device(device)
    clips = test.clips
    h = clips.shape[-1]
    resize = "none" if not config.image_size else f"area 64x64->{h}x{h}" if _is_moving_mnist(config.data) else "none"
    if config.model == "video_predict":
        k, m = config.context_frames, config.future_frames
        context = to_model_range(clips[:, :k])
        pred = (_predict(generator, context, m, device) + 1) / 2
        errors = prediction_errors(pred.clamp(0, 1), clips[:, k: k + m], ssim=ssim)
        protocol = Protocol(extractor=f"pixels ({k}->{m} frames)", extractor_hash="", n_real=len(clips),
                            n_fake=len(clips), reference=test.reference, resize=resize, seed=0)
        return [Score(name, errors[name], protocol, extra={"per_step": errors["per_step"][name]})
                for name in ("mse", "mae", "psnr", "ssim", "sharpness", "gradient_ratio") if name in errors]
    t = config.clip_frames
    fake = _generate_clips(generator, len(clips), t, seed, device)
    real = to_model_range(clips[:, :t])
    protocol = Protocol(extractor="pixels (clips)", extractor_hash="", n_real=len(clips), n_fake=len(fake),
                        reference=test.reference, resize=resize, seed=seed)
    scores = [Score("swd_clips", sliced_wasserstein(fake, real), protocol)]
    if judge is None and _is_moving_mnist(config.data) and config.video_digits == 1:
        from ganforge.metrics.judge import get_judge

        judge = get_judge("mnist", data_dir=config.data_dir, progress=config.progress)
    if judge is not None:
        jp = Protocol(extractor=judge.name, extractor_hash=judge.protocol().get("weights_sha256", ""),
                      n_real=len(clips), n_fake=len(fake), reference=test.reference, resize=resize, seed=seed)
        mine, theirs = digit_scores((fake + 1) / 2, judge), digit_scores(clips[:, :t], judge)
        for name in ("recognisable", "identity_consistency"):
            scores.append(Score(name, mine[name], jp, extra={"real": theirs[name],
                                                             "digit_histogram": mine["digit_histogram"]}))
    return scores
