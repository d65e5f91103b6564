"""Translation scores against closed forms and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.metrics.evaluate import IdentityExtractor
from ganforge.metrics.translation import evaluate_translation, l1_error, psnr, ssim


def _images(n=6, c=1, size=12, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_l1_and_psnr_closed_forms():
    x = torch.full((2, 1, 4, 4), -1.0)  # 0 in pixel units
    y = x + 0.2  # 0.1 in pixel units
    assert l1_error(x, y) == pytest.approx([0.1, 0.1])
    assert psnr(x, y) == pytest.approx([20.0, 20.0])  # 10 log10(1 / 0.01)
    assert math.isinf(psnr(x, x)[0])


def test_ssim_identity_and_against_a_direct_call():
    from skimage.metrics import structural_similarity

    x, y = _images(2, c=3), _images(2, c=3, seed=1)
    assert ssim(x, x) == pytest.approx([1.0, 1.0])
    a, b = ((x[1] + 1) / 2).numpy().astype(np.float64), ((y[1] + 1) / 2).numpy().astype(np.float64)
    assert ssim(x, y)[1] == pytest.approx(structural_similarity(a, b, data_range=1.0, channel_axis=0, win_size=7))
    assert ssim(x, -x).mean() < 0.5
    with pytest.raises(ConfigError, match="3x3"):
        ssim(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


class _LabelJudge:
    """A stand-in judge: the class is the image's mean brightness bucket."""

    name, weights_hash, test_accuracy = "bucket", "", 1.0

    def predict(self, x):
        return ((x.mean(dim=(1, 2, 3)) + 1) / 2 * 3).clamp(0, 2.999).long().numpy()


def test_perfect_translator_scores_perfectly():
    a = _images(40, size=4)  # 16 features: enough samples for a full-rank covariance
    b = -a  # B is A inverted, and paired
    identity = IdentityExtractor()
    scores = {s.metric: s for s in evaluate_translation(
        lambda x: -x, lambda x: -x, a, b, paired=True, extractor_a=identity, extractor_b=identity)}
    assert scores["cycle_l1_a"].value == pytest.approx(0.0, abs=1e-7)
    assert scores["l1_a2b"].value == pytest.approx(0.0, abs=1e-7)
    assert scores["ssim_b2a"].value == pytest.approx(1.0)  # (3x3 windows on 4x4 images)
    assert scores["psnr_a2b"].value == 100.0  # capped: identical images
    assert scores["fd_a2b_identity"].value == pytest.approx(0.0, abs=1e-6)
    assert scores["l1_a2b"].protocol.reference.endswith("(paired ground truth)")


def test_identity_baseline_is_worse_and_labels_are_judged():
    a = _images(30, seed=2)
    b = -a
    labels_a = torch.as_tensor(_LabelJudge().predict(a))
    labels_b = torch.as_tensor(_LabelJudge().predict(b))
    scores = {s.metric: s.value for s in evaluate_translation(
        lambda x: x, lambda x: x, a, b, paired=True, judge_a=_LabelJudge(), judge_b=_LabelJudge(),
        labels_a=labels_a, labels_b=labels_b)}
    assert scores["l1_a2b"] == pytest.approx(float(((a - b).abs() / 2).mean()), rel=1e-6)
    assert scores["cycle_l1_a"] == 0.0  # the identity cycles perfectly: cycle error alone proves nothing
    assert scores["label_preservation_aba"] == 1.0
    expected = float((torch.as_tensor(_LabelJudge().predict(a)) == labels_b).float().mean())
    assert scores["label_preservation_a2b"] == pytest.approx(expected)


def test_paired_sets_must_match():
    with pytest.raises(ConfigError, match="paired"):
        evaluate_translation(lambda x: x, lambda x: x, _images(4), _images(5), paired=True)
