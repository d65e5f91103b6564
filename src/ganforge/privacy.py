"""Differential privacy outside DP-SGD: the Gaussian mechanism, calibrated exactly, and a release of the mean
and covariance of bounded rows.

DP-SGD (Opacus) covers a network's training. A statistic computed once from the data, such as the first two
moments that `TabularGAN` matches under DP, is released with the Gaussian mechanism instead: its noise is
calibrated with the analytic formula of Balle & Wang (2018, "Improving the Gaussian mechanism for
differential privacy", Theorem 8), which is exact for every epsilon, where the classical
``sqrt(2 ln(1.25/delta)) / epsilon`` holds only for epsilon < 1 and adds 20-40% more noise.
"""

from __future__ import annotations

import dataclasses
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
    threshold: float | None = None  # set by `denoise_moments`: cross-block entries soft-thresholded at this x noise

    def ledger_entry(self) -> dict:
        post = "" if self.threshold is None else (
            f"; post-processed: one-hot blocks made consistent, cross-column covariances soft-thresholded at "
            f"{self.threshold:g} noise std")
        return {"column": "*", "what": "mean and covariance of the encoded rows", "epsilon": self.epsilon,
                "delta": self.delta,
                "mechanism": f"Gaussian (analytic), L2 sensitivity {self.sensitivity:.4g}, noise std {self.sigma:.4g} "
                             f"on the count, sums and sums of products" + post}


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


def denoise_moments(moments: ReleasedMoments, blocks: list[tuple[int, int]], one_hot: list[bool],
                    threshold: float = 0.0) -> ReleasedMoments:
    """Post-processing of a `release_moments` of encoded table rows (free under DP): use what is known about
    the encoding and the noise, so the generator is not taught relations that are only noise.

    - One-hot blocks (``blocks[k]`` with ``one_hot[k]``): their mean is projected onto the probability simplex
      (clipped at 0, summed to 1), and their covariance within the block set to the multinomial one,
      diag(p) - p p^T: a row holds exactly one 1 there, so nothing else is possible.
    - Scalars in [-1, 1]: the mean is clipped to [-1, 1] and the variance to [0, 1 - mean^2].
    - Between blocks, each covariance entry is soft-thresholded at ``threshold`` times its noise std
      (sigma / count): an entry of two unrelated columns is pure noise, and with many columns most pairs
      are unrelated (DP noise of ~0.04 on colon's covariances made spurious correlations of ~0.15). A real
      relation loses that much of its size and is kept. 0 (the default, as `DPConfig.moment_threshold`)
      skips the thresholding.
    """
    mean = moments.mean.double().clone()
    cov = moments.covariance.double().clone()
    d = mean.shape[0]
    block_of = torch.full((d,), -1, dtype=torch.long)
    for k, (start, end) in enumerate(blocks):
        block_of[start:end] = k
        if one_hot[k]:
            p = mean[start:end].clamp_min(0)
            p = p / p.sum() if p.sum() > 0 else torch.full_like(p, 1 / (end - start))
            mean[start:end] = p
            cov[start:end, start:end] = torch.diag(p) - torch.outer(p, p)
        elif end - start == 1:
            mean[start] = mean[start].clamp(-1, 1)
            cov[start, start] = cov[start, start].clamp(0, max(1 - float(mean[start]) ** 2, 0.0))
    if threshold > 0:
        tau = threshold * moments.sigma / moments.count
        across = block_of[:, None] != block_of[None, :]
        shrunk = torch.sign(cov) * (cov.abs() - tau).clamp_min(0)
        cov = torch.where(across, shrunk, cov)
    return dataclasses.replace(moments, mean=mean.float(), covariance=cov.float(), threshold=float(threshold))


def row_norm_bound(spans: list) -> float:
    """The largest squared norm an encoded row can have: 1 per block (a one-hot, or a scalar in [-1, 1])."""
    return float(max(len(spans), 1))


__all__ = ["ReleasedMoments", "denoise_moments", "gaussian_delta", "gaussian_sigma", "release_moments",
           "row_norm_bound"]
