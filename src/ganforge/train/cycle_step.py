"""One CycleGAN training step (Zhu et al. 2017), and the image history pool its discriminators learn from.

Order of phases, as in the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix):
1. both generators, against frozen discriminators: adversarial terms, cycle consistency (λ_cycle),
   identity (λ_identity x λ_cycle), one backward pass, one optimiser step for G_AB and G_BA together;
2. both discriminators, on real images and on generated ones drawn through a history pool of the
   last ``pool_size`` fakes (Shrivastava et al. 2017), one optimiser step for D_A and D_B together.

The step speaks the `Trainer`'s protocol (``n_critic``, ``measure``, ``iteration``, ``noise``,
``networks()``, ``optimizers()``) so checkpoints, resume, stats, the doctor and the report work as
for any GAN; the pools are part of the checkpoint (``extra_state``), so a resumed run replays exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.losses import GANLoss, cycle_loss, identity_loss
from ganforge.monitor import report
from ganforge.train.gan_step import _grad_norm, report_d_stats

CycleBatch = tuple[Tensor, Tensor]  # (images of domain A, images of domain B), both in [-1, 1]


class ImagePool:
    """A buffer of up to ``size`` past generated images (Shrivastava et al. 2017).

    `query` returns a batch as large as its input: while the pool fills, the new images themselves;
    then, image by image, with probability ½ a stored image (replaced by the new one), else the new
    one. D thus also sees older generator outputs, which damps oscillation. ``size`` 0 turns it off.
    Randomness comes from ``generator`` (a seeded CPU ``torch.Generator``), never the global RNG.
    """

    def __init__(self, size: int, generator: torch.Generator):
        if size < 0:
            raise ConfigError(f"--pool-size must be >= 0 (0 = off, 50 in the reference), got {size}")
        self.size = int(size)
        self.generator = generator
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                i = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        stored = torch.stack(self.images).cpu() if self.images else torch.zeros(0)
        return {"images": stored}

    def load_state_dict(self, state: dict[str, Tensor], device: torch.device) -> None:
        stored = state["images"]
        self.images = [image.to(device) for image in stored] if stored.numel() else []


class CycleGANStep:
    """G phase (both generators), then D phase (both discriminators) on one batch from each domain."""

    n_critic = 1  # the Trainer draws this many batches per step

    def __init__(
        self,
        generator_ab: nn.Module,
        generator_ba: nn.Module,
        discriminator_a: nn.Module,
        discriminator_b: nn.Module,
        loss: GANLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        noise: torch.Generator,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
        adversarial_weight: float = 1.0,
    ):
        if cycle_weight < 0 or identity_weight < 0:
            raise ConfigError("--cycle-weight and --identity-weight must be >= 0")
        self.generator_ab, self.generator_ba = generator_ab, generator_ba
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        if identity_weight > 0 and generator_ab.in_channels != generator_ab.out_channels:
            raise ConfigError(
                f"the identity loss feeds domain B's images to G_AB, which takes {generator_ab.in_channels} channels "
                f"but B has {generator_ab.out_channels}; use --identity-weight 0 for domains with different channels"
            )
        self.loss = loss
        self.opt_g, self.opt_d = opt_g, opt_d
        self.noise = noise  # drives the image pools
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.pool_a = ImagePool(pool_size, noise)
        self.pool_b = ImagePool(pool_size, noise)
        self.iteration = 0
        self.measure = True

    # --- the step ------------------------------------------------------------------------------------------
    def __call__(self, batches: Sequence[CycleBatch]) -> dict[str, Tensor]:
        (real_a, real_b), = batches
        g_ab, g_ba, d_a, d_b = self.generator_ab, self.generator_ba, self.discriminator_a, self.discriminator_b
        adv = self.adversarial_weight
        # 1. generators, against frozen discriminators
        d_a.requires_grad_(False)
        d_b.requires_grad_(False)
        fake_b = g_ab(real_a)  # A -> B
        rec_a = g_ba(fake_b)  # A -> B -> A
        fake_a = g_ba(real_b)  # B -> A
        rec_b = g_ab(fake_a)  # B -> A -> B
        loss_adv_ab = adv * self.loss.generator(d_b(fake_b))
        loss_adv_ba = adv * self.loss.generator(d_a(fake_a))
        loss_cycle_a = self.cycle_weight * cycle_loss(real_a, rec_a)
        loss_cycle_b = self.cycle_weight * cycle_loss(real_b, rec_b)
        loss_g = loss_adv_ab + loss_adv_ba + loss_cycle_a + loss_cycle_b
        if self.identity_weight > 0:
            weight = self.identity_weight * self.cycle_weight
            loss_idt_b = weight * identity_loss(real_b, g_ab(real_b))  # G_AB should leave B images alone
            loss_idt_a = weight * identity_loss(real_a, g_ba(real_a))
            loss_g = loss_g + loss_idt_a + loss_idt_b
            report("Loss/G/identity_a", loss_idt_a.detach())
            report("Loss/G/identity_b", loss_idt_b.detach())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.measure:
            report("Grad/G", torch.sqrt(_grad_norm(g_ab) ** 2 + _grad_norm(g_ba) ** 2))
        self.opt_g.step()
        # 2. discriminators, on real images and pooled fakes
        d_a.requires_grad_(True)
        d_b.requires_grad_(True)
        pooled_b = self.pool_b.query(fake_b.detach())
        pooled_a = self.pool_a.query(fake_a.detach())
        real_logits_b, fake_logits_b = d_b(real_b), d_b(pooled_b)
        real_logits_a, fake_logits_a = d_a(real_a), d_a(pooled_a)
        loss_d_b = self.loss.discriminator(real_logits_b, fake_logits_b)
        loss_d_a = self.loss.discriminator(real_logits_a, fake_logits_a)
        self.opt_d.zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        if self.measure:
            report("Grad/D", torch.sqrt(_grad_norm(d_a) ** 2 + _grad_norm(d_b) ** 2))
        self.opt_d.step()
        # 3. statistics: per direction, and pooled over both for the doctor (D/real, D/acc_*, ...)
        with torch.no_grad():
            real_logits = torch.cat([real_logits_a.flatten(), real_logits_b.flatten()])
            fake_logits = torch.cat([fake_logits_a.flatten(), fake_logits_b.flatten()])
            report("Loss/G", loss_g.detach())
            report("Loss/D", (0.5 * (loss_d_a + loss_d_b)).detach())
            report("Loss/G/adv_ab", loss_adv_ab.detach())
            report("Loss/G/adv_ba", loss_adv_ba.detach())
            report("Loss/G/cycle_a", loss_cycle_a.detach())
            report("Loss/G/cycle_b", loss_cycle_b.detach())
            report("Loss/D/a", loss_d_a.detach())
            report("Loss/D/b", loss_d_b.detach())
            report_d_stats(self.loss, real_logits, fake_logits)
        return {"loss_d": (loss_d_a + loss_d_b).detach(), "loss_g": loss_g.detach()}

    # --- what the trainer saves and restores ---------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"generator_ab": self.generator_ab, "generator_ba": self.generator_ba,
                "discriminator_a": self.discriminator_a, "discriminator_b": self.discriminator_b}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict[str, dict[str, Tensor]]:
        """The image pools: without them a resumed run would see different fakes than a straight one."""
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict[str, dict[str, Tensor]]) -> None:
        device = next(self.generator_ab.parameters()).device
        self.pool_a.load_state_dict(state["pool_a"], device)
        self.pool_b.load_state_dict(state["pool_b"], device)
