"""Stacked MNIST: three MNIST digits in the three colour channels, 1,000 modes to count.

The standard mode-collapse benchmark (Metz et al. 2017, unrolled GANs; Srivastava et al. 2017,
VEEGAN; Lin et al. 2018, PacGAN): each 3x28x28 image puts an independently drawn digit into
each channel, so the data has 10³ = 1,000 equally likely modes, labelled
``100 · d_R + 10 · d_G + d_B``. A generator's samples are scored by classifying each channel
with an MNIST classifier (``stacked_mode_stats``) and counting the distinct modes it produces.

``load("stacked_mnist")`` builds it from MNIST, so MNIST must be findable (see
``ganforge.data.sources``); the data is generated, never downloaded.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ganforge.data.images import ImageData
from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError

N_MODES = 1000
STACKED_SIZES = {"train": 60_000, "test": 10_000}
STACKED_SEEDS = {"train": 0, "test": 1}


class ChannelJudge(Protocol):
    """Anything with ``predict(images) -> (N,) digits`` for (N, 1, H, W) images: an MNIST ``Judge``."""

    def predict(self, images: Any) -> np.ndarray: ...


def make_stacked(mnist: ImageData, n: int, seed: int) -> ImageData:
    """``n`` stacked images from any labelled 1-channel digit data (MNIST, or digits in tests).

    For each output image, three source images are drawn uniformly at random with replacement
    by ``numpy.random.default_rng(seed)``; they become the R, G and B channels, and the label is
    ``100 · d_R + 10 · d_G + d_B``. Images are uint8 (n, 3, H, W); ``spec.n_classes`` is 1000.
    """
    if mnist.spec.channels != 1:
        raise ConfigError(f"stacked data is built from 1-channel digits, got {mnist.spec.channels} channels")
    if mnist.labels is None:
        raise ConfigError(f"stacked data needs digit labels; {mnist.source} has none")
    if len(mnist) == 0:
        raise ConfigError("stacked data needs at least one source image")
    if len(mnist.labels) and (int(mnist.labels.min()) < 0 or int(mnist.labels.max()) > 9):
        top = int(mnist.labels.max())
        raise ConfigError(f"stacked data needs digit labels 0..9, {mnist.source} has labels up to {top}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"n must be a positive int, got {n!r}")
    picks = np.random.default_rng(seed).integers(0, len(mnist), size=(n, 3))  # (n, 3): R, G, B sources
    index = torch.from_numpy(picks)
    images = mnist.images[:, 0][index]  # (n, 3, H, W)
    digits = mnist.labels[index]  # (n, 3)
    labels = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    spec = DataSpec(
        shape=(3, mnist.spec.height, mnist.spec.width),
        kind="image",
        n_classes=N_MODES,
        name=f"stacked_{mnist.spec.name}" if mnist.spec.name else "stacked",
    )
    source = f"stacked from {mnist.source} (n={n}, seed={seed})"
    return ImageData(images=images.contiguous(), labels=labels, spec=spec, source=source)


def load_stacked_mnist(split: str = "train", data_dir: str | None = None) -> ImageData:
    """Stacked MNIST: 60,000 train images (seed 0) from MNIST train, 10,000 test (seed 1) from MNIST test.

    Fixed sizes and seeds, so every run and every paper-style comparison sees the same images.
    Errors from finding MNIST (``DataNotFoundError``) propagate unchanged.
    """
    from ganforge.data.registry import load  # late: the registry imports this module to register it

    if split not in STACKED_SIZES:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    return make_stacked(load("mnist", split, data_dir), n=STACKED_SIZES[split], seed=STACKED_SEEDS[split])


def register() -> None:
    """Register ``load("stacked_mnist")``; safe to call more than once (``replace=True``)."""
    from ganforge.data.registry import register_dataset

    register_dataset("stacked_mnist", load_stacked_mnist, replace=True)


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(counts / total || uniform over len(counts)) in nats, with 0 log 0 = 0."""
    p = counts[counts > 0] / counts.sum()
    return float(np.sum(p * np.log(p * len(counts))))


def stacked_mode_stats(judge: ChannelJudge, images: Any, *, batch_size: int = 4096) -> dict[str, Any]:
    """Count the Stacked MNIST modes in ``images`` (N, 3, H, W), uint8 or floats in [-1, 1].

    Each channel is classified as a (N, 1, H, W) image by ``judge`` (an MNIST judge), giving
    digits ``r, g, b``; the sample's mode is ``100 · r + 10 · g + b``. Returned:

    - ``modes_captured``: number of distinct modes predicted at least once (the PacGAN/VEEGAN
      convention; those papers use 26,000 samples, so compare at equal sample counts — with
      ``N`` samples at most ``min(N, 1000)`` modes can be found, and a perfect generator finds
      about ``1000 · (1 - exp(-N / 1000))``);
    - ``kl_to_uniform``: KL(h / N ‖ uniform over 1000) in nats of the 1000-bin mode histogram
      ``h``, with ``0 · log 0 = 0``; 0 is perfect, ``log 1000 ≈ 6.91`` is one mode; biased
      upwards at small ``N`` (≈ 999 / (2N) for a perfect generator);
    - ``modes_at_least_10``: modes predicted at least 10 times;
    - ``largest_mode_share``: share of samples in the most frequent mode;
    - ``histogram``: the 1000 counts; ``n``: the number of samples;
    - where the KL comes from, exactly: ``kl_to_uniform = sum(kl_channels) + total_correlation``.
      ``kl_channels``: KL(channel's digit frequencies ‖ uniform over 10) for R, G, B (uneven digits
      within a channel: too many 7s, too few 4s); ``total_correlation``: the multi-information
      between the channels (sum of channel entropies minus the joint entropy; digits that come in
      fixed combinations); ``channel_histograms``: the three 10-bin digit counts.
    """
    x = images.images if isinstance(images, ImageData) else images
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ConfigError(f"stacked_mode_stats takes (N, 3, H, W) images, got {shape}")
    n = int(x.shape[0])
    if n == 0:
        raise ConfigError("stacked_mode_stats needs at least one image")
    digits = np.empty((n, 3), dtype=np.int64)
    for start in range(0, n, batch_size):
        part = x[start : start + batch_size]
        for channel in range(3):
            digits[start : start + len(part), channel] = np.asarray(judge.predict(part[:, channel : channel + 1]))
    if digits.min() < 0 or digits.max() > 9:
        raise ConfigError("the judge predicted classes outside 0..9: stacked_mode_stats needs an MNIST (digit) judge")
    modes = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    counts = np.bincount(modes, minlength=N_MODES)
    kl = _kl_to_uniform(counts)
    channel_counts = [np.bincount(digits[:, c], minlength=10) for c in range(3)]
    kl_channels = [_kl_to_uniform(c) for c in channel_counts]
    return {
        "n": n,
        "n_modes": N_MODES,
        "modes_captured": int(np.sum(counts > 0)),
        "modes_at_least_10": int(np.sum(counts >= 10)),
        "kl_to_uniform": kl,
        "kl_channels": kl_channels,
        "total_correlation": max(0.0, kl - sum(kl_channels)),  # >= 0 in exact arithmetic
        "largest_mode_share": float(counts.max() / n),
        "histogram": [int(c) for c in counts],
        "channel_histograms": [[int(v) for v in c] for c in channel_counts],
    }
