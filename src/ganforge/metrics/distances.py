"""Distances between two sets of feature vectors: Fréchet distance (FID) and kernel inception distance (KID).

Both take the features of real and generated samples (e.g. Inception pool features, or the
2-D points of a toy mixture) as ``(N, D)`` arrays and compare the two empirical distributions:

- :func:`frechet_distance` fits one Gaussian to each set and returns the Fréchet (2-Wasserstein)
  distance between the two Gaussians — the FID of Heusel et al., "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017.
- :func:`kid` is the squared maximum mean discrepancy with a cubic polynomial kernel, estimated
  without bias and averaged over random subsets — the KID of Bińkowski et al., "Demystifying
  MMD GANs", ICLR 2018. Unlike FID it has no bias that depends on the sample size, and it works
  with fewer samples than feature dimensions.

Inputs may be numpy arrays or torch tensors (any float dtype, any device); everything is
computed in float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ganforge.errors import ConfigError

__all__ = [
    "as_features",
    "feature_statistics",
    "frechet_distance",
    "gaussian_frechet_distance",
    "kid",
    "mmd2_unbiased",
    "polynomial_kernel",
]

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]


def as_features(feats: Any, name: str = "features") -> np.ndarray:
    """Return ``feats`` as a finite float64 ``(N, D)`` numpy array, or raise :class:`ConfigError`.

    Accepts numpy arrays, torch tensors (detached and moved to the CPU) and nested sequences.
    ``name`` is used in the error messages so that the user knows which argument is wrong.
    """
    if hasattr(feats, "detach") and hasattr(feats, "cpu"):  # torch.Tensor, without importing torch
        feats = feats.detach().cpu().double().numpy()
    arr = np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ConfigError(
            f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}; "
            "flatten each sample's features into one row (e.g. feats.reshape(len(feats), -1))"
        )
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name} contain NaN or infinite values; check the feature extractor or the generator output")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ConfigError(
            f"{name_a} have {a.shape[1]} features per sample but {name_b} have {b.shape[1]}; "
            "extract both sets with the same feature extractor"
        )


def feature_statistics(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (divisor N - 1) of ``(N, D)`` features.

    These are the Gaussian statistics FID compares; computing them once per set lets a caller
    cache the statistics of the real data (as pytorch-fid and torch-fidelity do).
    """
    arr = as_features(feats)
    if arr.shape[0] < 2:
        raise ConfigError(f"feature statistics need at least 2 samples, got {arr.shape[0]}")
    mu = arr.mean(axis=0)
    cov = np.cov(arr, rowvar=False)
    return mu, np.atleast_2d(cov)


def _psd_sqrt(cov: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix via its eigen-decomposition."""
    w, v = np.linalg.eigh(cov)
    scale = max(float(np.abs(w).max()), np.finfo(np.float64).tiny)
    if w.min() < -1e-6 * scale:
        raise ConfigError(
            f"{name} is not positive semi-definite (eigenvalue {w.min():.3g}); pass a covariance matrix, "
            "e.g. from feature_statistics()"
        )
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_frechet_distance(mu_a: Any, cov_a: Any, mu_b: Any, cov_b: Any) -> float:
    """Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    d² = ‖mu_a − mu_b‖² + Tr(cov_a + cov_b − 2 (cov_a cov_b)^{1/2})   (Heusel et al. 2017, eq. 6;
    Dowson & Landau 1982 for the closed form of the 2-Wasserstein distance between Gaussians).

    The trace of the matrix square root is computed exactly, without ``scipy.linalg.sqrtm``:
    cov_a cov_b = S (S cov_b S) S⁻¹ with S = cov_a^{1/2} whenever S is invertible (and in general
    AB and BA share their non-zero eigenvalues, with A = S, B = S cov_b), so
    Tr((cov_a cov_b)^{1/2}) = Σ sqrt(λ_i) over the eigenvalues λ_i of the symmetric positive
    semi-definite matrix S cov_b S. Two symmetric eigen-decompositions give it in float64 with no
    complex round-off to discard and no ``eps * I`` to add when a covariance is singular (sqrtm
    struggles exactly there, e.g. with a constant feature). The value agrees with pytorch-fid's
    sqrtm-based one up to round-off, and is clipped at 0 (round-off can make FD(a, a) ≈ -1e-13).
    """
    mu_a = np.atleast_1d(np.asarray(mu_a, dtype=np.float64))
    mu_b = np.atleast_1d(np.asarray(mu_b, dtype=np.float64))
    cov_a = np.atleast_2d(np.asarray(cov_a, dtype=np.float64))
    cov_b = np.atleast_2d(np.asarray(cov_b, dtype=np.float64))
    d = mu_a.shape[0]
    if mu_a.ndim != 1 or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ConfigError(
            f"Gaussian statistics do not match: mu_a {mu_a.shape}, cov_a {cov_a.shape}, mu_b {mu_b.shape}, "
            f"cov_b {cov_b.shape}; expected (D,), (D, D), (D,), (D, D) with one D"
        )
    for name, x in (("mu_a", mu_a), ("cov_a", cov_a), ("mu_b", mu_b), ("cov_b", cov_b)):
        if not np.isfinite(x).all():
            raise ConfigError(f"{name} contains NaN or infinite values")
    # Symmetrise: np.cov is symmetric up to round-off, and eigh only reads one triangle.
    cov_a = (cov_a + cov_a.T) / 2
    cov_b = (cov_b + cov_b.T) / 2
    sqrt_a = _psd_sqrt(cov_a, "cov_a")
    _psd_sqrt(cov_b, "cov_b")  # validates cov_b with the same tolerance
    middle = sqrt_a @ cov_b @ sqrt_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_covmean)
    return max(value, 0.0)


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two ``(N, D)`` feature sets: FID on Inception features.

    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017. Symmetric, 0 for identical sets, in squared feature units. Note
    that the estimate is biased upwards for small N (Bińkowski et al. 2018), so only compare FIDs
    computed with the same number of samples.

    Each set needs at least D + 1 samples: with fewer, its covariance is rank-deficient and the
    value mostly measures the sample size, not the distributions.
    """
    a = as_features(feats_a, "feats_a")
    b = as_features(feats_b, "feats_b")
    _check_same_dim(a, b, "feats_a", "feats_b")
    d = a.shape[1]
    for name, x in (("feats_a", a), ("feats_b", b)):
        if x.shape[0] < d + 1:
            raise ConfigError(
                f"{name} has {x.shape[0]} samples for {d} features: the Fréchet distance needs at least "
                f"{d + 1} (n_features + 1), otherwise the covariance is rank-deficient; use more samples "
                "(FID is usually computed on 10k-50k) or use kid(), which works with few samples"
            )
    mu_a, cov_a = feature_statistics(a)
    mu_b, cov_b = feature_statistics(b)
    return gaussian_frechet_distance(mu_a, cov_a, mu_b, cov_b)


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """Gram matrix of k(x, y) = (gamma · x·y + coef0) ** degree, with gamma = 1 / D by default.

    With degree 3 and coef0 1 this is the kernel of KID (Bińkowski et al. 2018), chosen there
    because it depends only on the first three moments of the features and needs no bandwidth.
    """
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    base = x @ y.T
    base *= gamma
    base += coef0
    if float(degree).is_integer() and degree >= 1:
        return _integer_power(base, int(degree))
    return base**degree


def _integer_power(base: np.ndarray, degree: int) -> np.ndarray:
    """base ** degree by repeated squaring: numpy's generic ``pow`` is ~20x slower than multiplications."""
    result: np.ndarray | None = None
    while True:
        if degree & 1:
            result = base.copy() if result is None else result * base
        degree >>= 1
        if not degree:
            return result  # type: ignore[return-value]
        base = base * base


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, kernel: Kernel) -> float:
    """Unbiased estimate of the squared MMD between the distributions of samples ``x`` (m, D) and ``y`` (n, D).

    MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (n(n−1)) − 2 Σ_{i,j} k(x_i, y_j) / (mn)
    (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012, eq. 3 generalised to m ≠ n; the cross
    term keeps all pairs because x_i and y_j are independent). It is 0 in expectation when both
    sets come from one distribution, so it can be slightly negative. ``kernel(a, b)`` must return
    the (len(a), len(b)) Gram matrix.
    """
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ConfigError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx = kernel(x, x)
    k_yy = kernel(y, y)
    k_xy = kernel(x, y)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n))


def kid(
    feats_a: Any,
    feats_b: Any,
    n_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance: (mean, std) of the unbiased MMD² over random subsets.

    Bińkowski et al., "Demystifying MMD GANs", ICLR 2018, with the defaults of their code and of
    torch-fidelity: polynomial kernel (gamma x·y + coef0) ** degree with gamma = 1 / D, degree 3,
    coef0 1; 100 subsets of 1000 samples. Often reported × 1000. Unlike FID, its estimate is
    unbiased, so values from different sample sizes are comparable and it can be negative.

    Subsets (reproducible given ``seed``): ``m = min(subset_size, len(a), len(b))``; with
    ``rng = np.random.default_rng(seed)``, each subset draws ``rng.choice(len(a), m, replace=False)``
    then ``rng.choice(len(b), m, replace=False)``. The std is over subsets (ddof 0), so it measures
    the spread of the estimate for subsets of size m, not the error of the mean.
    """
    a = as_features(feats_a, "feats_a")
    b = as_features(feats_b, "feats_b")
    _check_same_dim(a, b, "feats_a", "feats_b")
    if min(len(a), len(b)) < 2:
        raise ConfigError(
            f"KID needs at least 2 samples in each set, got {len(a)} and {len(b)}; pass more samples"
        )
    if n_subsets < 1:
        raise ConfigError(f"n_subsets must be at least 1, got {n_subsets}")
    if subset_size < 2:
        raise ConfigError(f"subset_size must be at least 2 (the unbiased MMD needs pairs), got {subset_size}")
    if degree < 1:
        raise ConfigError(f"degree must be a positive integer, got {degree}")
    if gamma is None:
        gamma = 1.0 / a.shape[1]
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return polynomial_kernel(x, y, degree=degree, gamma=gamma, coef0=coef0)

    values = np.empty(n_subsets)
    for s in range(n_subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        values[s] = mmd2_unbiased(a[ia], b[ib], kernel)
    return float(values.mean()), float(values.std())
