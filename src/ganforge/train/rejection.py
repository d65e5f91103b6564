"""Discriminator rejection sampling (Azadi et al. 2019, "Discriminator Rejection Sampling").

A trained generator puts some of its mass where the data has none: between modes, around their edges.
A discriminator trained to optimality against a *fixed* generator estimates the density ratio
p_data(x) / p_G(x) = exp(D(x)) (D's logit). Rejection sampling with that ratio turns samples of p_G into
samples of p_data: accept x with probability exp(D(x) − M), where M bounds the logit.

Two steps:

1. `fit_rejection(run_dir)`: the run's discriminator, as saved in its checkpoint, is trained further
   against the *sampling* generator (the EMA copy when the run kept one), frozen, on the run's own
   training data, with the logistic loss and no penalty or augmentation: those served the game, and
   here D must only estimate a ratio. Saved atomically in ``RUN_DIR/rejection/``.
2. `RejectionSampler.sample(n)`: draws candidates in chunks, accepts each with probability
   sigmoid(F(x) − γ), F = D̃ − log(1 − exp(D̃ − ε)), D̃ = D(x) − M (the paper's form). With γ = 0 that
   is exactly exp(D(x) − M), plain rejection sampling; a negative γ accepts more (faster, less
   precise), a positive one fewer. M is the largest logit of the first chunk of candidates (the
   burn-in), raised whenever a larger one is seen (per class for conditional runs).

Measured on ring8 (bench/modes.py, `--rejection`): see bench/results/modes.md.

Runs trained with ``--pack K`` have a discriminator that judges K samples at once, which cannot score
one; for them step 1 trains a *fresh* discriminator of the run's architecture for one sample (without the
minibatch-std feature, which would make a sample's score depend on its batch mates), from a seeded
initialisation instead of the checkpoint, so it needs more ``steps``. Not for the run families whose
generator needs more than noise (CycleGAN, text-to-image, video).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ganforge.errors import ConfigError
from ganforge.train.checkpoint import load_weights
from ganforge.train.run import TrainedRun, _load_data, generate, load_run
from ganforge.train.runtime import BatchStream, resolve_device

REJECTION_DIR = "rejection"
WEIGHTS_FILE = "discriminator.safetensors"
INFO_FILE = "rejection.json"
EPS = 1e-6


@dataclass
class RejectionSampler:
    """A run's generator and a discriminator fitted to its density ratio; `sample` draws accepted samples."""

    run: TrainedRun
    discriminator: nn.Module
    info: dict

    def _candidates(self, n: int, label: int | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        device = next(self.run.generator.parameters()).device
        z = torch.randn(n, self.run.generator.z_dim, generator=gen).to(device)
        labels = None if label is None else torch.full((n,), label, dtype=torch.long, device=device)
        x = generate(self.run.generator, z, labels)
        with torch.no_grad():  # train mode: batch-norm statistics of a generated batch, as D was fitted
            self.discriminator.train()
            logits = torch.cat([self.discriminator(x[i:i + 1024], None if labels is None else labels[i:i + 1024])
                                for i in range(0, n, 1024)]).flatten().double().cpu()
        return x, logits

    def _sample_one(self, n: int, label: int | None, gamma: float, gen: torch.Generator, chunk: int,
                    max_candidates: int, bar: tqdm | None) -> tuple[Tensor, int, int]:
        kept: list[Tensor] = []
        have, drawn, passed, max_logit = 0, 0, 0, -math.inf
        while have < n:
            if drawn >= max_candidates:
                rate = have / max(drawn, 1)
                raise ConfigError(
                    f"rejection sampling accepted {have} of {drawn} candidates ({rate:.2%})"
                    + ("" if label is None else f" for class {label}")
                    + f", short of {n}: lower --rejection-gamma (e.g. {gamma - 3:g}) to accept more, or sample "
                    "without --rejection")
            x, logits = self._candidates(chunk, label, gen)  # the first chunk is the burn-in that starts M
            drawn += len(logits)
            max_logit = max(max_logit, float(logits.max()))  # the bound M, raised as larger logits appear
            d = logits - max_logit
            f = d - torch.log1p(-torch.exp(d - EPS))
            accept = torch.rand(len(f), generator=gen, dtype=torch.double) < torch.sigmoid(f - gamma)
            passed += int(accept.sum())
            taken = x[accept.to(x.device)][: n - have]
            kept.append(taken)
            have += len(taken)
            if bar is not None:
                bar.update(len(taken))
        return torch.cat(kept), drawn, passed

    def sample(self, n: int, labels: int | None = None, seed: int = 0, gamma: float = 0.0, chunk: int | None = None,
               max_candidates_per_sample: int = 1000, progress: bool = False) -> Tensor:
        """``n`` accepted samples (same layout as `TrainedRun.sample`); conditional runs cycle through the
        classes (or take ``labels``, one class). ``self.info["last_acceptance"]`` is the share of candidates
        that passed (candidates come in chunks, so more may pass than were needed)."""
        if n <= 0:
            raise ConfigError(f"--n must be a positive number of samples, got {n}")
        if chunk is None:  # 10,000 candidates a chunk, fewer for large images (about 128 MB of floats)
            chunk = max(256, min(10_000, 2**25 // math.prod(self.run.spec.shape)))
        classes = self.run.spec.n_classes
        if classes:
            if labels is not None and not 0 <= labels < classes:
                raise ConfigError(f"--label {labels} is out of range: this run has classes 0..{classes - 1}")
            wanted = [labels] if labels is not None else list(range(classes))
            counts = [n // len(wanted) + (i < n % len(wanted)) for i in range(len(wanted))]
        elif labels is not None:
            raise ConfigError("--label is only for conditional runs (trained with --conditional)")
        else:
            wanted, counts = [None], [n]
        gen = torch.Generator().manual_seed(seed)
        bar = tqdm(total=n, desc="rejection sampling", unit="sample", disable=not progress)
        parts, drawn, passed = {}, 0, 0
        try:
            for label, count in zip(wanted, counts, strict=True):
                if count:
                    parts[label], used, ok = self._sample_one(count, label, gamma, gen, chunk,
                                                              max_candidates_per_sample * count + chunk, bar)
                    drawn, passed = drawn + used, passed + ok
        finally:
            bar.close()
        self.info["last_acceptance"] = passed / drawn  # the share of candidates that passed the test
        if not classes:
            return parts[None]
        # the order TrainedRun.sample uses: sample i has class i % classes (or all the one label)
        if labels is not None:
            return parts[labels]
        order = torch.arange(n) % classes
        out = torch.empty(n, *parts[0].shape[1:], dtype=parts[0].dtype)
        for label in wanted:
            if label in parts:
                out[order == label] = parts[label].cpu()
        return out


def _single_sample_discriminator(run: TrainedRun) -> tuple[nn.Module, bool]:
    """(D that scores one sample, whether it starts fresh): the run's own D, or, for a packed run, its
    architecture built for one sample and without minibatch-std (see the module docstring)."""
    from ganforge.nets import build

    overrides = run.config.model_overrides()
    fresh = run.config.pack > 1
    if fresh:
        overrides.pop("minibatch_std", None)
    _, discriminator = build(run.config.model, run.spec, **overrides)
    return discriminator, fresh


def fit_rejection(run_dir: str | os.PathLike, *, checkpoint: str | None = None, steps: int = 2000, lr: float = 2e-4,
                  batch_size: int = 256, seed: int = 0, device: str = "cpu", progress: bool = True
                  ) -> RejectionSampler:
    """Train the run's discriminator to estimate the sampling generator's density ratio; save it under
    ``RUN_DIR/rejection/`` and return the sampler. ``steps`` of ``batch_size`` real and as many generated
    samples, Adam (``lr``, betas (0.5, 0.999)), logistic loss, the generator frozen."""
    if steps < 1:
        raise ConfigError(f"--rejection-steps must be a positive integer, got {steps}")
    run = load_run(run_dir, checkpoint=checkpoint, device=device)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    discriminator, fresh = _single_sample_discriminator(run)
    if not fresh:
        weights = load_weights(run.checkpoint, "discriminator")
        if weights is None:
            raise ConfigError(f"checkpoint {run.checkpoint} holds no discriminator: rejection sampling starts from it")
        discriminator.load_state_dict(weights)
    discriminator.to(dev).train()
    data = _load_data(run.config)
    labels = data.labels if run.spec.n_classes else None  # run.spec: the networks' spec (classes iff conditional)
    stream = BatchStream(data.images, labels, min(batch_size, len(data)), seed, dev)
    opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in tqdm(range(steps), desc="fitting the rejection discriminator", disable=not progress):
        real, y = stream.next()
        z = torch.randn(real.shape[0], run.generator.z_dim, generator=gen).to(dev)
        fake = generate(run.generator, z, y)
        real_logits, fake_logits = discriminator(real, y), discriminator(fake, y)
        loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    discriminator.eval()
    tail = losses[-max(1, steps // 10):]
    info = {"checkpoint": run.checkpoint.name, "uses_ema": run.uses_ema, "steps": steps, "lr": lr,
            "batch_size": stream.batch_size, "seed": seed, "final_loss": sum(tail) / len(tail),
            # a packed run's D judges groups: this one was trained from scratch for one sample
            "fresh_discriminator": fresh,
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    folder = Path(run_dir) / REJECTION_DIR
    folder.mkdir(exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in discriminator.state_dict().items()}, str(tmp))
    os.replace(tmp, folder / WEIGHTS_FILE)
    tmp = folder / f".{INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
    os.replace(tmp, folder / INFO_FILE)
    return RejectionSampler(run, discriminator, info)


def load_rejection(run_dir: str | os.PathLike, device: str = "cpu") -> RejectionSampler:
    """The sampler `fit_rejection` saved for ``run_dir`` (with the checkpoint it was fitted against)."""
    folder = Path(run_dir) / REJECTION_DIR
    if not (folder / INFO_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{run_dir} has no rejection discriminator yet: fit one with `ganforge sample {run_dir} "
                          "--rejection` (it trains once, then is reused) or `fit_rejection(run_dir)`")
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    run = load_run(run_dir, checkpoint=str(Path(run_dir) / "checkpoints" / info["checkpoint"]), device=device)
    discriminator, _ = _single_sample_discriminator(run)
    discriminator.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    discriminator.to(resolve_device(device)).eval()
    return RejectionSampler(run, discriminator, info)
