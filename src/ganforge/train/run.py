"""Build a run from its configuration and train it; rebuild a trained generator to sample from.

This is the Python API behind ``ganforge train`` and ``ganforge sample``::

    from ganforge.train import RunConfig, train
    result = train(RunConfig(model="dcgan", data="digits", steps=200), out="runs/demo")
    print(result.last_sample)
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge import __version__
from ganforge.data.images import to_model_range
from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.grid import save_grid, save_scatter
from ganforge.losses import get_loss
from ganforge.monitor import report
from ganforge.train import distributed
from ganforge.train.checkpoint import (
    load_sampling_weights,
    verify_checkpoint,
    warm_start,
)
from ganforge.train.config import RunConfig
from ganforge.train.ema import EMA
from ganforge.train.fast import (
    apply_backend_flags,
    apply_to_step,
    make_adam,
    resolve_performance,
    to_channels_last,
)
from ganforge.train.gan_step import GANStep
from ganforge.train.quality import sliced_wasserstein
from ganforge.train.rundir import RunDir
from ganforge.train.runtime import BatchStream, configure_threads, resolve_device
from ganforge.train.trainer import Callback, Interrupted, Trainer, TrainResult

N_SCORE = 512  # samples used for the checkpoint quality score
N_PROBE = 256  # samples of the doctor's probes (diversity, swd) at each logged step


def mean_pairwise_distance(x: Tensor) -> float:
    """Mean L2 distance between distinct samples of a batch (flattened): the spread a collapse shrinks."""
    flat = x.detach().float().flatten(1).cpu()
    return float(torch.pdist(flat).mean()) if flat.shape[0] > 1 else 0.0


def within_class_spreads(x: Tensor, labels: Tensor) -> dict[int, float]:
    """Mean pairwise distance inside each class with at least two samples in ``x``, by class."""
    return {int(c): mean_pairwise_distance(x[labels == c]) for c in labels.unique() if int((labels == c).sum()) > 1}


def within_class_diversity(fake: Tensor, labels: Tensor, real_spreads: dict[int, float]) -> float:
    """Mean over classes of (spread of the class's samples) / (spread of its real images).

    The diversity a class-conditional generator owes: one image per class still looks diverse when classes
    are mixed (measured: 0.93 mixed vs 0.25 within classes for a collapsed Fashion-MNIST Augmenter)."""
    fake_spreads = within_class_spreads(fake, labels)
    ratios = [fake_spreads[c] / max(real_spreads[c], 1e-12) for c in fake_spreads if c in real_spreads]
    return float(sum(ratios) / len(ratios)) if ratios else float("nan")


def _model_spec(spec: DataSpec, conditional: bool) -> DataSpec:
    """The spec the networks are built for: labels dropped when the run is unconditional."""
    if conditional and spec.n_classes == 0:
        raise ConfigError(
            f"--conditional needs class labels, but the data {spec.name or ''} has none "
            "(for an image folder, put each class in its own sub-folder)"
        )
    return spec if conditional else dataclasses.replace(spec, n_classes=0)


def build_networks(config: RunConfig, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
    from ganforge.nets import build

    torch.manual_seed(config.seed)
    model_spec = _model_spec(spec, config.conditional)
    generator, discriminator = build(config.model, model_spec, **config.model_overrides())
    if config.pack > 1:  # PacGAN: D sees `pack` samples side by side along channels
        packed = dataclasses.replace(model_spec, shape=(model_spec.shape[0] * config.pack, *model_spec.shape[1:]))
        _, discriminator = build(config.model, packed, **config.model_overrides())
    return generator, discriminator


def preview_batch(spec: DataSpec, z_dim: int, seed: int, device: torch.device) -> tuple[Tensor, Tensor | None, int]:
    """The fixed noise (and labels) of the sample grids: one row per class when conditional."""
    g = torch.Generator().manual_seed(seed + 1)
    if spec.n_classes:
        ncol = 8
        z = torch.randn(ncol, z_dim, generator=g).repeat(spec.n_classes, 1)  # same z down each column
        labels = torch.arange(spec.n_classes).repeat_interleave(ncol)
        return z.to(device), labels.to(device), ncol
    return torch.randn(64, z_dim, generator=g).to(device), None, 8


@torch.no_grad()
def generate(generator: nn.Module, z: Tensor, labels: Tensor | None, batch_size: int = 256) -> Tensor:
    """Run the generator in eval mode over ``z`` in chunks; restores its previous mode."""
    was_training = generator.training
    generator.eval()
    try:
        out = [generator(z[i : i + batch_size], None if labels is None else labels[i : i + batch_size])
               for i in range(0, z.shape[0], batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(out)


def _load_data(config: RunConfig):
    from ganforge.data import load

    return load(config.data, split="train", data_dir=config.data_dir, size=config.image_size)


def train(config: RunConfig, out: str | os.PathLike, resume: str | None = None,
          callbacks: list[Callback] | None = None) -> TrainResult:
    """Train a GAN as ``config`` says, writing the run directory ``out``.

    ``resume`` is None (new run), ``"auto"`` (newest checkpoint in ``out``) or a checkpoint path.
    ``callbacks`` (`ganforge.train.trainer.Callback`) see every stats flush and evaluation and may
    stop the run by raising `StopTraining` (e.g. a hyperparameter search pruning a trial).
    Raises `Interrupted` after writing a checkpoint if SIGINT/SIGTERM arrives. A ``model="cyclegan"``
    config trains an image-to-image translation (see `ganforge.train.cycle_run`).

    Launched by ``torchrun`` (WORLD_SIZE > 1), every process calls this and together they train one
    run with DistributedDataParallel: see `ganforge.train.distributed` for what holds.
    """
    distributed.require_single_process_family(config.model)
    if config.model == "cyclegan":
        from ganforge.train.cycle_run import train_cyclegan

        return train_cyclegan(config, out, resume=resume, callbacks=callbacks)
    if config.model in ("video_predict", "video_generate"):
        from ganforge.train.video_run import train_video

        return train_video(config, out, resume=resume, callbacks=callbacks)
    if config.model == "text2image":
        from ganforge.train.text_run import train_text2image

        return train_text2image(config, out, resume=resume, callbacks=callbacks)
    config.validate()
    dist = distributed.setup(config)  # the single-process context unless launched by torchrun
    try:
        result = _train_gan(config, out, resume, callbacks, dist)
    except Interrupted:  # every rank stopped at the same step: wait until rank 0 has written the checkpoint
        dist.barrier()
        raise
    else:  # all ranks return once rank 0 has written everything (a resume right after finds the checkpoint)
        dist.barrier()
        return result
    finally:
        dist.close()


def _train_gan(config: RunConfig, out: str | os.PathLike, resume: str | None, callbacks: list[Callback] | None,
               dist: distributed.DistContext) -> TrainResult:
    run = RunDir(out)
    checkpoint = resume_checkpoint(run, resume)

    configure_threads(dist.threads(config.threads) if dist.enabled else config.threads)
    device = dist.device if dist.enabled else resolve_device(config.device)
    data = _load_data(config)
    spec = _model_spec(data.spec, config.conditional)
    labels = data.labels if config.conditional else None
    total = config.total_steps(len(data))

    perf = resolve_performance(config, device, image_model=spec.kind == "image" and config.model != "mlp",
                               distributed=dist.enabled, quiet=not dist.is_main)
    apply_backend_flags(perf)
    generator, discriminator = build_networks(config, data.spec)
    warm = warm_start(config.init_from, generator) if config.init_from and checkpoint is None else None
    generator.to(device)
    discriminator.to(device)
    if perf.channels_last:
        to_channels_last(generator, discriminator)
    loss = get_loss(config.loss)
    opt_g = make_adam(generator.parameters(), lr=config.lr_g, betas=config.betas, perf=perf)
    opt_d = make_adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas, perf=perf)
    # rank r draws its own noise, seeded from (seed, r); rank 0 (and a single process) from seed itself
    global_noise = dist.enabled and config.ddp_noise == "global"
    noise = torch.Generator(device=device).manual_seed(
        config.seed if global_noise else distributed.rank_seed(config.seed, dist.rank))
    torch.manual_seed(distributed.rank_seed(config.seed, dist.rank))
    ema = EMA(generator, config.ema) if config.ema > 0 else None
    step = GANStep(generator, discriminator, loss, opt_g, opt_d, noise=noise, n_critic=config.n_critic,
                   g_steps=config.g_steps,
                   gp_weight=config.gp_weight, r1_weight=config.r1_weight, ema=ema, augment=config.diffaugment,
                   instance_noise=config.instance_noise, instance_noise_steps=config.instance_noise_steps,
                   label_smoothing=config.label_smoothing, pack=config.pack)
    if global_noise:
        step.noise_shard = (dist.rank, dist.world_size)
    dist.wrap_step(step, perf)  # DDP (no-op in one process), before compiling
    apply_to_step(step, perf)
    stream = BatchStream(data.images, labels, config.batch_size, config.seed, device,
                         shard=(dist.rank, dist.world_size),
                         memory_format=torch.channels_last if perf.channels_last else None)

    if spec.kind == "image":
        z_grid, labels_grid, ncol = preview_batch(spec, generator.z_dim, config.seed, device)

        def preview(path: Path) -> None:
            save_grid(generate(step.sampling_generator(), z_grid, labels_grid), path, nrow=ncol)
    else:  # 2-D points: a scatter of 1000 fixed-noise samples over real ones
        g_preview = torch.Generator().manual_seed(config.seed + 1)
        z_points = torch.randn(1000, generator.z_dim, generator=g_preview).to(device)
        labels_points = labels[:1000].to(device) if labels is not None else None
        real_points = to_model_range(data.images[:1000])

        def preview(path: Path) -> None:
            save_scatter(generate(step.sampling_generator(), z_points, labels_points), path, reference=real_points)

    # the quality score's own fixed inputs: never drawn from the training random streams
    g_eval = torch.Generator().manual_seed(config.seed + 2)
    n_score = min(N_SCORE, len(data))
    ref_idx = torch.randperm(len(data), generator=g_eval)[:n_score]
    reference = to_model_range(data.images[ref_idx])
    z_score = torch.randn(n_score, generator.z_dim, generator=g_eval).to(device)
    labels_score = labels[ref_idx].to(device) if labels is not None else None

    def score() -> float:
        return sliced_wasserstein(generate(step.sampling_generator(), z_score, labels_score), reference)

    # the doctor's cheap probes, on the first N_PROBE of the same fixed inputs, every logged step
    n_probe = min(N_PROBE, n_score)
    real_spread = mean_pairwise_distance(reference[:n_probe])

    # SWD between two real sets of the probe's size: the value a perfect generator would still score. On 2-D
    # points it is a large share of the early probe values, so the doctor does not judge a "stall" against it
    swd_floor = None
    if n_score >= 2 * n_probe:
        g_floor = torch.Generator().manual_seed(config.seed + 3)  # not g_eval: its draws stay as they were
        splits = [torch.randperm(2 * n_probe, generator=g_floor) for _ in range(5)]
        swd_floor = statistics.median(sliced_wasserstein(reference[i[:n_probe]], reference[i[n_probe:]],
                                                         n_projections=64) for i in splits)

    probe_labels = None if labels_score is None else labels_score[:n_probe]
    real_class_spreads = {} if probe_labels is None else within_class_spreads(reference[:n_probe], probe_labels.cpu())

    def probe() -> None:
        fake = generate(step.generator, z_score[:n_probe], probe_labels)
        mixed = mean_pairwise_distance(fake) / max(real_spread, 1e-12)
        if probe_labels is None:
            report("Probe/diversity", mixed)
        else:  # a conditional G is judged within each class; the class-mixed spread is kept for reference
            report("Probe/diversity", within_class_diversity(fake.cpu(), probe_labels.cpu(), real_class_spreads))
            report("Probe/diversity_mixed", mixed)
        report("Probe/swd", sliced_wasserstein(fake, reference[:n_probe], n_projections=64))
        if swd_floor is not None:
            report("Probe/swd_floor", swd_floor)

    record = {
        "ganforge_version": __version__,
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "data_source": data.source,
        "total_steps": total,
        "device": str(device),
        "processes": dist.world_size,
    }
    if warm is not None:
        record["init_from_checkpoint"] = str(warm)
    # only rank 0 writes the run directory, evaluates and runs the doctor; the others get a placeholder
    # evaluator so that every rank takes the same branches (and checkpoints at the same steps)
    evaluator = (lambda at_step: float("nan")) if config.eval_every > 0 else None
    hooks: list[Callback] = []
    error: Exception | None = None
    if dist.is_main:
        try:
            if checkpoint is None:
                run.create(record)
            evaluator = _make_evaluator(config, run, step, device) if config.eval_every > 0 else None
            if config.doctor:
                from ganforge.train.doctor_hook import DoctorCallback

                hooks.append(DoctorCallback(config, run.path, n_classes=data.spec.n_classes, total_steps=total,
                                            is_image=spec.kind == "image"))
            hooks += list(callbacks or [])
        except Exception as e:  # noqa: BLE001 - raised below, on every rank
            error = e
    dist.agree(error)
    trainer = Trainer(step, stream, run, config, total, preview=preview, score=score, evaluate=evaluator,
                      probe=probe, callbacks=hooks, distributed=dist)
    where = f"{device}" if not dist.enabled else f"{dist.world_size} processes ({dist.backend}, {device.type})"
    banner = (f"training {config.model}{' (conditional)' if config.conditional else ''} on {data.source}: "
              f"{tuple(spec.shape)}, {len(data)} examples, {total} steps of {config.batch_size} on {where}, "
              f"{perf.describe()}")
    return fit_trainer(trainer, run, config, total, checkpoint, banner)


def resume_checkpoint(run: RunDir, resume: str | None) -> Path | None:
    """The checkpoint to resume ``run`` from: None for a new run, the newest for ``"auto"``, or the path given;
    verified, or a ConfigError/CheckpointError saying what is missing."""
    if resume is None:
        return None
    if not run.is_run():
        raise ConfigError(f"--resume: {run.path} holds no run to resume; start one without --resume")
    if resume == "auto":
        latest = run.latest()
        if latest is None:
            raise ConfigError(f"--resume auto: {run.checkpoints} holds no checkpoint to resume from")
        checkpoint = latest.path
    else:
        checkpoint = Path(resume)
    verify_checkpoint(checkpoint)
    return checkpoint


def fit_trainer(trainer: Trainer, run: RunDir, config: RunConfig, total: int, checkpoint: Path | None,
                banner: str) -> TrainResult:
    """Restore ``checkpoint`` (recording the resumed settings in config.json), say what is being trained,
    run the loop, and write report.html however it ends: the common end of every family's ``train``."""
    main = getattr(trainer, "dist", distributed.SINGLE).is_main
    if checkpoint is not None:
        trainer.restore(checkpoint)
        if main:
            stored = run.read_config()
            stored.update(config=config.to_dict(), total_steps=total)
            from ganforge.train.config import save_json

            save_json(run.config_path, stored)
    if config.progress and main:
        print(banner + (f", resuming at step {trainer.step}" if checkpoint is not None else ""), file=sys.stderr)
    try:
        return trainer.fit()
    finally:
        if config.report and main:
            _write_report(run.path)


def _write_report(run_dir: Path) -> None:
    """report.html at the end of a run, however it ended; a report failure never fails the training."""
    try:
        from ganforge.report import write_report

        write_report(run_dir)
    except Exception as e:  # noqa: BLE001 - the run's results are on disk either way
        print(f"warning: could not write {run_dir / 'report.html'}: {e}", file=sys.stderr)


HIGHER_IS_BETTER = ("precision", "recall", "density", "coverage", "judge_accuracy", "cas", "modes_captured",
                    "modes_visited", "high_quality", "classes_covered", "stacked_modes")


def _make_evaluator(config: RunConfig, run: RunDir, step: GANStep, device: torch.device):
    """A callback scoring the sampling generator on a small fixed budget; returns the ranking value.

    The extractor (e.g. the MNIST judge, trained and cached on first use) is prepared once. The value
    returned is the best-metric's score, negated when higher is better, so lower always ranks first.
    """
    from ganforge.metrics.evaluate import make_extractor
    from ganforge.train.evaluation import _dataset_key, evaluate_run

    dataset = _dataset_key(config.data)
    spec = DataSpec.from_dict(run.read_config()["spec"])
    extractor = make_extractor(dataset, spec.kind, "auto", data_dir=config.data_dir, device=str(device),
                               progress=config.progress)

    def evaluate_now(at_step: int) -> float:
        scores = evaluate_run(run.path, metrics=config.eval_metrics, n=config.eval_n, seed=config.seed,
                              extractor=extractor, device=str(device), progress=False,
                              generator_override=step.sampling_generator(), step=at_step)
        by_name = {s.metric: s.value for s in scores}
        name = config.best_metric or scores[0].metric
        if name not in by_name:
            raise ConfigError(f"--best-metric {name!r} is not among the evaluated scores: {', '.join(by_name)}")
        value = by_name[name]
        return -value if name.startswith(HIGHER_IS_BETTER) else value

    return evaluate_now


# --- loading a trained run ---------------------------------------------------------------------------------
@dataclass
class TrainedRun:
    """A generator rebuilt from a run directory, ready to sample."""

    generator: nn.Module
    spec: DataSpec
    config: RunConfig
    checkpoint: Path
    uses_ema: bool

    def sample(self, n: int, labels: Tensor | int | None = None, seed: int = 0) -> Tensor:
        """``n`` images (n, C, H, W) in [-1, 1]; ``labels`` (int or (n,) tensor) for conditional runs."""
        if n <= 0:
            raise ConfigError(f"--n must be a positive number of samples, got {n}")
        if self.spec.n_classes:
            if labels is None:
                labels = torch.arange(n) % self.spec.n_classes
            elif isinstance(labels, int):
                if not 0 <= labels < self.spec.n_classes:
                    raise ConfigError(
                        f"--label {labels} is out of range: this run has classes 0..{self.spec.n_classes - 1}"
                    )
                labels = torch.full((n,), labels, dtype=torch.long)
        elif labels is not None:
            raise ConfigError("--label is only for conditional runs (trained with --conditional)")
        device = next(self.generator.parameters()).device
        z = torch.randn(n, self.generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        return generate(self.generator, z, labels.to(device) if labels is not None else None)


def load_run(run_dir: str | os.PathLike, checkpoint: str | None = None, device: str = "cpu") -> TrainedRun:
    """Rebuild the generator of ``run_dir`` from ``config.json`` and a checkpoint's weights.

    ``checkpoint``: None or ``"latest"`` (newest), ``"best"`` (lowest quality score), or a path.
    The EMA weights are used when the run kept them.
    """
    run = RunDir(run_dir)
    record = run.read_config()
    config = RunConfig.from_dict(record["config"])
    if config.model == "cyclegan":
        raise ConfigError(f"{run.path} is a CycleGAN (translation) run: it has no noise-to-image generator to "
                          "sample; use `ganforge translate apply` or `ganforge translate eval`")
    if config.model in ("video_predict", "video_generate"):
        raise ConfigError(f"{run.path} is a video run: use `ganforge video predict`, `ganforge video sample` or "
                          "`ganforge video eval`")
    if config.model == "text2image":
        raise ConfigError(f"{run.path} is a text-to-image run: draw images with `ganforge text2image generate "
                          f"{run.path} \"a prompt\"` (its generator needs a caption, not only noise)")
    spec = DataSpec.from_dict(record["spec"])
    path = run.checkpoint_path(checkpoint)
    from ganforge.nets import build

    generator, _ = build(config.model, spec, **config.model_overrides())
    uses_ema = load_sampling_weights(path, generator)
    generator.to(resolve_device(device)).eval()
    return TrainedRun(generator, spec, config, path, uses_ema)
