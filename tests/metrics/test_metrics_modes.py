"""Mode statistics on the toy mixtures: closed forms and hand-counted examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.data.toy import GRID25, RING8
from ganforge.errors import ConfigError
from ganforge.metrics.modes import ModeStats, mixture_mode_stats, mode_stats

P_WITHIN_3_STD = 1 - math.exp(-4.5)  # chi with 2 dof: P(r ≤ 3σ) ≈ 0.98889 (a 3σ box would give 0.99461)


def test_toy_mixtures_have_distinct_modes():
    for mixture, k in ((RING8, 8), (GRID25, 25)):
        modes = mixture.modes
        assert modes.shape == (k, 2)
        gaps = np.linalg.norm(modes[:, None] - modes[None], axis=2)[~np.eye(k, dtype=bool)]
        assert gaps.min() > 20 * mixture.std  # no duplicated mode (e.g. first == last on the ring)


@pytest.mark.parametrize("mixture", [RING8, GRID25], ids=lambda m: m.name)
def test_true_mixture_samples(mixture):
    n = 50_000
    points, _ = mixture.sample(n, seed=0)
    stats = mixture_mode_stats(points, mixture.name)
    k = len(mixture.modes)
    assert stats.n_modes == k
    assert stats.modes_captured == k
    # Binomial sampling std is sqrt(p(1 - p) / n) ≈ 4.7e-4; 4 std, far from the box value.
    sampling_std = math.sqrt(P_WITHIN_3_STD * (1 - P_WITHIN_3_STD) / n)
    assert stats.high_quality == pytest.approx(P_WITHIN_3_STD, abs=4 * sampling_std)
    assert 0 <= stats.kl_to_uniform < 1e-3  # E[KL] of an empirical histogram ≈ (K - 1) / 2N_hq
    assert sum(stats.counts) == round(stats.high_quality * n)
    assert stats == mixture_mode_stats(torch.from_numpy(points), mixture)


def test_three_ring_modes_equal_thirds():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 3, 5], 400)
    # Noise uniform in a disk of radius 2 std: every sample is high quality, so the thirds are exact.
    radius = 2 * RING8.std * np.sqrt(rng.uniform(size=len(labels)))
    angle = rng.uniform(0, 2 * np.pi, size=len(labels))
    points = RING8.modes[labels] + np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    stats = mixture_mode_stats(points, "RING8")
    assert stats.counts == [400, 0, 0, 400, 0, 400, 0, 0]
    assert stats.modes_captured == 3
    assert stats.high_quality == 1.0
    assert stats.kl_to_uniform == pytest.approx(math.log(8 / 3), abs=1e-12)


def test_three_ring_modes_from_the_sampler():
    points, labels = RING8.sample(30_000, seed=1)
    stats = mixture_mode_stats(points[labels < 3], RING8)
    assert stats.modes_captured == 3
    assert stats.counts[3:] == [0] * 5
    assert stats.kl_to_uniform == pytest.approx(math.log(8 / 3), abs=1e-3)


def test_samples_far_from_every_mode():
    points = np.random.default_rng(2).normal(10.0, 0.5, size=(500, 2))
    stats = mixture_mode_stats(points, "grid25")
    assert stats.high_quality == 0.0
    assert stats.kl_to_uniform == math.inf
    assert stats.modes_captured == 0
    assert stats.counts == [0] * 25
    assert stats.to_dict()["kl_to_uniform"] == math.inf
    assert stats.modes_visited == 1  # every sample is nearest to the corner mode (4, 4)


def test_blurry_samples_visit_every_mode_but_capture_none():
    points = np.random.default_rng(3).uniform(-5, 5, size=(5000, 2))
    stats = mixture_mode_stats(points, "grid25")
    assert stats.modes_visited == 25
    assert stats.modes_captured < 25 and stats.high_quality < 0.05


def test_hand_made_example():
    modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    samples = np.array(
        [
            [0.5, 0.0],  # mode 0, distance 0.5: high quality
            [0.0, 3.0],  # mode 0, distance exactly 3 std: high quality (at most n_std * std)
            [2.5, 2.5],  # mode 0, distance 3.54: inside the 3-std box but outside the ball
            [3.1, 0.0],  # mode 0, distance 3.1: not high quality
            [9.0, 0.0],  # mode 1, distance 1: high quality
            [20.0, 0.0],  # mode 1, distance 10: not high quality
        ]
    )
    stats = mode_stats(samples, modes, std=1.0)
    assert stats.counts == [2, 1]
    assert stats.high_quality == pytest.approx(3 / 6)
    assert stats.modes_captured == 2
    p = np.array([2 / 3, 1 / 3])
    assert stats.kl_to_uniform == pytest.approx(float((p * np.log(p * 2)).sum()), abs=1e-12)
    assert stats.to_dict() == {
        "modes_captured": 2,
        "high_quality": 0.5,
        "kl_to_uniform": stats.kl_to_uniform,
        "counts": [2, 1],
        "n_modes": 2,
        "modes_visited": 2,  # nearest mode of 4 and 2 of the 6 samples, both >= 6 / (4 * 2)
    }
    assert isinstance(stats, ModeStats)
    # A wider ball takes in the box corner and the 3.1 sample.
    assert mode_stats(samples, modes, std=1.0, n_std=3.6).counts == [4, 1]


def test_capture_threshold_is_min_share_of_high_quality_samples():
    modes = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])

    def stats_with(n_third_mode: int, **kwargs) -> ModeStats:
        counts = [500, 500 - n_third_mode, n_third_mode]  # 1000 high-quality samples, all at the modes
        return mode_stats(np.repeat(modes, counts, axis=0), modes, std=0.1, **kwargs)

    assert stats_with(9).modes_captured == 2  # 9 < 1% of 1000
    assert stats_with(10).modes_captured == 3  # 10 = 1% of 1000
    assert stats_with(9, min_share=0.009).modes_captured == 3
    assert stats_with(0, min_share=0.0).modes_captured == 2  # at least one sample, whatever min_share
    # Samples that are not high quality do not count towards the threshold.
    far = np.full((5000, 2), 100.0)
    points = np.concatenate([np.repeat(modes, [500, 490, 10], axis=0), far])
    assert mode_stats(points, modes, std=0.1).modes_captured == 3


def test_mode_stats_errors():
    modes = RING8.modes
    with pytest.raises(ConfigError, match="samples have 3 coordinates but modes have 2"):
        mode_stats(np.zeros((4, 3)), modes, RING8.std)
    with pytest.raises(ConfigError, match="empty"):
        mode_stats(np.zeros((0, 2)), modes, RING8.std)
    with pytest.raises(ConfigError, match="std"):
        mode_stats(np.zeros((4, 2)), modes, 0.0)
    with pytest.raises(ConfigError, match="min_share"):
        mode_stats(np.zeros((4, 2)), modes, 0.1, min_share=5)
    with pytest.raises(ConfigError, match="ring8, grid25|grid25, ring8"):
        mixture_mode_stats(np.zeros((4, 2)), "ring9")
