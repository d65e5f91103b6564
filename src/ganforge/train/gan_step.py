"""One training step of an (optionally conditional) GAN: D update(s), then G update.

Each phase computes its loss with the objective it was given (a `GANLoss`, see
`ganforge.losses`), calls backward and steps its own optimiser. Statistics go through
`ganforge.monitor.report` and stay on the device until the collector flushes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganforge.losses import GANLoss, gradient_penalty, r1_penalty
from ganforge.monitor import report
from ganforge.train.ema import EMA

Batch = tuple[Tensor, Tensor | None]  # (images in [-1, 1], labels or None)


def _grad_norm(module: nn.Module) -> Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class GANStep:
    """D update(s) (``n_critic`` of them, one real batch each), then one G update.

    The fake batch of the last D update is reused for the G update (as in the reference
    DCGAN recipe), so G runs forward once per step. D's parameters are frozen during the
    G phase, so no gradient is computed for weights that will not be stepped.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        noise: torch.Generator,
        n_critic: int = 1,
        gp_weight: float = 0.0,
        r1_weight: float = 0.0,
        ema: EMA | None = None,
    ):
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.opt_g = opt_g
        self.opt_d = opt_d
        self.noise = noise
        self.n_critic = n_critic
        self.gp_weight = gp_weight
        self.r1_weight = r1_weight
        self.ema = ema
        self.measure = True  # the trainer turns the costlier statistics on only on logged steps

    def sample_z(self, n: int, device: torch.device) -> Tensor:
        return torch.randn(n, self.generator.z_dim, device=device, generator=self.noise)

    def __call__(self, batches: Sequence[Batch]) -> dict[str, Tensor]:
        """Run the phases on ``n_critic`` real batches; return the step's losses (device tensors)."""
        G, D = self.generator, self.discriminator  # noqa: N806
        # 1. discriminator phase(s)
        D.requires_grad_(True)
        for real, labels in batches:
            z = self.sample_z(real.shape[0], real.device)
            fake = G(z, labels)  # (B, *shape), graph kept for the G phase
            real_logits = D(real, labels)
            fake_logits = D(fake.detach(), labels)
            loss_d = self.loss.discriminator(real_logits, fake_logits)
            if self.gp_weight:
                gp = gradient_penalty(D, real, fake, labels=labels)
                report("Loss/D/gp", gp)
                loss_d = loss_d + self.gp_weight * gp
            if self.r1_weight:
                r1 = r1_penalty(D, real, labels=labels)
                report("Loss/D/r1", r1)
                loss_d = loss_d + 0.5 * self.r1_weight * r1
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if self.measure:
                report("Grad/D", _grad_norm(D))
            self.opt_d.step()
        # 2. generator phase, on the last fake batch, against the updated D
        D.requires_grad_(False)
        fake_logits_g = D(fake, labels)
        loss_g = self.loss.generator(fake_logits_g)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.measure:
            report("Grad/G", _grad_norm(G))
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update(G)
        # 3. statistics of the last D phase: D(x), D(G(z)) as probabilities, accuracy per side, margin
        with torch.no_grad():
            real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
            report("Loss/D", loss_d)
            report("Loss/G", loss_g)
            report("D/real", torch.sigmoid(real_logits))
            report("D/fake", torch.sigmoid(fake_logits))
            report("D/acc_real", (real_logits > 0).float())
            report("D/acc_fake", (fake_logits < 0).float())
            report("D/margin", real_logits.mean() - fake_logits.mean())
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    # --- what the trainer saves and restores -------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            nets["generator_ema"] = self.ema.shadow
        return nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def sampling_generator(self) -> nn.Module:
        """The network to draw samples from: the EMA copy when there is one."""
        return self.ema.shadow if self.ema is not None else self.generator
