"""Build a CycleGAN run from its configuration and train it; rebuild its generators to translate.

The same run directory, trainer, checkpoints, resume, doctor and report as ``ganforge train``;
only the networks (four), the step (`CycleGANStep`) and the data (two unpaired streams) differ::

    from ganforge.train import RunConfig
    from ganforge.train.cycle_run import train_cyclegan
    config = RunConfig(model="cyclegan", data="a_images/", data_b="b_images/", loss="lsgan", steps=2000)
    train_cyclegan(config, "runs/a2b")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge import __version__
from ganforge.data.images import ImageData, to_model_range
from ganforge.data.spec import DataSpec
from ganforge.errors import CheckpointError, ConfigError
from ganforge.grid import save_grid
from ganforge.losses import get_loss
from ganforge.monitor import report
from ganforge.train.checkpoint import load_weights
from ganforge.train.config import RunConfig
from ganforge.train.cycle_step import CycleGANStep
from ganforge.train.quality import sliced_wasserstein
from ganforge.train.rundir import RunDir
from ganforge.train.runtime import BatchStream, configure_threads, resolve_device
from ganforge.train.trainer import Callback, Trainer, TrainResult

N_PROBE = 256  # images per domain for the checkpoint score and the doctor's probes
N_PREVIEW = 8  # images per row of the sample grids

DIRECTIONS = ("a2b", "b2a")


class PairStream:
    """One unpaired batch from each domain per step; ``position`` counts steps (both streams share it).

    The two streams use different seeds, so equal-sized domains are not shuffled in lockstep.
    """

    def __init__(self, a: BatchStream, b: BatchStream):
        self.a, self.b = a, b

    @property
    def position(self) -> int:
        return self.a.position

    @position.setter
    def position(self, value: int) -> None:
        self.a.position = self.b.position = int(value)

    def next(self) -> tuple[Tensor, Tensor]:
        return self.a.next()[0], self.b.next()[0]


def load_domains(config: RunConfig, split: str = "train") -> tuple[ImageData, ImageData]:
    """The images of domains A (``data``) and B (``data_b``), resized to ``image_size`` when given."""
    from ganforge.data import load

    a = load(config.data, split=split, data_dir=config.data_dir, size=config.image_size)
    b = load(str(config.data_b), split=split, data_dir=config.data_dir, size=config.image_size)
    for name, data in (("A", a), ("B", b)):
        if data.spec.kind != "image":
            raise ConfigError(f"domain {name} ({data.source}) is not image data; CycleGAN translates images")
    if a.spec.shape[1:] != b.spec.shape[1:]:
        raise ConfigError(f"domains A {tuple(a.spec.shape[1:])} and B {tuple(b.spec.shape[1:])} differ in size; "
                          "pass --image-size to resize both")
    return a, b


def build_cyclegan(config: RunConfig, spec_a: DataSpec, spec_b: DataSpec) -> dict[str, nn.Module]:
    """The four networks for these domains, initialised from ``config.seed``."""
    from ganforge.nets import config_for_cyclegan
    from ganforge.nets.cyclegan import build

    torch.manual_seed(config.seed)
    return build(config_for_cyclegan(**config.model_overrides()), spec_a, spec_b)


def _image_spec(data: ImageData) -> DataSpec:
    return DataSpec(data.spec.shape, kind="image", name=data.spec.name)  # labels play no part in translation


def adversarial_weight(loss_name: str) -> float:
    """The reference trains G with MSE(D(G(x)), 1); our LSGAN generator loss is half of that, so double it."""
    return 2.0 if loss_name == "lsgan" else 1.0


def _as_rgb(x: Tensor, channels: int) -> Tensor:
    """Images with 1 channel repeated (or extra channels dropped) to ``channels``, for one mixed grid."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.repeat(1, channels, 1, 1)
    return x[:, :channels]


@torch.no_grad()
def translate_batches(generator: nn.Module, x: Tensor, batch_size: int = 64) -> Tensor:
    """Run an image-to-image generator in eval mode over ``x`` in chunks; restores its previous mode."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    try:
        out = [generator(x[i : i + batch_size].to(device)) for i in range(0, x.shape[0], batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(out) if out else x.new_zeros((0, generator.out_channels, *x.shape[2:]))


def train_cyclegan(config: RunConfig, out: str | os.PathLike, resume: str | None = None,
                   callbacks: list[Callback] | None = None) -> TrainResult:
    """Train a CycleGAN as ``config`` says (``model="cyclegan"``), writing the run directory ``out``.

    Same contract as `ganforge.train.train`: ``resume`` None / ``"auto"`` / a checkpoint path;
    ``callbacks`` may stop the run; `Interrupted` after a checkpoint on SIGINT/SIGTERM.
    """
    if config.model != "cyclegan":
        raise ConfigError(f"train_cyclegan needs model 'cyclegan', got {config.model!r}")
    config.validate()
    run = RunDir(out)
    from ganforge.train.run import fit_trainer, mean_pairwise_distance, resume_checkpoint

    checkpoint = resume_checkpoint(run, resume)
    configure_threads(config.threads)
    device = resolve_device(config.device)
    data_a, data_b = load_domains(config)
    spec_a, spec_b = _image_spec(data_a), _image_spec(data_b)
    total = config.total_steps(max(len(data_a), len(data_b)))

    nets = build_cyclegan(config, spec_a, spec_b)
    for net in nets.values():
        net.to(device)
    g_ab, g_ba, d_a, d_b = (nets[k] for k in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"))
    opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=config.lr_d, betas=config.betas)
    noise = torch.Generator().manual_seed(config.seed)  # the image pools' draws (CPU: cheap, device-independent)
    torch.manual_seed(config.seed)
    loss = get_loss(config.loss)
    step = CycleGANStep(g_ab, g_ba, d_a, d_b, loss, opt_g, opt_d, noise=noise, cycle_weight=config.cycle_weight,
                        identity_weight=config.identity_weight, pool_size=config.pool_size,
                        adversarial_weight=adversarial_weight(loss.name))
    stream = PairStream(BatchStream(data_a.images, None, config.batch_size, config.seed, device),
                        BatchStream(data_b.images, None, config.batch_size, config.seed + 7919, device))

    # fixed inputs of the sample grids, the checkpoint score and the probes: never the training streams
    g_fixed = torch.Generator().manual_seed(config.seed + 2)
    idx_a = torch.randperm(len(data_a), generator=g_fixed)[: min(N_PROBE, len(data_a))]
    idx_b = torch.randperm(len(data_b), generator=g_fixed)[: min(N_PROBE, len(data_b))]
    fixed_a, fixed_b = to_model_range(data_a.images[idx_a]), to_model_range(data_b.images[idx_b])
    channels = max(spec_a.channels, spec_b.channels)

    def preview(path: Path) -> None:
        """Rows: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B))."""
        a, b = fixed_a[:N_PREVIEW].to(device), fixed_b[:N_PREVIEW].to(device)
        ab = translate_batches(g_ab, a)
        ba = translate_batches(g_ba, b)
        rows = [a, ab, translate_batches(g_ba, ab), b, ba, translate_batches(g_ab, ba)]
        save_grid(torch.cat([_as_rgb(r.cpu(), channels) for r in rows]), path, nrow=N_PREVIEW)

    def translations() -> tuple[Tensor, Tensor]:
        return translate_batches(g_ab, fixed_a).cpu(), translate_batches(g_ba, fixed_b).cpu()

    def score() -> float:
        """Sliced Wasserstein distance of each direction's translations to the real target domain, summed."""
        ab, ba = translations()
        return sliced_wasserstein(ab, fixed_b) + sliced_wasserstein(ba, fixed_a)

    spread_a, spread_b = mean_pairwise_distance(fixed_a), mean_pairwise_distance(fixed_b)

    def probe() -> None:
        ab, ba = translations()
        diversity = 0.5 * (mean_pairwise_distance(ab) / max(spread_b, 1e-12)
                           + mean_pairwise_distance(ba) / max(spread_a, 1e-12))
        report("Probe/diversity", diversity)
        report("Probe/swd", sliced_wasserstein(ab, fixed_b, n_projections=64)
               + sliced_wasserstein(ba, fixed_a, n_projections=64))

    record = {
        "ganforge_version": __version__,
        "config": config.to_dict(),
        "spec": spec_a.to_dict(),  # the A side, for tools that read one spec
        "spec_a": spec_a.to_dict(),
        "spec_b": spec_b.to_dict(),
        "data_source": data_a.source,
        "data_source_b": data_b.source,
        "total_steps": total,
        "device": str(device),
    }
    if checkpoint is None:
        run.create(record)
    evaluator = None
    if config.eval_every > 0:
        from ganforge.metrics.protocol import append_scores

        test = load_test_set(config, n=config.eval_n, seed=config.seed, device=str(device), progress=config.progress)

        def evaluator(at_step: int) -> float:
            scores = score_translation(test, g_ab, g_ba, seed=config.seed)
            for s in scores:
                s.step, s.checkpoint = at_step, f"step_{at_step:06d}"
            append_scores(run.path / "metrics.jsonl", scores)
            return ranking_value(scores, config.best_metric)
    hooks: list[Callback] = []
    if config.doctor:
        from ganforge.train.doctor_hook import DoctorCallback

        hooks.append(DoctorCallback(config, run.path, n_classes=0, total_steps=total, is_image=True))
    hooks += list(callbacks or [])
    trainer = Trainer(step, stream, run, config, total, preview=preview, score=score,  # type: ignore[arg-type]
                      evaluate=evaluator, probe=probe, callbacks=hooks)
    banner = (f"training cyclegan: A {data_a.source} {tuple(spec_a.shape)} x{len(data_a)} <-> B {data_b.source} "
              f"{tuple(spec_b.shape)} x{len(data_b)}, {total} steps of {config.batch_size} on {device}")
    return fit_trainer(trainer, run, config, total, checkpoint, banner)


# --- loading a trained translation run -------------------------------------------------------------------
@dataclass
class TrainedTranslator:
    """Both generators of a CycleGAN run, rebuilt from its directory, ready to translate."""

    generators: dict[str, nn.Module]  # "a2b", "b2a"
    spec_a: DataSpec
    spec_b: DataSpec
    config: RunConfig
    checkpoint: Path


def load_translator(run_dir: str | os.PathLike, checkpoint: str | None = None, device: str = "cpu"
                    ) -> TrainedTranslator:
    """Rebuild ``generator_ab`` and ``generator_ba`` of a CycleGAN run from config.json and a checkpoint.

    ``checkpoint``: None or ``"latest"``, ``"best"`` (lowest translation score), or a checkpoint directory.
    """
    run = RunDir(run_dir)
    record = run.read_config()
    config = RunConfig.from_dict(record["config"])
    if config.model != "cyclegan" or "spec_b" not in record:
        raise ConfigError(f"{run.path} is a {config.model} run, not a translation run "
                          "(train one with `ganforge translate train`)")
    spec_a, spec_b = DataSpec.from_dict(record["spec_a"]), DataSpec.from_dict(record["spec_b"])
    path = run.checkpoint_path(checkpoint)
    from ganforge.nets import config_for_cyclegan
    from ganforge.nets.cyclegan import build_generator

    net_config = config_for_cyclegan(**config.model_overrides())
    _, h, w = spec_a.shape
    target = resolve_device(device)
    generators = {}
    for direction, name, (c_in, c_out) in (("a2b", "generator_ab", (spec_a.channels, spec_b.channels)),
                                           ("b2a", "generator_ba", (spec_b.channels, spec_a.channels))):
        net = build_generator(net_config, c_in, c_out, h, w)
        weights = load_weights(path, name)
        if weights is None:
            raise CheckpointError(f"checkpoint {path} holds no {name} weights")
        net.load_state_dict(weights)
        generators[direction] = net.to(target).eval()
    return TrainedTranslator(generators, spec_a, spec_b, config, path)


# --- evaluation --------------------------------------------------------------------------------------------
@dataclass
class TranslationTestSet:
    """Held-out images of both domains, with what scoring them needs (labels, judges, references)."""

    a: Tensor  # (N, C_A, H, W) in [-1, 1]
    b: Tensor
    labels_a: Tensor | None
    labels_b: Tensor | None
    paired: bool
    judge_a: object | None
    judge_b: object | None
    reference_a: str
    reference_b: str


def _domain_judge(name: str, data_dir: str | None, device: str, progress: bool) -> object | None:
    """The domain's judge when it is labelled in both splits (trained once and cached), else None."""
    from ganforge.data import load
    from ganforge.errors import GanforgeError
    from ganforge.metrics.judge import get_judge

    try:
        train, test = load(name, "train", data_dir), load(name, "test", data_dir)
    except GanforgeError:
        return None
    if train.labels is None or test.labels is None:
        return None
    return get_judge(name, data_dir=data_dir, device=device, progress=progress)


def load_test_set(config: RunConfig, *, a: str | None = None, b: str | None = None, paired: bool | None = None,
                  n: int = 2000, seed: int = 0, judges: bool = True, device: str = "cpu",
                  progress: bool = True) -> TranslationTestSet:
    """Test images of both domains: ``a``/``b`` (names or paths, their train split when they have no test
    split), else the test splits of the run's own domains. A seeded subset of at most ``n`` per domain;
    paired sets keep their pairs (the same indices on both sides)."""
    from ganforge.data import load

    paired = config.paired_test if paired is None else paired
    sets = []
    for which, given, own in (("A", a, config.data), ("B", b, config.data_b)):
        source = given or str(own)
        split = "test"
        try:  # the test split; images given without one are held out by the user, so their train split is used
            data = load(source, split="test", data_dir=config.data_dir, size=config.image_size)
        except ConfigError:
            if given is None:
                raise ConfigError(f"domain {which} ({source}) has no test split to evaluate on; give held-out "
                                  f"images with --{which.lower()}-test") from None
            data, split = load(source, split="train", data_dir=config.data_dir, size=config.image_size), "train"
        sets.append((data, f"{data.spec.name or source}:{split}", source))
    (data_a, ref_a, src_a), (data_b, ref_b, src_b) = sets
    g = torch.Generator().manual_seed(seed + 12345)
    if paired:
        if len(data_a) != len(data_b):
            raise ConfigError(f"paired test sets must have as many images on each side, got {len(data_a)} (A) and "
                              f"{len(data_b)} (B)")
        idx_a = idx_b = torch.randperm(len(data_a), generator=g)[:n]
    else:
        idx_a = torch.randperm(len(data_a), generator=g)[:n]
        idx_b = torch.randperm(len(data_b), generator=g)[:n]
    judge_a = _domain_judge(src_a, config.data_dir, device, progress) if judges else None
    judge_b = _domain_judge(src_b, config.data_dir, device, progress) if judges else None
    return TranslationTestSet(
        to_model_range(data_a.images[idx_a]), to_model_range(data_b.images[idx_b]),
        None if data_a.labels is None else data_a.labels[idx_a],
        None if data_b.labels is None else data_b.labels[idx_b], paired, judge_a, judge_b, ref_a, ref_b)


def score_translation(test: TranslationTestSet, generator_ab: nn.Module, generator_ba: nn.Module,
                      seed: int = 0) -> list:
    """`evaluate_translation` of two generators on a test set; FD/KID in each target domain's judge features."""
    from ganforge.metrics.translation import evaluate_translation

    return evaluate_translation(
        lambda x: translate_batches(generator_ab, x), lambda x: translate_batches(generator_ba, x), test.a, test.b,
        paired=test.paired, extractor_a=test.judge_a, extractor_b=test.judge_b, judge_a=test.judge_a,
        judge_b=test.judge_b, labels_a=test.labels_a, labels_b=test.labels_b, reference_a=test.reference_a,
        reference_b=test.reference_b, seed=seed)


HIGHER_IS_BETTER = ("label_preservation", "ssim", "psnr")


def ranking_value(scores: list, best_metric: str | None = None) -> float:
    """One number to rank checkpoints by, lower is better: ``best_metric`` (negated when higher is better),
    else the sum of both directions' FD, else of both cycle errors."""
    by_name = {s.metric: s.value for s in scores}
    if best_metric:
        if best_metric not in by_name:
            raise ConfigError(f"--best-metric {best_metric!r} is not among the scores: {', '.join(by_name)}")
        value = by_name[best_metric]
        return -value if best_metric.startswith(HIGHER_IS_BETTER) else value
    fds = [v for k, v in by_name.items() if k.startswith("fd_")]
    if len(fds) == 2:
        return sum(fds)
    return by_name["cycle_l1_a"] + by_name["cycle_l1_b"]
