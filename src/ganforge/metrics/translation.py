"""Scores of an image-to-image translator (CycleGAN), in both directions.

For translations G: A→B and F: B→A of held-out images ``a`` and ``b``:

- realism per direction: FD and KID between G(a) and real B (and F(b) and real A) in a feature
  extractor of the *target* domain (a judge trained on it, or InceptionV3);
- cycle reconstruction: mean |F(G(a)) − a| and |G(F(b)) − b|, pixels in [0, 1];
- with paired ground truth (``b[i]`` is what ``a[i]`` should become): L1, PSNR and SSIM of G(a)
  against b and of F(b) against a (SSIM by scikit-image, pixels in [0, 1]);
- with labels and domain judges: label preservation, the target domain judge's accuracy on the
  translations (and the A judge's on F(G(a))).

Every value is a `Score` stamped with a `Protocol` (extractor, sample counts, reference, seed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganforge.errors import ConfigError
from ganforge.metrics.distances import frechet_distance, kid
from ganforge.metrics.protocol import Protocol, Score

Translate = Callable[[Tensor], Tensor]  # images in [-1, 1] -> images in [-1, 1]


def _unit(x: Tensor) -> np.ndarray:
    """[-1, 1] tensors → float64 arrays in [0, 1] (N, C, H, W)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy().astype(np.float64)


def l1_error(x: Tensor, y: Tensor) -> np.ndarray:
    """Per-image mean absolute error, pixels in [0, 1]."""
    return np.abs(_unit(x) - _unit(y)).reshape(len(x), -1).mean(axis=1)


def psnr(x: Tensor, y: Tensor) -> np.ndarray:
    """Per-image peak signal-to-noise ratio in dB, pixels in [0, 1] (inf for identical images)."""
    mse = ((_unit(x) - _unit(y)) ** 2).reshape(len(x), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(1.0 / mse)


def ssim(x: Tensor, y: Tensor) -> np.ndarray:
    """Per-image structural similarity (Wang et al. 2004) by scikit-image, pixels in [0, 1]; a 7x7 window,
    shrunk to the largest odd size that fits images smaller than 7 pixels."""
    from skimage.metrics import structural_similarity

    a, b = _unit(x), _unit(y)
    win = min(7, *a.shape[2:])
    win -= 1 - win % 2  # odd
    if win < 3:
        raise ConfigError(f"SSIM needs images of at least 3x3 pixels, got {tuple(a.shape[2:])}")
    out = np.empty(len(a))
    for i in range(len(a)):
        out[i] = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0, win_size=win)
    return out


def _check_pair(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"{what}: paired ground truth must match the translations' shape, got {tuple(a.shape)} "
                          f"and {tuple(b.shape)} (same number of images, channels and size)")


def evaluate_translation(
    translate_ab: Translate,
    translate_ba: Translate,
    a: Tensor,
    b: Tensor,
    *,
    paired: bool = False,
    extractor_a: Any | None = None,
    extractor_b: Any | None = None,
    judge_a: Any | None = None,
    judge_b: Any | None = None,
    labels_a: Tensor | None = None,
    labels_b: Tensor | None = None,
    reference_a: str = "A",
    reference_b: str = "B",
    seed: int = 0,
) -> list[Score]:
    """Score both directions on held-out ``a`` (N, C_A, H, W) and ``b`` (M, C_B, H, W) in [-1, 1].

    ``extractor_a``/``extractor_b`` (objects with ``features(x)``, ``name``, ``weights_hash``) give FD and
    KID of translations *into* that domain; ``judge_*`` with ``labels_*`` give label preservation.
    With ``paired=True``, ``b[i]`` is the ground truth of ``a[i]`` (and ``a[i]`` of ``b[i]``).
    """
    if len(a) < 2 or len(b) < 2:
        raise ConfigError(f"translation scores need at least 2 test images per domain, got {len(a)} and {len(b)}")
    ab, ba = translate_ab(a).cpu(), translate_ba(b).cpu()
    aba, bab = translate_ba(ab).cpu(), translate_ab(ba).cpu()
    a, b = a.cpu(), b.cpu()
    scores: list[Score] = []

    def pixels(reference: str, n: int) -> Protocol:
        return Protocol("pixels", "", n, n, reference, "none", seed)

    for name, real, rec, ref in (("a", a, aba, reference_a), ("b", b, bab, reference_b)):
        scores.append(Score(f"cycle_l1_{name}", float(l1_error(real, rec).mean()), pixels(ref, len(real)),
                            extra={"units": "mean |x - x_reconstructed|, pixels in [0, 1]"}))
    for direction, fake, real, extractor, ref in (("a2b", ab, b, extractor_b, reference_b),
                                                  ("b2a", ba, a, extractor_a, reference_a)):
        if extractor is not None:
            protocol = Protocol(extractor.name, getattr(extractor, "weights_hash", ""), len(real), len(fake), ref,
                                "none", seed)
            f_real, f_fake = extractor.features(real), extractor.features(fake)
            scores.append(Score(f"fd_{direction}_{extractor.name}", frechet_distance(f_real, f_fake), protocol))
            size = min(1000, len(f_real), len(f_fake))
            mean, std = kid(f_real, f_fake, subset_size=size, seed=seed)
            scores.append(Score(f"kid_{direction}_{extractor.name}", mean * 1000, protocol,
                                extra={"std": std * 1000, "units": "x 1000", "subset_size": size}))
        if paired:
            truth = b if direction == "a2b" else a
            _check_pair(fake, truth, f"paired {direction}")
            protocol = pixels(f"{ref} (paired ground truth)", len(fake))
            scores.append(Score(f"l1_{direction}", float(l1_error(fake, truth).mean()), protocol,
                                extra={"units": "pixels in [0, 1]"}))
            values = psnr(fake, truth)
            scores.append(Score(f"psnr_{direction}", float(np.mean(np.minimum(values, 100.0))), protocol,
                                extra={"units": "dB, pixels in [0, 1], capped at 100 per image"}))
            scores.append(Score(f"ssim_{direction}", float(ssim(fake, truth).mean()), protocol))
    for direction, images, judge, labels, ref in (("a2b", ab, judge_b, labels_a, reference_b),
                                                  ("b2a", ba, judge_a, labels_b, reference_a),
                                                  ("aba", aba, judge_a, labels_a, reference_a),
                                                  ("bab", bab, judge_b, labels_b, reference_b)):
        if judge is None or labels is None:
            continue
        predicted = torch.as_tensor(judge.predict(images))
        protocol = Protocol(judge.name, judge.weights_hash, len(images), len(images), ref, "none", seed)
        scores.append(Score(f"label_preservation_{direction}", float((predicted == labels.cpu()).float().mean()),
                            protocol, extra={"judge_test_accuracy": judge.test_accuracy}))
    return scores
