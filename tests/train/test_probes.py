"""The doctor's diversity probe: a class-conditional generator is judged within each class."""

import json

import pytest
import torch

from ganforge.train import train
from ganforge.train.run import mean_pairwise_distance, within_class_diversity, within_class_spreads


def _classes(n_per_class: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 16, generator=g) * 5
    labels = torch.arange(3).repeat_interleave(n_per_class)
    return centres[labels] + torch.randn(len(labels), 16, generator=g), labels


def test_one_image_per_class_is_collapse_although_the_mixed_spread_looks_fine():
    real, labels = _classes()
    spreads = within_class_spreads(real, labels)
    prototypes = torch.stack([real[labels == c].mean(0) for c in range(3)])[labels]  # ignores the noise
    assert within_class_diversity(prototypes, labels, spreads) == pytest.approx(0.0, abs=1e-6)
    assert mean_pairwise_distance(prototypes) / mean_pairwise_distance(real) > 0.8  # what the old probe saw


def test_samples_like_the_real_ones_score_about_one():
    real, labels = _classes()
    assert within_class_diversity(real, labels, within_class_spreads(real, labels)) == pytest.approx(1.0)
    # another draw of the same classes: about as spread
    other, _ = _classes(seed=1)
    other = other - torch.stack([other[labels == c].mean(0) for c in range(3)])[labels]
    other = other + torch.stack([real[labels == c].mean(0) for c in range(3)])[labels]
    assert within_class_diversity(other, labels, within_class_spreads(real, labels)) == pytest.approx(1.0, abs=0.15)
    # half the spread inside every class -> 0.5
    centred = torch.stack([real[labels == c].mean(0) for c in range(3)])[labels]
    half = centred + 0.5 * (real - centred)
    assert within_class_diversity(half, labels, within_class_spreads(real, labels)) == pytest.approx(0.5, rel=1e-5)


def test_conditional_runs_log_both_probes(tmp_path, tiny_config):
    train(tiny_config(conditional=True, steps=4, log_every=2), tmp_path / "run")
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all("Probe/diversity" in s and "Probe/diversity_mixed" in s for s in stats)
    train(tiny_config(steps=4, log_every=2), tmp_path / "plain")
    stats = [json.loads(line) for line in (tmp_path / "plain" / "stats.jsonl").read_text().splitlines()]
    assert all("Probe/diversity" in s and "Probe/diversity_mixed" not in s for s in stats)
