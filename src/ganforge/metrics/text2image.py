"""Scores of a text-to-image generator: does each image show what its caption says?

For prompts whose class and attribute are known (`ganforge.data.text.test_prompts`), separately for prompts
phrased like the training captions ("seen") and for held-out paraphrases:

- **caption consistency**: the domain judge's (`ganforge.metrics.judge`) accuracy on the generated images
  against the prompt's class;
- **attribute accuracy**: the share of images whose measured darkness (mean intensity against the class
  median of the real training images) is what the prompt asked for, dark or light; chance is 50%;
- **FD** in the judge's features, generated images of all seen prompts against real test images;
- **R-precision** (Xu et al., AttnGAN 2018): an image-text matcher trained on the real training pairs ranks
  each generated image's own prompt against 99 mismatched captions (another class, or the opposite
  attribute); the score is the share of images whose prompt ranks first (chance 1%).

Every value is a `Score` stamped with its `Protocol` (judge name and weights hash, sample counts, reference, seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ganforge.data.text import Prompt, measure_darker
from ganforge.errors import ConfigError
from ganforge.metrics.distances import frechet_distance
from ganforge.metrics.protocol import Protocol, Score

GenerateFn = Callable[[list[str], int, int], Tensor]  # (prompts, images per prompt, seed) -> images in [-1, 1]
N_CANDIDATES = 100  # the true caption and 99 mismatched ones, as in AttnGAN


def caption_consistency(judge, images: Tensor, labels: Tensor) -> float:
    """Share of ``images`` the judge assigns to ``labels`` (the classes their captions name)."""
    predicted = torch.from_numpy(judge.predict(images.clamp(-1, 1)))
    return float((predicted == labels.cpu()).float().mean())


def attribute_accuracy(images: Tensor, labels: Tensor, attributes: Tensor, thresholds: Tensor) -> float:
    """Share of images asked to be dark (0) or light (1) that measure so against their class median; NaN when no
    image asks for an attribute."""
    asked = attributes >= 0
    if not bool(asked.any()):
        return float("nan")
    measured = measure_darker(images[asked], labels[asked], thresholds)
    return float((measured == attributes[asked]).float().mean())


# ---------------------------------------------------------------------------------------------
# R-precision


class ImageTextMatcher(nn.Module):
    """Image and sentence vector -> unit vectors in one 64-d space; cosine similarity is the match score.

    Small on purpose (two strided convs, an MLP over the sentence vector): like AttnGAN's DAMSM it is trained
    only on the data set's own real (image, caption) pairs.
    """

    def __init__(self, image_shape: tuple[int, int, int], text_dim: int, dim: int = 64):
        super().__init__()
        channels = image_shape[0]
        self.image = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),  # (B, 64, H/4, W/4)
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # (B, 1024)
            nn.Linear(64 * 16, 128), nn.LeakyReLU(0.2), nn.Linear(128, dim))
        self.text = nn.Sequential(nn.Linear(text_dim, 128), nn.ReLU(), nn.Linear(128, dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.image_shape, self.text_dim = tuple(image_shape), text_dim

    def embed_images(self, x: Tensor) -> Tensor:
        return F.normalize(self.image(x), dim=1)

    def embed_texts(self, t: Tensor) -> Tensor:
        return F.normalize(self.text(t), dim=1)


def train_matcher(images: Tensor, text_vectors: Tensor, groups: Tensor, *, epochs: int = 2, batch_size: int = 128,
                  lr: float = 2e-3, seed: int = 0, max_images: int = 20_000, progress: bool = False
                  ) -> ImageTextMatcher:
    """Train a matcher on real pairs (uint8 images, their captions' vectors) with a symmetric contrastive loss
    whose positives are the pairs of the same ``group`` (captions that say the same thing). Deterministic given
    ``seed``; the global RNG is left as it was."""
    from tqdm.auto import tqdm

    n = len(images)
    if n < 2 or len(text_vectors) != n or len(groups) != n:
        raise ConfigError(f"the matcher needs as many caption vectors and groups as images (>= 2), got {n} images, "
                          f"{len(text_vectors)} vectors, {len(groups)} groups")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(n, generator=g)[:max_images]
        matcher = ImageTextMatcher(tuple(images.shape[1:]), text_vectors.shape[1])
        opt = torch.optim.Adam(matcher.parameters(), lr=lr)
        steps = epochs * max(1, len(keep) // batch_size)
        bar = tqdm(total=steps, disable=not progress, desc="R-precision matcher", leave=False)
        matcher.train()
        for _ in range(epochs):
            order = keep[torch.randperm(len(keep), generator=g)]
            for start in range(0, len(order) - batch_size + 1, batch_size):
                idx = order[start : start + batch_size]
                x = images[idx].float() / 127.5 - 1 if images.dtype == torch.uint8 else images[idx].float()
                vi, vt = matcher.embed_images(x), matcher.embed_texts(text_vectors[idx].float())
                logits = matcher.log_scale.exp() * vi @ vt.t()  # (B, B)
                same = (groups[idx][:, None] == groups[idx][None, :]).float()
                target = same / same.sum(1, keepdim=True)
                loss = 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean()
                              - (target.t() * logits.t().log_softmax(1)).sum(1).mean())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
        bar.close()
    return matcher.eval()


@dataclass
class CaptionPool:
    """Captions to draw mismatched candidates from: their vectors (in the matcher's text space) and what they say."""

    vectors: Tensor  # (M, dim)
    labels: Tensor  # (M,)
    attributes: Tensor  # (M,), -1 = none


@torch.no_grad()
def r_precision(matcher: ImageTextMatcher, images: Tensor, vectors: Tensor, labels: Tensor, attributes: Tensor,
                pool: CaptionPool, n_candidates: int = N_CANDIDATES, seed: int = 0) -> float:
    """Top-1 R-precision: for each image, its own caption (``vectors[i]``, saying ``labels[i]``/``attributes[i]``)
    against ``n_candidates - 1`` pool captions that say something else; the share ranked first."""
    g = torch.Generator().manual_seed(seed)
    matcher.eval()
    image_emb = torch.cat([matcher.embed_images(images[i : i + 512].float()) for i in range(0, len(images), 512)])
    true_emb = matcher.embed_texts(vectors.float())
    pool_emb = matcher.embed_texts(pool.vectors.float())
    hits = 0
    for i in range(len(images)):
        other = pool.labels != labels[i]
        if attributes[i] >= 0:
            other |= (pool.labels == labels[i]) & (pool.attributes >= 0) & (pool.attributes != attributes[i])
        candidates = torch.nonzero(other).flatten()
        if len(candidates) == 0:
            raise ConfigError("the caption pool has no caption that mismatches; R-precision needs varied captions")
        pick = candidates[torch.randint(len(candidates), (n_candidates - 1,), generator=g)]
        scores = torch.cat([(image_emb[i] * true_emb[i]).sum()[None], pool_emb[pick] @ image_emb[i]])
        hits += int(scores[0] > scores[1:].max())
    return hits / max(1, len(images))


# ---------------------------------------------------------------------------------------------
# all together


@dataclass
class RPrecisionSetup:
    """What R-precision needs besides the images: the trained matcher, a text encoder for its space, a pool."""

    matcher: ImageTextMatcher
    encode: Callable[[list[str]], Tensor]  # captions -> vectors in the matcher's text input space
    pool: CaptionPool
    name: str = "matcher"


def evaluate_prompts(generate: GenerateFn, prompts: Sequence[Prompt], *, judge, thresholds: Tensor,
                     n_per_prompt: int = 10, seed: int = 0, real: Tensor | None = None, reference: str = "",
                     r_precision_setup: RPrecisionSetup | None = None) -> list[Score]:
    """Generate ``n_per_prompt`` images for every prompt and score them: caption consistency and attribute
    accuracy per split (seen / held-out), FD against ``real`` (test images in [-1, 1] or uint8) and R-precision
    when a matcher is given. Prompts with ``held_out`` set are scored apart."""
    scores: list[Score] = []
    by_split: dict[str, list[Prompt]] = {}
    for p in prompts:
        by_split.setdefault("held_out" if p.held_out else "seen", []).append(p)
    seen_images = None
    for split, group in by_split.items():
        texts = [p.text for p in group]
        images = generate(texts, n_per_prompt, seed).clamp(-1, 1)
        labels = torch.tensor([p.label for p in group]).repeat_interleave(n_per_prompt)
        attributes = torch.tensor([p.attribute for p in group]).repeat_interleave(n_per_prompt)
        protocol = Protocol(judge.name, judge.weights_hash, 0, len(images), f"{split} prompts", "none", seed)
        extra = {"prompts": len(group), "per_prompt": n_per_prompt}
        scores.append(Score(f"caption_consistency_{split}_{judge.name}", caption_consistency(judge, images, labels),
                            protocol, extra=extra))
        scores.append(Score(f"attribute_accuracy_{split}", attribute_accuracy(images, labels, attributes, thresholds),
                            Protocol("mean intensity vs class median", "", 0, len(images), f"{split} prompts", "none",
                                     seed), extra=extra))
        if r_precision_setup is not None:
            rp = r_precision_setup
            vectors = rp.encode(texts).repeat_interleave(n_per_prompt, dim=0)
            value = r_precision(rp.matcher, images, vectors, labels, attributes, rp.pool, seed=seed)
            scores.append(Score(f"r_precision_{split}", value, Protocol(rp.name, "", len(rp.pool.vectors), len(images),
                                                                        f"{split} prompts", "none", seed),
                                extra={**extra, "candidates": N_CANDIDATES}))
        if split == "seen":
            seen_images = images
    if real is not None and seen_images is not None and len(seen_images) > judge.feature_dim:  # else FD is undefined
        real_f = real.float() / 127.5 - 1 if real.dtype == torch.uint8 else real.float()
        fd = frechet_distance(judge.features(seen_images), judge.features(real_f))
        scores.append(Score(f"fd_{judge.name}", fd, Protocol(judge.name, judge.weights_hash, len(real_f),
                                                             len(seen_images), reference, "none", seed)))
    return scores


def scores_table(scores: Sequence[Score]) -> dict[str, float]:
    """``{metric: value}`` with NaN for missing values dropped."""
    return {s.metric: s.value for s in scores if not (isinstance(s.value, float) and np.isnan(s.value))}
