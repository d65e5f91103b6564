import math

import pytest
import torch

from ganforge import losses
from ganforge.errors import ConfigError


def _logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, generator=g) * 3, torch.randn(64, generator=g) * 3


def test_minimax_closed_form():
    r, f = _logits()
    expected_d = -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())
    assert losses.minimax_discriminator(r, f).item() == pytest.approx(expected_d.item(), rel=1e-5)
    expected_g = torch.log(1 - torch.sigmoid(f)).mean()
    assert losses.minimax_generator(f).item() == pytest.approx(expected_g.item(), rel=1e-5)
    # at D(x) = D(G(z)) = 1/2 the discriminator loss is 2 log 2 (Goodfellow et al., Theorem 1)
    zero = torch.zeros(8)
    assert losses.minimax_discriminator(zero, zero).item() == pytest.approx(2 * math.log(2))


def test_non_saturating_closed_form():
    _, f = _logits()
    assert losses.non_saturating_generator(f).item() == pytest.approx(
        -torch.log(torch.sigmoid(f)).mean().item(), rel=1e-5)
    assert losses.non_saturating_generator(torch.zeros(4)).item() == pytest.approx(math.log(2))


def test_non_saturating_gradient_does_not_vanish_when_d_wins():
    # the reason the non-saturating loss exists: for very negative fake logits the minimax G gradient vanishes
    f1 = torch.full((4,), -10.0, requires_grad=True)
    losses.minimax_generator(f1).backward()
    f2 = torch.full((4,), -10.0, requires_grad=True)
    losses.non_saturating_generator(f2).backward()
    assert f1.grad.abs().max() < 1e-4
    assert f2.grad.abs().min() > 0.2


def test_least_squares_closed_form():
    assert losses.least_squares_discriminator(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert losses.least_squares_discriminator(torch.zeros(3), torch.ones(3)).item() == pytest.approx(1.0)
    assert losses.least_squares_generator(torch.full((3,), 3.0)).item() == pytest.approx(2.0)


def test_hinge_closed_form():
    assert losses.hinge_discriminator(torch.full((3,), 2.0), torch.full((3,), -2.0)).item() == 0.0
    assert losses.hinge_discriminator(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(2.0)
    assert losses.hinge_discriminator(torch.tensor([0.5]), torch.tensor([0.5])).item() == pytest.approx(2.0)
    assert losses.hinge_generator(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_wasserstein_closed_form():
    r, f = _logits()
    assert losses.wasserstein_discriminator(r, f).item() == pytest.approx((f.mean() - r.mean()).item(), abs=1e-6)
    assert losses.wasserstein_generator(f).item() == pytest.approx(-f.mean().item(), abs=1e-6)


class _Linear(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so both penalties have closed forms."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x, labels=None):
        return x.flatten(1) @ self.w


def test_gradient_penalties_closed_form():
    w = torch.tensor([3.0, 4.0])  # norm 5
    d = _Linear(w)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert losses.gradient_penalty(d, real, fake).item() == pytest.approx((5 - 1) ** 2)
    assert losses.r1_penalty(d, real).item() == pytest.approx(25.0)


def test_registry():
    assert set(losses.LOSSES) == {"minimax", "non_saturating", "lsgan", "hinge", "wasserstein"}
    assert losses.get_loss("non-saturating").name == "non_saturating"
    with pytest.raises(ConfigError, match="choose one of"):
        losses.get_loss("bogus")
