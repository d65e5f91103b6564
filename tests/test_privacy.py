"""The Gaussian mechanism's analytic calibration and the DP release of moments (`ganforge.privacy`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ganforge.errors import ConfigError
from ganforge.privacy import gaussian_delta, gaussian_sigma, release_moments, row_norm_bound


def delta_by_integration(sigma: float, epsilon: float, sensitivity: float) -> float:
    """delta(epsilon) of N(0, s^2) against N(D, s^2) from its definition: the integral of max(0, p - e^eps q)."""
    p, q = stats.norm(0, sigma), stats.norm(sensitivity, sigma)
    # p > e^eps q left of this point: the privacy loss ln p/q is linear in x
    cut = sensitivity / 2 - epsilon * sigma**2 / sensitivity
    value, _ = integrate.quad(lambda x: p.pdf(x) - math.exp(epsilon) * q.pdf(x), -np.inf, cut)
    return value


@pytest.mark.parametrize(("epsilon", "delta", "sensitivity"), [(1.0, 1e-5, 1.0), (0.3, 1e-6, 2.0), (5.0, 1e-5, 7.5)])
def test_gaussian_sigma_is_the_least_noise_for_the_guarantee(epsilon, delta, sensitivity):
    sigma = gaussian_sigma(epsilon, delta, sensitivity)
    assert gaussian_delta(sigma, epsilon, sensitivity) == pytest.approx(delta, rel=1e-6)
    assert delta_by_integration(sigma, epsilon, sensitivity) == pytest.approx(delta, rel=1e-4)
    assert gaussian_delta(0.98 * sigma, epsilon, sensitivity) > delta  # any less noise breaks it
    if epsilon < 1:  # the classical calibration is valid there, and looser
        assert sigma < sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def test_gaussian_sigma_agrees_with_opacus_rdp_bound():
    from opacus.accountants import RDPAccountant

    sigma = gaussian_sigma(1.0, 1e-5)
    assert sigma == pytest.approx(3.7306, abs=1e-3)  # Balle & Wang (2018): 3.73 for (1, 1e-5)
    accountant = RDPAccountant()
    accountant.history = [(sigma, 1.0, 1)]  # one full-batch Gaussian release
    rdp_epsilon = accountant.get_epsilon(1e-5)
    assert 1.0 <= rdp_epsilon <= 1.4  # RDP's conversion is an upper bound on the exact epsilon, not far above
    for bad in [dict(epsilon=0, delta=1e-5), dict(epsilon=1, delta=0), dict(epsilon=1, delta=1e-5, sensitivity=0)]:
        with pytest.raises(ConfigError):
            gaussian_sigma(**bad)


def test_release_moments_is_exact_without_noise_and_noised_at_the_calibrated_scale():
    rng = np.random.default_rng(0)
    rows = torch.as_tensor(rng.uniform(-1, 1, size=(4000, 3)), dtype=torch.float32)
    exact = release_moments(rows, 1e9, 0.5, bound=3.0)
    assert torch.allclose(exact.mean, rows.mean(0), atol=1e-4)
    assert torch.allclose(exact.covariance, torch.cov(rows.T, correction=0), atol=1e-4)
    releases = [release_moments(rows, 1.0, 1e-5, bound=3.0, generator=torch.Generator().manual_seed(s))
                for s in range(200)]
    sigma = releases[0].sigma
    assert releases[0].sensitivity == pytest.approx(math.sqrt(1 + 3 + 9))
    assert sigma == pytest.approx(gaussian_sigma(1.0, 1e-5, math.sqrt(13)))
    spread = torch.stack([r.mean for r in releases]).std(0)
    assert spread.numpy() == pytest.approx(np.full(3, sigma / 4000), rel=0.2)  # sum noise over the count
    cov = torch.stack([r.covariance for r in releases])
    assert torch.allclose(cov, cov.transpose(1, 2))  # one noise draw per pair: still symmetric
    assert releases[0].ledger_entry()["epsilon"] == 1.0


def test_release_moments_scales_down_rows_beyond_the_bound():
    rows = torch.tensor([[10.0, 0.0], [0.0, 1.0]])
    moments = release_moments(rows, 1e9, 0.5, bound=4.0)  # the first row's squared norm 100 becomes 4
    assert moments.mean.tolist() == pytest.approx([1.0, 0.5], abs=1e-3)
    assert row_norm_bound([object()] * 7) == 7.0
    with pytest.raises(ConfigError, match="bound"):
        release_moments(rows, 1.0, 1e-5, bound=0)


def test_denoise_moments_keeps_structure_and_real_relations_and_drops_noise():
    """Encoded rows: a 3-category one-hot, a scalar tied to it, and two scalars unrelated to anything. After a
    noisy release, denoising gives the one-hot block its exact multinomial form, keeps the real relation and
    zeroes most entries between unrelated columns."""
    from ganforge.privacy import denoise_moments

    rng = np.random.default_rng(0)
    n = 2000  # DP noise on a covariance, sigma/n ~ 0.009, dominates the sampling error here
    cat = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    one_hot = np.eye(3)[cat]
    tied = np.clip(0.8 * (cat == 0) - 0.4 + rng.normal(0, 0.1, n), -1, 1)
    i = np.arange(n)  # two +-0.5 patterns whose sample covariance is exactly 0: only DP noise between them
    free = np.column_stack([0.5 * (-1.0) ** i, 0.5 * (-1.0) ** (i // 2)])
    rows = torch.as_tensor(np.column_stack([one_hot, tied, free]), dtype=torch.float32)
    blocks, hot = [(0, 3), (3, 4), (4, 5), (5, 6)], [True, False, False, False]
    truth = torch.cov(rows.T, correction=0)
    raw_err, den_err, zeroed = [], [], 0
    for s in range(20):
        released = release_moments(rows, 1.0, 1e-5, bound=4.0, generator=torch.Generator().manual_seed(s))
        clean = denoise_moments(released, blocks, hot, threshold=2.0)
        p = clean.mean[:3]
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-6) and bool((p >= 0).all())
        assert torch.allclose(clean.covariance[:3, :3], torch.diag(p) - torch.outer(p, p), atol=1e-6)
        assert clean.covariance[0, 3] > 0.1  # the real relation (cov ~0.2) survives
        zeroed += int(clean.covariance[4, 5] == 0)
        raw_err.append(float((released.covariance - truth).abs().mean()))
        den_err.append(float((clean.covariance - truth).abs().mean()))
    assert zeroed >= 17  # a pure-noise entry is thresholded to exactly 0 with probability 95%
    assert np.mean(den_err) < 0.9 * np.mean(raw_err)  # closer to the truth overall, real entries shrunk included
    assert "soft-thresholded at 2 noise std" in clean.ledger_entry()["mechanism"]
    assert denoise_moments(released, blocks, hot, threshold=0.0).covariance[4, 5] == released.covariance[4, 5]
