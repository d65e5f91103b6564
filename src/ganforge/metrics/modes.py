"""Mode coverage of samples from a known Gaussian mixture: the classic mode-collapse test.

On 2-D mixtures such as ring8 and grid25 (:mod:`ganforge.data.toy`) the true modes are known,
so mode collapse can be counted directly instead of inferred from features. The statistics
follow the protocol of Srivastava et al., "VEEGAN: Reducing Mode Collapse in GANs using Implicit
Variational Learning", NeurIPS 2017 (modes captured, share of high-quality samples within three
standard deviations of a mode), with the KL divergence of the mode histogram from uniform used
by Lin et al., "PacGAN: The power of two samples in generative adversarial networks", NeurIPS
2018. Papers differ in the details (box or ball, capture threshold); the exact definitions used
here are fixed in :func:`mode_stats`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ganforge.data.toy import MIXTURES, Mixture
from ganforge.errors import ConfigError
from ganforge.metrics.distances import as_features

__all__ = ["ModeStats", "mixture_mode_stats", "mode_stats"]

_BLOCK_ELEMENTS = 2**22  # sample-mode-coordinate differences held at once (32 MiB of float64)


@dataclass
class ModeStats:
    """Mode statistics of a sample set; see :func:`mode_stats` for the definitions."""

    modes_captured: int
    high_quality: float
    kl_to_uniform: float
    counts: list[int]
    n_modes: int
    modes_visited: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (for JSON logs); ``kl_to_uniform`` may be ``inf``."""
        return asdict(self)


def mode_stats(
    samples: Any, modes: Any, std: float, n_std: float = 3.0, min_share: float = 0.01
) -> ModeStats:
    """Count the modes of a known isotropic Gaussian mixture that ``samples`` (N, D) capture.

    Definitions, for K ``modes`` (K, D) of per-axis standard deviation ``std``:

    - each sample is assigned to its nearest mode (Euclidean distance; ties go to the lower index);
    - a sample is *high quality* if its distance to that nearest mode is at most ``n_std * std``
      (a ball of radius 3 std by default, not a box);
    - ``high_quality`` = share of all N samples that are high quality (for exact samples of a 2-D
      mixture with well-separated modes, P(r ≤ 3σ) = 1 − exp(−9/2) ≈ 0.9889);
    - ``counts[k]`` = number of high-quality samples assigned to mode k;
    - mode k is *captured* iff counts[k] ≥ max(1, min_share · N_hq), where N_hq = Σ counts is the
      number of high-quality samples (min_share = 1 % by default, so a handful of stray samples
      does not count as covering a mode); ``modes_captured`` = number of captured modes;
    - ``modes_visited`` = number of modes that are the nearest mode of at least N / (4K) of *all*
      samples (a quarter of a uniform share), high quality or not: where the samples go, whatever
      their precision. Few modes visited is mode collapse; many visited but few captured is
      imprecision (a blurry generator), which is a different problem;
    - ``kl_to_uniform`` = KL(p ‖ u) = Σ_k p_k log(K p_k), natural log, with 0 · log 0 = 0, where
      p = counts / N_hq and u is uniform over the K modes: 0 when the high-quality samples spread
      evenly over all modes, log(K / m) when they spread evenly over m modes; ``inf`` when no
      sample is high quality.

    Raises :class:`ConfigError` for an empty sample set, mismatched dimensions or a non-positive std.
    """
    x = as_features(samples, "samples")
    centres = as_features(modes, "modes")
    if len(x) == 0:
        raise ConfigError("samples is empty; pass at least one sample (thousands for meaningful statistics)")
    if len(centres) == 0:
        raise ConfigError("modes is empty; pass the (K, D) array of mixture means")
    if x.shape[1] != centres.shape[1]:
        raise ConfigError(
            f"samples have {x.shape[1]} coordinates but modes have {centres.shape[1]}; "
            "pass samples in the space of the mixture (e.g. (N, 2) points for ring8/grid25)"
        )
    if not (std > 0 and math.isfinite(std)):
        raise ConfigError(f"std must be a positive number, got {std}")
    if not (n_std > 0 and math.isfinite(n_std)):
        raise ConfigError(f"n_std must be a positive number, got {n_std}")
    if not 0.0 <= min_share <= 1.0:
        raise ConfigError(f"min_share is a fraction of the high-quality samples, in [0, 1]; got {min_share}")

    n_modes = len(centres)
    nearest = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x))
    rows = max(1, _BLOCK_ELEMENTS // (n_modes * x.shape[1]))
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        d = np.sqrt(((block[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))  # exact, not ‖a‖²+‖b‖²−2ab
        idx = d.argmin(axis=1)
        nearest[start : start + rows] = idx
        dist[start : start + rows] = d[np.arange(len(block)), idx]

    good = dist <= n_std * std
    counts = np.bincount(nearest[good], minlength=n_modes)
    n_hq = int(counts.sum())
    captured = int((counts >= max(1.0, min_share * n_hq)).sum())
    if n_hq == 0:
        kl = math.inf
    else:
        p = counts[counts > 0] / n_hq
        kl = max(float((p * np.log(p * n_modes)).sum()), 0.0)  # clip -1e-17 round-off; KL >= 0
    visited = int((np.bincount(nearest, minlength=n_modes) >= len(x) / (4 * n_modes)).sum())
    return ModeStats(
        modes_visited=visited,
        modes_captured=captured,
        high_quality=float(good.mean()),
        kl_to_uniform=kl,
        counts=[int(c) for c in counts],
        n_modes=n_modes,
    )


def mixture_mode_stats(
    samples: Any, name_or_mixture: str | Mixture, n_std: float = 3.0, min_share: float = 0.01
) -> ModeStats:
    """:func:`mode_stats` against a mixture of :mod:`ganforge.data.toy`, given by name ("ring8", "grid25") or object."""
    if isinstance(name_or_mixture, Mixture):
        mixture = name_or_mixture
    else:
        key = str(name_or_mixture).lower()
        if key not in MIXTURES:
            raise ConfigError(f"unknown mixture {name_or_mixture!r}; choose one of {', '.join(sorted(MIXTURES))}")
        mixture = MIXTURES[key]
    return mode_stats(samples, mixture.modes, mixture.std, n_std=n_std, min_share=min_share)
