"""Build a text-to-image run from its configuration and train it; rebuild its generator to draw from prompts.

The same run directory, trainer, checkpoints, ``--resume auto``, doctor and report as ``ganforge train``;
what differs is the data (captioned images), the condition (sentence vectors from a text encoder, computed
once per distinct caption and cached), the networks (`ganforge.nets.text2image`) and the step
(`TextGANStep`)::

    from ganforge.train import RunConfig
    from ganforge.train.text_run import train_text2image, load_text2image
    train_text2image(RunConfig(model="text2image", data="fashion_mnist", text_encoder="small", steps=2000), "runs/t2i")
    images = load_text2image("runs/t2i").generate(["a dark ankle boot", "a pair of trousers"], n_per_prompt=8)

The run directory also holds ``text_encoder/`` (what rebuilds the encoder: the small encoder's weights and
vocabulary, or the pretrained one's name and weights hash), so prompts are encoded at generation time
exactly as the captions were in training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganforge import __version__
from ganforge.data.images import to_model_range
from ganforge.data.spec import DataSpec
from ganforge.data.text import (
    CaptionedImages,
    CaptionVocabulary,
    SentenceEncoder,
    embed_captions,
    load_captioned,
    load_encoder,
    make_encoder,
    save_encoder,
    test_prompts,
)
from ganforge.errors import ConfigError
from ganforge.grid import save_grid
from ganforge.losses import get_loss
from ganforge.monitor import report
from ganforge.train.checkpoint import load_sampling_weights
from ganforge.train.config import RunConfig
from ganforge.train.ema import EMA
from ganforge.train.quality import sliced_wasserstein
from ganforge.train.rundir import RunDir
from ganforge.train.runtime import BatchStream, configure_threads, resolve_device
from ganforge.train.text_step import TextGANStep
from ganforge.train.trainer import Callback, Trainer, TrainResult

MODEL = "text2image"
N_SCORE = 512
N_PROBE = 256
N_PREVIEW = 8  # images per prompt row
ENCODER_DIR = "text_encoder"

# settings of the noise-to-image step that the text step does not implement
_NOT_FOR_TEXT = ("conditional", "pack", "instance_noise", "label_smoothing", "gp_weight", "minibatch_std",
                 "auto_remedy", "g_steps")


def validate_text_config(config: RunConfig) -> None:
    """`RunConfig.validate` plus what the text GAN needs, naming what is not available."""
    if config.model != MODEL:
        raise ConfigError(f"train_text2image needs model {MODEL!r}, got {config.model!r}")
    config.validate()
    default = RunConfig()
    used = [name for name in _NOT_FOR_TEXT if getattr(config, name) != getattr(default, name)]
    if used:
        raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in used)}: not available for text2image "
                          "(it has --spectral-norm, --r1-weight, --ema, --diffaugment translation,cutout and --loss)")
    if config.kl_weight < 0 or not 0 <= config.mismatch_weight < 1:
        raise ConfigError("--kl-weight must be >= 0 and --mismatch-weight in [0, 1)")
    if config.text_encoder not in ("auto", "minilm", "small", "keywords"):
        raise ConfigError(f"--encoder must be minilm, small, keywords or auto, got {config.text_encoder!r}")


def load_text_data(config: RunConfig) -> CaptionedImages:
    """The run's captioned training images: ``data`` with ``captions`` (built-in captions when None)."""
    return load_captioned(config.data, config.captions, data_dir=config.data_dir, size=config.image_size,
                          seed=config.seed)


@dataclass
class CaptionTable:
    """The distinct captions of a data set, their class/attribute (-1 unknown), and each example's row."""

    texts: list[str]
    labels: Tensor  # (U,)
    attributes: Tensor  # (U,)
    index: Tensor  # (N,) row of each example's caption

    @classmethod
    def of(cls, data: CaptionedImages) -> CaptionTable:
        unique, first, inverse = np.unique(np.asarray(data.captions, dtype=object).astype(str), return_index=True,
                                           return_inverse=True)
        first_t = torch.from_numpy(first.astype(np.int64))
        labels = data.labels[first_t] if data.labels is not None else torch.full((len(unique),), -1)
        attributes = data.attributes[first_t] if data.attributes is not None else torch.full((len(unique),), -1)
        return cls([str(u) for u in unique], labels.long(), attributes.long(),
                   torch.from_numpy(inverse.reshape(-1).astype(np.int64)))


def preview_prompts(data: CaptionedImages, table: CaptionTable, n: int = 10) -> list[str]:
    """Prompts of the sample grids, one row each: per class a dark and a light seen caption for built-in sets,
    else the first distinct captions."""
    if data.vocabulary is not None:
        prompts = test_prompts(data.vocabulary, held_out=False, per_class=1, seed=0)
        return [p.text for p in prompts][: 2 * n]
    return table.texts[:n]


@torch.no_grad()
def generate_from_vectors(generator: nn.Module, vectors: Tensor, seed: int = 0, batch_size: int = 256,
                          n_per_prompt: int | None = None) -> Tensor:
    """One image per row of ``vectors`` (B, dim), z and the CA noise drawn from ``seed``; eval mode, restored.

    With ``n_per_prompt`` (rows are prompts repeated that many times each), the noise repeats from prompt to
    prompt: image j of every prompt has the same z, so a grid's columns differ only in their text.
    """
    was = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    g = torch.Generator().manual_seed(seed)
    n = len(vectors) if n_per_prompt is None else n_per_prompt
    z = torch.randn(n, generator.z_dim, generator=g)
    ca = getattr(generator, "ca", None)
    eps = torch.randn(n, ca.out_dim, generator=g) if ca is not None else None
    if n_per_prompt is not None:
        if len(vectors) % n_per_prompt:
            raise ConfigError(f"{len(vectors)} vectors are not a whole number of prompts of {n_per_prompt} images")
        z = z.repeat(len(vectors) // n_per_prompt, 1)
        eps = None if eps is None else eps.repeat(len(vectors) // n_per_prompt, 1)
    try:
        out = [generator(z[i : i + batch_size].to(device), None, vectors[i : i + batch_size].to(device),
                         None if eps is None else eps[i : i + batch_size].to(device)).cpu()
               for i in range(0, len(vectors), batch_size)]
    finally:
        generator.train(was)
    return torch.cat(out) if out else torch.zeros(0, *generator.spec.shape)


def build_text_networks(config: RunConfig, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
    from ganforge.nets.text2image import build, config_for

    torch.manual_seed(config.seed)
    return build(config_for(**config.model_overrides()), spec)


def train_text2image(config: RunConfig, out: str | os.PathLike, resume: str | None = None,
                     callbacks: list[Callback] | None = None, *, data: CaptionedImages | None = None,
                     encoder: SentenceEncoder | None = None) -> TrainResult:
    """Train a text-to-image GAN as ``config`` says (``model="text2image"``), writing the run directory ``out``.

    Same contract as `ganforge.train.train`: ``resume`` None / ``"auto"`` / a checkpoint path; ``callbacks``
    may stop the run; `Interrupted` after a checkpoint on SIGINT/SIGTERM. ``data`` replaces loading
    ``config.data``/``config.captions`` (in-memory images; pass the same data again to resume); ``encoder``
    replaces building ``config.text_encoder`` for a new run (a resumed run uses the one saved in ``out``).
    """
    validate_text_config(config)
    run = RunDir(out)
    from ganforge.train.run import fit_trainer, mean_pairwise_distance, resume_checkpoint

    checkpoint = resume_checkpoint(run, resume)
    configure_threads(config.threads)
    device = resolve_device(config.device)
    data = data if data is not None else load_text_data(config)
    table = CaptionTable.of(data)
    if checkpoint is not None:
        encoder = load_encoder(run.path / ENCODER_DIR)
    elif encoder is None:
        encoder = make_encoder(config.text_encoder, data.captions, data.groups().tolist(), vocabulary=data.vocabulary,
                               seed=config.seed, progress=config.progress)
    vectors = embed_captions(encoder, table.texts).to(device)  # (U, dim), cached on disk
    spec = DataSpec(data.shape, kind="image", cond_dim=encoder.dim, name=data.name, class_names=data.class_names)
    total = config.total_steps(len(data))

    generator, discriminator = build_text_networks(config, spec)
    generator.to(device)
    discriminator.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas)
    noise = torch.Generator(device=device).manual_seed(config.seed)
    torch.manual_seed(config.seed)
    ema = EMA(generator, config.ema) if config.ema > 0 else None
    step = TextGANStep(generator, discriminator, get_loss(config.loss), opt_g, opt_d, embeddings=vectors,
                       caption_labels=table.labels, caption_attributes=table.attributes, noise=noise,
                       n_critic=config.n_critic, kl_weight=config.kl_weight, mismatch_weight=config.mismatch_weight,
                       r1_weight=config.r1_weight, ema=ema, augment=config.diffaugment)
    stream = BatchStream(data.images, table.index, config.batch_size, config.seed, device)

    prompts = preview_prompts(data, table)
    prompt_vectors = embed_captions(encoder, prompts).repeat_interleave(N_PREVIEW, dim=0)

    def preview(path: Path) -> None:
        """One row per prompt, the same noise down each column."""
        images = generate_from_vectors(step.sampling_generator(), prompt_vectors, seed=config.seed + 1,
                                       n_per_prompt=N_PREVIEW)
        save_grid(images, path, nrow=N_PREVIEW)

    # the quality score's fixed inputs: real images and their own captions, never the training streams
    g_fixed = torch.Generator().manual_seed(config.seed + 2)
    n_score = min(N_SCORE, len(data))
    ref_idx = torch.randperm(len(data), generator=g_fixed)[:n_score]
    reference = to_model_range(data.images[ref_idx])
    score_vectors = vectors[table.index[ref_idx].to(device)].cpu()

    def score() -> float:
        return sliced_wasserstein(generate_from_vectors(step.sampling_generator(), score_vectors, config.seed + 2),
                                  reference)

    n_probe = min(N_PROBE, n_score)
    real_spread = mean_pairwise_distance(reference[:n_probe])

    def probe() -> None:
        fake = generate_from_vectors(step.generator, score_vectors[:n_probe], config.seed + 2)
        report("Probe/diversity", mean_pairwise_distance(fake) / max(real_spread, 1e-12))
        report("Probe/swd", sliced_wasserstein(fake, reference[:n_probe], n_projections=64))

    record: dict[str, Any] = {
        "ganforge_version": __version__,
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "data_source": data.source,
        "total_steps": total,
        "device": str(device),
        "text": {"encoder": encoder.name, "encoder_id": encoder.id, "dim": encoder.dim,
                 "distinct_captions": len(table.texts), "examples": len(data), "preview_prompts": prompts,
                 "vocabulary": data.vocabulary.to_dict() if data.vocabulary is not None else None},
    }
    if checkpoint is None:
        run.create(record)
        save_encoder(encoder, run.path / ENCODER_DIR)
    evaluator = _make_evaluator(config, run, step, data, encoder, device) if config.eval_every > 0 else None
    hooks: list[Callback] = []
    if config.doctor:
        from ganforge.train.doctor_hook import DoctorCallback

        hooks.append(DoctorCallback(config, run.path, n_classes=0, total_steps=total, is_image=True))
    hooks += list(callbacks or [])
    trainer = Trainer(step, stream, run, config, total, preview=preview, score=score,  # type: ignore[arg-type]
                      evaluate=evaluator, probe=probe, callbacks=hooks)
    banner = (f"training text2image on {data.source}: {tuple(spec.shape)}, {len(data)} captioned images "
              f"({len(table.texts)} distinct captions, {encoder.name} encoder, {encoder.dim}-d), {total} steps of "
              f"{config.batch_size} on {device}")
    return fit_trainer(trainer, run, config, total, checkpoint, banner)


def _make_evaluator(config: RunConfig, run: RunDir, step: TextGANStep, data: CaptionedImages,
                    encoder: SentenceEncoder, device: torch.device):
    """Caption consistency (the judge's accuracy on images of seen prompts) every --eval-every steps; built-in
    captioned sets only (the judge and the prompts come from them)."""
    from ganforge.metrics.judge import get_judge
    from ganforge.metrics.protocol import append_scores
    from ganforge.metrics.text2image import evaluate_prompts

    if data.vocabulary is None or data.thresholds is None:
        raise ConfigError("--eval-every for text2image scores caption consistency with a domain judge, which needs "
                          "the built-in captioned fashion_mnist or digits; drop --eval-every for other data")
    judge = get_judge(data.name, data_dir=config.data_dir, device=str(device), progress=config.progress)
    prompts = test_prompts(data.vocabulary, held_out=False, per_class=2, seed=config.seed)

    def evaluate_now(at_step: int) -> float:
        scores = evaluate_prompts(lambda texts, n, seed: generate_from_vectors(
            step.sampling_generator(), embed_captions(encoder, texts).repeat_interleave(n, dim=0), seed),
            prompts, judge=judge, thresholds=data.thresholds, n_per_prompt=max(1, config.eval_n // len(prompts)),
            seed=config.seed)
        for s in scores:
            s.step, s.checkpoint = at_step, f"step_{at_step:06d}"
        append_scores(run.path / "metrics.jsonl", scores)
        by_name = {s.metric: s.value for s in scores}
        name = config.best_metric or next(k for k in by_name if k.startswith("caption_consistency"))
        if name not in by_name:
            raise ConfigError(f"--best-metric {name!r} is not among the scores: {', '.join(by_name)}")
        return -by_name[name]

    return evaluate_now


# --- loading a trained run ---------------------------------------------------------------------------------
@dataclass
class TrainedTextToImage:
    """A text-to-image generator and its text encoder, rebuilt from a run directory."""

    generator: nn.Module
    encoder: SentenceEncoder
    spec: DataSpec
    config: RunConfig
    checkpoint: Path
    uses_ema: bool
    vocabulary: CaptionVocabulary | None

    def generate(self, prompts: list[str], n_per_prompt: int = 8, seed: int = 0) -> Tensor:
        """``n_per_prompt`` images per prompt, (len(prompts) * n, C, H, W) in [-1, 1], prompt by prompt."""
        prompts = check_prompts(prompts)
        if n_per_prompt < 1:
            raise ConfigError(f"--n must be a positive number of images per prompt, got {n_per_prompt}")
        vectors = self.encoder.encode(prompts).repeat_interleave(n_per_prompt, dim=0)
        return generate_from_vectors(self.generator, vectors, seed=seed, n_per_prompt=n_per_prompt)


def check_prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ConfigError("give at least one prompt, e.g. \"a pair of trousers\"")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"prompt {i} is empty or not a string")
    return [p.strip() for p in prompts]


def load_text2image(run_dir: str | os.PathLike, checkpoint: str | None = None, device: str = "cpu"
                    ) -> TrainedTextToImage:
    """Rebuild a text2image run's generator (EMA weights when kept) and text encoder.

    ``checkpoint``: None or ``"latest"``, ``"best"``, or a checkpoint directory.
    """
    run = RunDir(run_dir)
    record = run.read_config()
    config = RunConfig.from_dict(record["config"])
    if config.model != MODEL:
        raise ConfigError(f"{run.path} is a {config.model} run, not a text-to-image run (train one with "
                          "`ganforge text2image train`)")
    spec = DataSpec.from_dict(record["spec"])
    path = run.checkpoint_path(checkpoint)
    generator, _ = build_text_networks(config, spec)
    uses_ema = load_sampling_weights(path, generator)
    generator.to(resolve_device(device)).eval()
    encoder = load_encoder(run.path / ENCODER_DIR, device="cpu")
    vocab = record.get("text", {}).get("vocabulary")
    return TrainedTextToImage(generator, encoder, spec, config, path, uses_ema,
                              CaptionVocabulary.from_dict(vocab) if vocab else None)
