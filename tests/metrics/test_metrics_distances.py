"""Fréchet distance and KID against closed forms and independent straightforward implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.metrics.pairwise import polynomial_kernel as sk_polynomial_kernel

from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics.distances import (
    feature_statistics,
    frechet_distance,
    gaussian_frechet_distance,
    kid,
    mmd2_unbiased,
    polynomial_kernel,
)

MU1 = np.array([0.0, 1.0, -1.0, 0.5])
MU2 = np.zeros(4)
SD1 = np.array([1.0, 2.0, 0.5, 1.0])
SD2 = np.array([2.0, 1.0, 1.0, 3.0])
# ‖μ1 − μ2‖² + Σ (σ1 − σ2)² = 2.25 + 6.25 (with variances instead of std it would be 84.8).
EXACT_DIAGONAL = 8.5


def sqrtm_frechet(mu_a, cov_a, mu_b, cov_b) -> float:
    """The textbook formula with scipy's general matrix square root (as pytorch-fid does)."""
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean))


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    m = rng.normal(size=(d, d))
    return m @ m.T + 0.1 * np.eye(d)


# --- Fréchet distance -------------------------------------------------------------------------


def test_gaussian_frechet_distance_matches_closed_form_for_diagonal_covariances():
    value = gaussian_frechet_distance(MU1, np.diag(SD1**2), MU2, np.diag(SD2**2))
    assert value == pytest.approx(EXACT_DIAGONAL, abs=1e-8)
    assert sum((MU1 - MU2) ** 2) + sum((SD1 - SD2) ** 2) == EXACT_DIAGONAL


def test_gaussian_frechet_distance_matches_sqrtm_for_full_covariances():
    rng = np.random.default_rng(0)
    for d in (1, 3, 10, 32):
        mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
        cov_a, cov_b = random_spd(rng, d), random_spd(rng, d)
        expected = sqrtm_frechet(mu_a, cov_a, mu_b, cov_b)
        assert gaussian_frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_gaussian_frechet_distance_commuting_case_is_exact():
    # Commuting covariances (shared eigenvectors): Tr((AB)^½) = Σ sqrt(a_i b_i), so FD = Σ (sqrt a_i − sqrt b_i)².
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = rng.uniform(0.1, 4, size=5), rng.uniform(0.1, 4, size=5)
    value = gaussian_frechet_distance(np.zeros(5), q @ np.diag(a) @ q.T, np.zeros(5), q @ np.diag(b) @ q.T)
    assert value == pytest.approx(float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum()), abs=1e-10)


def test_frechet_distance_on_large_samples_approaches_closed_form():
    rng = np.random.default_rng(0)
    a = MU1 + SD1 * rng.normal(size=(20_000, 4))
    b = MU2 + SD2 * rng.normal(size=(20_000, 4))
    # Sampling std of the estimate is about 0.07 here (measured over 30 seeds).
    assert frechet_distance(a, b) == pytest.approx(EXACT_DIAGONAL, abs=0.3)


def test_frechet_distance_uses_unbiased_sample_statistics():
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(6, 6))
    a = rng.normal(size=(50, 6)) @ mix
    b = rng.normal(size=(80, 6)) @ mix.T + 0.5
    expected = sqrtm_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    mu, cov = feature_statistics(a)
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, (a - a.mean(0)).T @ (a - a.mean(0)) / (len(a) - 1), rtol=1e-10)


def test_frechet_distance_is_zero_on_identical_sets_and_symmetric():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(300, 16))
    b = rng.normal(size=(200, 16)) * 1.5 + 0.2
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert ab > 1.0
    assert ab == pytest.approx(ba, rel=1e-10)


def test_frechet_distance_handles_singular_covariance():
    # A constant feature makes both covariances singular: it adds (c_a − c_b)² and nothing to the trace term.
    rng = np.random.default_rng(4)
    a = rng.normal(size=(500, 3))
    b = rng.normal(size=(400, 3)) * 2.0
    a_ext = np.column_stack([a, np.full(len(a), 1.0)])
    b_ext = np.column_stack([b, np.full(len(b), 3.0)])
    value = frechet_distance(a_ext, b_ext)
    assert math.isfinite(value)
    assert value == pytest.approx(frechet_distance(a, b) + 4.0, rel=1e-9)


def test_frechet_distance_accepts_torch_tensors():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(100, 4)), rng.normal(size=(120, 4)) + 1
    expected = frechet_distance(a, b)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(expected, rel=1e-5)


def test_frechet_distance_errors():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(100, 4))
    with pytest.raises(ConfigError, match="4 features per sample but feats_b have 5"):
        frechet_distance(a, rng.normal(size=(100, 5)))
    with pytest.raises(ConfigError, match="2-D"):
        frechet_distance(a[:, 0], a[:, 1])
    with pytest.raises(ConfigError, match="2-D"):
        frechet_distance(a.reshape(10, 10, 4), a)
    with pytest.raises(ConfigError, match="rank-deficient") as info:
        frechet_distance(a, a[:4])  # 4 samples < 4 features + 1
    assert "kid" in str(info.value).lower() and "more samples" in str(info.value)
    assert math.isfinite(frechet_distance(a, a[:5]))  # exactly d + 1 is accepted
    bad = a.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        frechet_distance(a, bad)
    with pytest.raises(ConfigError, match="do not match"):
        gaussian_frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ConfigError, match="positive semi-definite"):
        gaussian_frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    assert issubclass(ConfigError, GanforgeError)


# --- KID -------------------------------------------------------------------------------------


def loop_mmd2_unbiased(x: np.ndarray, y: np.ndarray, k) -> float:
    """MMD²_u by explicit double loops over pairs."""
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_double_loop():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(17, 3)) + 0.3
    gamma, coef0, degree = 0.7, 0.5, 2

    def kernel(u, v):
        return sk_polynomial_kernel(u, v, degree=degree, gamma=gamma, coef0=coef0)

    def pair_kernel(u, v):
        return (gamma * float(np.dot(u, v)) + coef0) ** degree

    assert mmd2_unbiased(x, y, kernel) == pytest.approx(loop_mmd2_unbiased(x, y, pair_kernel), rel=1e-10)
    np.testing.assert_allclose(polynomial_kernel(x, y, degree, gamma, coef0), kernel(x, y), rtol=1e-12)
    # Default gamma is 1 / D, as in the KID paper.
    np.testing.assert_allclose(polynomial_kernel(x, y), sk_polynomial_kernel(x, y, degree=3, gamma=1 / 3, coef0=1))


def test_kid_matches_straightforward_implementation_with_same_subsets():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(45, 3)) * 1.3 + 0.2
    n_subsets, subset_size, seed = 5, 40, 11

    def pair_kernel(u, v):
        return (float(np.dot(u, v)) / 3 + 1) ** 3

    draw = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        ia = draw.choice(len(a), subset_size, replace=False)
        ib = draw.choice(len(b), subset_size, replace=False)
        values.append(loop_mmd2_unbiased(a[ia], b[ib], pair_kernel))
    mean, std = kid(a, b, n_subsets=n_subsets, subset_size=subset_size, seed=seed)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-10)
    # subset_size is capped at the smaller set: 45 here.
    draw = np.random.default_rng(0)
    ia, ib = draw.choice(60, 45, replace=False), draw.choice(45, 45, replace=False)
    assert kid(a, b, n_subsets=1, subset_size=1000)[0] == pytest.approx(loop_mmd2_unbiased(a[ia], b[ib], pair_kernel))


def test_kid_same_distribution_is_near_zero_and_grows_with_shift():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    mean0, std0 = kid(a, b, n_subsets=30, subset_size=200)
    # Unbiased: the mean is within the subset spread of 0 (the biased V-statistic would be several std above).
    assert abs(mean0) < std0
    means = [kid(a, b + shift, n_subsets=30, subset_size=200)[0] for shift in (0.2, 0.3, 0.5)]
    assert means[0] > 3 * std0
    assert means[0] < means[1] < means[2]
    assert kid(a, b, n_subsets=5, subset_size=100, seed=3) == kid(a, b, n_subsets=5, subset_size=100, seed=3)
    assert kid(a, b, n_subsets=5, subset_size=100, seed=3) != kid(a, b, n_subsets=5, subset_size=100, seed=4)


def test_kid_errors():
    rng = np.random.default_rng(10)
    a = rng.normal(size=(10, 4))
    with pytest.raises(ConfigError, match="4 features per sample but feats_b have 3"):
        kid(a, rng.normal(size=(10, 3)))
    with pytest.raises(ConfigError, match="at least 2 samples"):
        kid(a, a[:1])
    with pytest.raises(ConfigError, match="subset_size"):
        kid(a, a, subset_size=1)
    with pytest.raises(ConfigError, match="2-D"):
        kid(a[0], a[1])
