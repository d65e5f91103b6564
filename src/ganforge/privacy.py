"""Differential privacy outside DP-SGD: the Gaussian mechanism, calibrated exactly, and a release of the mean
and covariance of bounded rows.

DP-SGD (Opacus) covers a network's training. A statistic computed once from the data, such as the first two
moments that `TabularGAN` matches under DP, is released with the Gaussian mechanism instead: its noise is
calibrated with the analytic formula of Balle & Wang (2018, "Improving the Gaussian mechanism for
differential privacy", Theorem 8), which is exact for every epsilon, where the classical
``sqrt(2 ln(1.25/delta)) / epsilon`` holds only for epsilon < 1 and adds 20-40% more noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.special import log_ndtr

from ganforge.errors import ConfigError


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """The smallest delta for which adding N(0, sigma^2) noise to a statistic of L2 ``sensitivity`` is
    (epsilon, delta)-DP: Phi(D/2s - e s/D) - e^e Phi(-D/2s - e s/D) (Balle & Wang 2018, Theorem 8)."""
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    first = math.exp(log_ndtr(a - b))
    second = math.exp(epsilon + log_ndtr(-a - b))
    return max(first - second, 0.0)


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """The least noise std that makes the Gaussian mechanism (epsilon, delta)-DP (bisection on `gaussian_delta`,
    which falls as sigma grows), to a relative precision of 1e-10."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ConfigError(f"epsilon must be a positive number, got {epsilon!r}")
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
    if not sensitivity > 0:
        raise ConfigError(f"sensitivity must be positive, got {sensitivity!r}")
    low, high = 1e-6 * sensitivity, sensitivity
    while gaussian_delta(high, epsilon, sensitivity) > delta:
        high *= 2
    while high - low > 1e-10 * high:
        mid = (low + high) / 2
        if gaussian_delta(mid, epsilon, sensitivity) > delta:
            low = mid
        else:
            high = mid
    return high


@dataclass
class ReleasedMoments:
    """A DP release of rows' mean (d,) and covariance (d, d), with what it cost and how it was made."""

    mean: torch.Tensor
    covariance: torch.Tensor
    epsilon: float
    delta: float
    sigma: float
    sensitivity: float
    count: float

    def ledger_entry(self) -> dict:
        return {"column": "*", "what": "mean and covariance of the encoded rows", "epsilon": self.epsilon,
                "delta": self.delta,
                "mechanism": f"Gaussian (analytic), L2 sensitivity {self.sensitivity:.4g}, noise std {self.sigma:.4g} "
                             f"on the count, sums and sums of products"}


def release_moments(rows: torch.Tensor, epsilon: float, delta: float, bound: float,
                    generator: torch.Generator | None = None) -> ReleasedMoments:
    """Release the mean and covariance of ``rows`` (N, d) with (epsilon, delta)-DP, adding or removing one row
    being the change protected.

    Each row is first scaled down, if needed, to a squared norm of at most ``bound`` (an encoded table row
    with k blocks, each a one-hot or a scalar in [-1, 1], has at most k: nothing is scaled then). One row
    then moves the vector (count, sum of rows, upper triangle of the sum of x x^T) by at most
    sqrt(1 + bound + bound^2) in L2, and Gaussian noise calibrated to that is added to all of it at once.
    The mean is the noisy sum over the noisy count, the covariance the noisy second moment minus the
    outer product of the mean; both are post-processing.
    """
    if not bound > 0:
        raise ConfigError(f"bound on the rows' squared norm must be positive, got {bound!r}")
    x = rows.detach().double()
    norms = x.pow(2).sum(1)
    x = x * torch.clamp(math.sqrt(bound) / norms.sqrt().clamp_min(1e-12), max=1.0)[:, None]
    n, d = x.shape
    sensitivity = math.sqrt(1 + bound + bound**2)
    sigma = gaussian_sigma(epsilon, delta, sensitivity)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * sigma

    count = max(float(n) + float(noise(1)), 1.0)
    total = x.sum(0) + noise(d)
    upper = torch.triu(noise(d, d))
    second = x.T @ x + upper + torch.triu(upper, 1).T  # the same noise on (i, j) and (j, i): one release
    mean = total / count
    covariance = second / count - torch.outer(mean, mean)
    return ReleasedMoments(mean.float(), covariance.float(), float(epsilon), float(delta), float(sigma),
                           float(sensitivity), count)


def row_norm_bound(spans: list) -> float:
    """The largest squared norm an encoded row can have: 1 per block (a one-hot, or a scalar in [-1, 1])."""
    return float(max(len(spans), 1))


__all__ = ["ReleasedMoments", "gaussian_delta", "gaussian_sigma", "release_moments", "row_norm_bound"]
