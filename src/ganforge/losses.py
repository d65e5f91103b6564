"""GAN objectives as pure functions: logits in, scalar out.

Each objective is a pair (discriminator loss, generator loss). Logits are the raw
discriminator outputs, shape (B,). The training step receives a `GANLoss` object rather
than a name, so a new objective is a new pair of functions, not a new branch somewhere.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class DiscriminatorLoss(Protocol):
    def __call__(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor: ...


class GeneratorLoss(Protocol):
    def __call__(self, fake_logits: Tensor) -> Tensor: ...


class GANLoss(NamedTuple):
    """A named objective: how the discriminator and the generator each score logits."""

    name: str
    discriminator: DiscriminatorLoss
    generator: GeneratorLoss


# --- minimax (Goodfellow et al. 2014): D maximises log D(x) + log(1 - D(G(z))) ---------------------------
def minimax_discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E[log σ(r)] - E[log(1 - σ(f))], written with softplus for numerical stability."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_generator(fake_logits: Tensor) -> Tensor:
    """The original, saturating objective: G minimises E[log(1 - σ(f))] = -E[softplus(f)]."""
    return -F.softplus(fake_logits).mean()


# --- non-saturating: same D, G maximises log D(G(z)) (strong gradients early on) ------------------------
non_saturating_discriminator = minimax_discriminator


def non_saturating_generator(fake_logits: Tensor) -> Tensor:
    """-E[log σ(f)]."""
    return F.softplus(-fake_logits).mean()


# --- least squares (Mao et al. 2017), targets a=0 (fake), b=1 (real), c=1 -------------------------------
def least_squares_discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """½E[(r - 1)²] + ½E[f²]."""
    return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())


def least_squares_generator(fake_logits: Tensor) -> Tensor:
    """½E[(f - 1)²]."""
    return 0.5 * (fake_logits - 1).pow(2).mean()


# --- hinge (Lim & Ye 2017; Miyato et al. 2018) -----------------------------------------------------------
def hinge_discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """E[max(0, 1 - r)] + E[max(0, 1 + f)]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator(fake_logits: Tensor) -> Tensor:
    """-E[f]."""
    return -fake_logits.mean()


# --- Wasserstein (Arjovsky et al. 2017): the critic's output is a score, not a probability -------------
def wasserstein_discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """E[f] - E[r]: the critic maximises the score gap (needs a Lipschitz constraint, e.g. a gradient
    penalty or spectral norm)."""
    return fake_logits.mean() - real_logits.mean()


def wasserstein_generator(fake_logits: Tensor) -> Tensor:
    """-E[f]."""
    return -fake_logits.mean()


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss("minimax", minimax_discriminator, minimax_generator),
    "non_saturating": GANLoss("non_saturating", non_saturating_discriminator, non_saturating_generator),
    "lsgan": GANLoss("lsgan", least_squares_discriminator, least_squares_generator),
    "hinge": GANLoss("hinge", hinge_discriminator, hinge_generator),
    "wasserstein": GANLoss("wasserstein", wasserstein_discriminator, wasserstein_generator),
}


def get_loss(name: str) -> GANLoss:
    """Look up an objective by name (``-`` and ``_`` are equivalent)."""
    key = name.lower().replace("-", "_")
    if key not in LOSSES:
        from ganforge.errors import ConfigError

        raise ConfigError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    return LOSSES[key]


def smooth_real_labels(loss: GANLoss, smoothing: float) -> GANLoss:
    """One-sided label smoothing (Salimans et al. 2016): D's target for real data is ``1 - smoothing``.

    Only the real side is smoothed (smoothing the fake side rewards G for staying where it is).
    Defined for the losses with targets: minimax / non-saturating (binary cross-entropy against
    ``1 - s``) and LSGAN (squared error to ``1 - s``); hinge and Wasserstein have no target to smooth.
    """
    if smoothing == 0:
        return loss
    if not 0 < smoothing < 0.5:
        from ganforge.errors import ConfigError

        raise ConfigError(f"--label-smoothing must be in [0, 0.5), got {smoothing} (0.1 is usual)")
    s = float(smoothing)
    if loss.name in ("minimax", "non_saturating"):

        def discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
            bce_real = (1 - s) * F.softplus(-real_logits) + s * F.softplus(real_logits)
            return bce_real.mean() + F.softplus(fake_logits).mean()

    elif loss.name == "lsgan":

        def discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
            return 0.5 * ((real_logits - (1 - s)).pow(2).mean() + fake_logits.pow(2).mean())

    else:
        from ganforge.errors import ConfigError

        raise ConfigError(f"--label-smoothing needs a loss with targets (non_saturating, minimax, lsgan); "
                          f"{loss.name} has none: use --instance-noise or --r1-weight instead")
    return GANLoss(loss.name, discriminator, loss.generator)


def decision_threshold(loss: GANLoss) -> float:
    """The D output that separates "real" from "fake" for ``loss``: 0.5 for LSGAN (targets 0 and 1), else 0."""
    return 0.5 if loss.name == "lsgan" else 0.0


def real_probability(loss: GANLoss, logits: Tensor) -> Tensor:
    """D's outputs read as "how real" in [0, 1]: σ(logit) for the logistic losses, the clamped LSGAN score
    (its targets are 0 and 1), and σ of the score for hinge and Wasserstein (a monotone summary only)."""
    return logits.clamp(0, 1) if loss.name == "lsgan" else torch.sigmoid(logits)


# --- image-to-image terms (CycleGAN) ---------------------------------------------------------------------
def cycle_loss(original: Tensor, reconstructed: Tensor) -> Tensor:
    """Cycle consistency (Zhu et al. 2017): E‖F(G(x)) − x‖₁, the mean absolute error per pixel."""
    return (reconstructed - original).abs().mean()


def identity_loss(target_domain_image: Tensor, translated: Tensor) -> Tensor:
    """Identity mapping (Taigman et al. 2017): E‖G(y) − y‖₁ for y already in G's target domain; it keeps
    colours and tones that need not change."""
    return (translated - target_domain_image).abs().mean()



# --- video prediction (Mathieu, Couprie & LeCun 2016) -----------------------------------------------------
def gradient_difference_loss(predicted: Tensor, target: Tensor, alpha: float = 1.0) -> Tensor:
    """Image gradient difference loss: E[ | |∂y Y| - |∂y Ŷ| |^α + | |∂x Y| - |∂x Ŷ| |^α ] over (..., H, W).

    Penalises predictions whose edges are weaker (or stronger) than the truth's, which an L2 loss alone
    lets blur away; mean over pixels, so it has the scale of a per-pixel L1 for α = 1."""
    def grads(x: Tensor) -> tuple[Tensor, Tensor]:
        return (x[..., 1:, :] - x[..., :-1, :]).abs(), (x[..., :, 1:] - x[..., :, :-1]).abs()

    (py, px), (ty, tx) = grads(predicted), grads(target)
    return (ty - py).abs().pow(alpha).mean() + (tx - px).abs().pow(alpha).mean()

# --- regularisers ----------------------------------------------------------------------------------------
def gradient_penalty(discriminator: torch.nn.Module, real: Tensor, fake: Tensor, **cond: Tensor | None) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(‖∇D(x̂)‖₂ - 1)²] on random interpolates x̂."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed, **cond).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(discriminator: torch.nn.Module, real: Tensor, **cond: Tensor | None) -> Tensor:
    """R1 (Mescheder et al. 2018): E[‖∇D(x)‖²] on real data (multiply by γ/2 yourself)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real, **cond).sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()
