"""Precision, recall, density and coverage of generated samples, from k-nearest-neighbour balls.

FID and KID fold fidelity (are the samples realistic?) and diversity (is the whole data
distribution covered?) into one number; these four metrics separate them:

- precision and recall: Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS 2019. The support of each set is estimated as the union of balls
  around its samples, each reaching the sample's k-th nearest neighbour in its own set.
  Precision is the share of fake samples inside the real support; recall the share of real
  samples inside the fake support. A mode-collapsed generator keeps a high precision and loses
  recall.
- density and coverage: Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
  Models", ICML 2020. Density counts how many real balls contain each fake sample (1 on average
  when both sets come from one distribution; robust to real outliers, which inflate precision).
  Coverage is the share of real samples whose ball contains at least one fake sample, which
  unlike recall does not trust the (possibly over-large) balls of the fake samples.

The definitions follow the reference implementation of Naeem et al. (the ``prdc`` package,
github.com/clovaai/generative-evaluation-prdc) exactly, including strict inequalities: a point
lying exactly on a ball's boundary is outside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ganforge.errors import ConfigError
from ganforge.metrics.distances import as_features

__all__ = ["DEFAULT_BLOCK_BYTES", "prdc"]

#: Largest block of float64 distances held in memory at once (256 MiB: 10k x 3.3k distances).
DEFAULT_BLOCK_BYTES = 256 * 2**20


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _distance_blocks(
    x: np.ndarray, y: np.ndarray, block_bytes: int, same: bool = False
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (row slice, Euclidean distances from x[rows] to all of y), at most ``block_bytes`` per block.

    Uses ‖x‖² + ‖y‖² − 2 x·y with a BLAS matrix product (as scikit-learn does), clipped at 0.
    With ``same`` (x is y), the self-distances are set to exactly 0.
    """
    xx, yy = _squared_norms(x), _squared_norms(y)
    rows = max(1, block_bytes // (8 * len(y)))
    for start in range(0, len(x), rows):
        sl = slice(start, min(start + rows, len(x)))
        d = x[sl] @ y.T
        d *= -2.0
        d += xx[sl, None]
        d += yy[None, :]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        if same:
            idx = np.arange(sl.start, sl.stop)
            d[idx - sl.start, idx] = 0.0
        yield sl, d


def _knn_radii(x: np.ndarray, k: int, block_bytes: int) -> np.ndarray:
    """Distance from each sample to its k-th nearest neighbour in ``x``, the sample itself excluded."""
    radii = np.empty(len(x))
    for sl, d in _distance_blocks(x, x, block_bytes, same=True):
        # Self is at distance 0, so the k-th neighbour is the (k+1)-th smallest (index k).
        d.partition(k, axis=1)  # in place: no second block in memory
        radii[sl] = d[:, k]
    return radii


def prdc(
    real_features: Any, fake_features: Any, k: int = 5, *, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake_features`` against ``real_features``.

    Definitions (Kynkäänniemi et al. 2019; Naeem et al. 2020), with Euclidean distances and
    r(x) = distance from x to its k-th nearest neighbour in its own set, x itself excluded:

    - precision = share of fake samples f with ‖f − r_i‖ < r(r_i) for some real r_i;
    - recall = share of real samples r with ‖r − f_j‖ < r(f_j) for some fake f_j;
    - density = (1/k) · mean over fake f of #{real r_i : ‖f − r_i‖ < r(r_i)};
    - coverage = share of real samples r_i with min_j ‖r_i − f_j‖ < r(r_i).

    The result matches ``prdc.compute_prdc(real, fake, nearest_k=k)``. k = 5 is the value both
    papers recommend. Distances are computed in float64 in row blocks of at most ``block_bytes``
    bytes, so 10k x 10k samples need ~ 256 MiB rather than the 800 MB of the full matrix.

    Raises :class:`ConfigError` if the feature dimensions differ, or if k is not smaller than
    the number of samples in each set (a sample needs k neighbours besides itself).
    """
    real = as_features(real_features, "real_features")
    fake = as_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ConfigError(
            f"real_features have {real.shape[1]} features per sample but fake_features have {fake.shape[1]}; "
            "extract both sets with the same feature extractor"
        )
    if k < 1:
        raise ConfigError(f"k must be a positive integer, got {k}")
    for name, x in (("real_features", real), ("fake_features", fake)):
        if k >= len(x):
            raise ConfigError(
                f"k = {k} nearest neighbours need more than {k} samples, but {name} has {len(x)}; "
                f"pass at least {k + 1} samples (thousands for meaningful values) or lower k"
            )
    if block_bytes < 1:
        raise ConfigError(f"block_bytes must be positive, got {block_bytes}")

    real_radii = _knn_radii(real, k, block_bytes)
    fake_radii = _knn_radii(fake, k, block_bytes)

    in_real_balls = np.zeros(len(fake), dtype=np.int64)  # per fake: number of real balls containing it
    real_in_fake_support = np.zeros(len(real), dtype=bool)
    real_covered = np.zeros(len(real), dtype=bool)
    for sl, d in _distance_blocks(real, fake, block_bytes):  # d: (rows of real, all fake)
        in_real_balls += (d < real_radii[sl, None]).sum(axis=0)
        real_in_fake_support[sl] = (d < fake_radii[None, :]).any(axis=1)
        real_covered[sl] = d.min(axis=1) < real_radii[sl]

    return {
        "precision": float((in_real_balls > 0).mean()),
        "recall": float(real_in_fake_support.mean()),
        "density": float(in_real_balls.mean() / k),
        "coverage": float(real_covered.mean()),
    }
