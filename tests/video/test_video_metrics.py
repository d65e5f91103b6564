"""Video metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import gradient_difference_loss
from ganforge.metrics.video import (
    baseline_predictions,
    crop_digits,
    digit_scores,
    image_gradients,
    prediction_errors,
)


def _clips(n=2, t=3, h=8, w=8):
    return torch.zeros(n, t, 1, h, w, dtype=torch.uint8)


def test_mse_and_mae_are_summed_over_the_frame():
    target = _clips()
    target[:, :, :, 2:4, 2:4] = 255  # 4 white pixels per frame
    pred = _clips()
    errors = prediction_errors(pred, target, ssim=False)
    assert errors["mse"] == pytest.approx(4.0)  # 4 pixels, error 1 each, summed
    assert errors["mae"] == pytest.approx(4.0)
    assert errors["psnr"] == pytest.approx(10 * math.log10(64 / 4))  # per-pixel MSE 4/64
    assert errors["per_step"]["mse"] == pytest.approx([4.0, 4.0, 4.0])
    # half-intensity error: squared error 0.25 per pixel, absolute 0.5
    half = torch.full_like(target, 0)
    half[:, :, :, 2:4, 2:4] = 127.5 / 255 * 255
    errors = prediction_errors(half.float() / 255, target, ssim=False)
    assert errors["mse"] == pytest.approx(4 * (128 / 255) ** 2, rel=1e-4)  # uint8 127 -> 0.498
    assert errors["mae"] == pytest.approx(4 * 128 / 255, rel=1e-4)


def test_perfect_prediction_and_sharpness_and_gradient_ratio():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (2, 2, 1, 16, 16), generator=g, dtype=torch.uint8)
    errors = prediction_errors(target, target)
    assert errors["mse"] == 0 and errors["mae"] == 0
    assert errors["ssim"] == pytest.approx(1.0)
    assert errors["gradient_ratio"] == pytest.approx(1.0)
    assert errors["sharpness"] == pytest.approx(100.0)  # 10 log10(1 / 1e-10): the clamp of a zero difference
    # black frames have no edges at all: ratio 0, and the sharpness difference is 10 log10(1 / mean g(Y))
    zeros = baseline_predictions(target[:, :1], 2, "zeros")
    errors = prediction_errors(zeros, target, ssim=False)
    assert errors["gradient_ratio"] == 0
    mean_g = image_gradients(target.float() / 255).mean(dim=(2, 3, 4)).double()
    assert errors["sharpness"] == pytest.approx(float((10 * torch.log10(1 / mean_g)).mean()), rel=1e-5)


def test_image_gradients_by_hand():
    x = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # overlap (2, 2): dy = |x[1:, :-1] - x[:-1, :-1]|, dx = |x[:-1, 1:] - x[:-1, :-1]|
    expected = torch.tensor([[0.0 + 1.0, 1.0 + 0.0], [0.0 + 0.0, 0.0 + 1.0]])
    assert torch.equal(image_gradients(x), expected)


def test_baselines():
    ctx = torch.arange(2 * 3 * 1 * 2 * 2, dtype=torch.uint8).view(2, 3, 1, 2, 2)
    last = baseline_predictions(ctx, 4, "last")
    assert last.shape == (2, 4, 1, 2, 2) and torch.equal(last[:, 3], ctx[:, 2])
    assert baseline_predictions(ctx, 4, "zeros").sum() == 0
    with pytest.raises(ConfigError, match="zeros or last"):
        baseline_predictions(ctx, 4, "mean")


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="differ in shape"):
        prediction_errors(_clips(t=2), _clips(t=3))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        prediction_errors(torch.full((1, 1, 1, 4, 4), -0.5), torch.zeros(1, 1, 1, 4, 4))
    with pytest.raises(ConfigError, match="N, T, C, H, W"):
        prediction_errors(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))


def test_gradient_difference_loss_by_hand():
    target = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # a vertical edge: |dx| = 1 on both rows, |dy| = 0
    pred = torch.zeros(2, 2)  # no edge
    # dy term: 2 values, all | 0 - 0 | = 0; dx term: 2 values, |1 - 0| = 1 -> mean 1
    assert float(gradient_difference_loss(pred, target)) == pytest.approx(1.0)
    assert float(gradient_difference_loss(pred, target, alpha=2.0)) == pytest.approx(1.0)
    assert float(gradient_difference_loss(target + 0.3, target)) == pytest.approx(0.0, abs=1e-6)  # a shift keeps edges
    half = target * 0.5
    assert float(gradient_difference_loss(half, target)) == pytest.approx(0.5)


def test_crop_digits_centres_the_ink():
    frames = torch.zeros(2, 1, 32, 32)
    frames[0, 0, 2:6, 20:24] = 1.0  # a blob near the top edge: the crop pads with zeros
    frames[1, 0, 14:18, 14:18] = 1.0
    crops = crop_digits(frames, crop=10, out=10)
    assert crops.shape == (2, 1, 10, 10)
    for c in crops:
        ys, xs = torch.nonzero(c[0], as_tuple=True)
        assert ys.float().mean() == pytest.approx(4.5, abs=0.6) and xs.float().mean() == pytest.approx(4.5, abs=0.6)
        assert float(c.sum()) == 16.0  # the whole blob is inside


class _InkJudge:
    """Says 'digit 1' for frames with little ink, 'digit 7' for much; confident only about 1s."""

    def probabilities(self, images):
        x = torch.as_tensor(images)
        assert x.shape[1:] == (1, 28, 28) and float(x.min()) >= -1.0  # the judge's [-1, 1] range
        ink = ((x + 1) / 2).sum(dim=(1, 2, 3))
        much = (ink > 50).numpy()
        p = np.full((len(x), 10), 0.01)
        p[np.arange(len(x)), np.where(much, 7, 1)] = np.where(much, 0.5, 0.95)
        return p


def test_digit_scores_consistency_and_recognisable():
    clips = torch.zeros(2, 4, 1, 64, 64, dtype=torch.uint8)
    clips[:, :, :, 20:24, 20:24] = 255  # little ink (16 pixels): "1", confidently
    clips[1, 3, :, 20:30, 20:30] = 255  # clip 1, last frame: much ink (100 pixels): "7", unsure
    scores = digit_scores(clips, _InkJudge())
    assert scores["identity_consistency"] == pytest.approx((1.0 + 0.75) / 2)
    assert scores["recognisable"] == pytest.approx(7 / 8)
    assert scores["digit_histogram"][1] == 2  # both clips are mostly 1s
