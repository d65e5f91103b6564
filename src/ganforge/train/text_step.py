"""One training step of the text-conditional GAN, with the matching-aware loss of GAN-INT-CLS (Reed et al. 2016).

D learns three kinds of pair, not two:

    (real image, its caption)        -> real
    (real image, a mismatched one)   -> fake     the "matching-aware" term: realism is not enough, it must fit
    (generated image, its caption)   -> fake

so its score is an image-text match score, and G can only fool it with images that fit their text. G then
minimises the adversarial loss on (G(z, t), t) plus the conditioning augmentation's KL term.

Batches are ``(images, caption indices)``: the step holds the table of sentence vectors (one row per distinct
caption, computed once) and the captions' class/attribute where known, so a mismatched caption is one that
really says something else (another class, or the other attribute), not a paraphrase of the same thing.
All random draws come from ``noise`` (a seeded generator the checkpoint saves) or torch's global RNG (also
saved), so a resumed run replays a straight one exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.losses import GANLoss, decision_threshold, r1_penalty, real_probability
from ganforge.monitor import report
from ganforge.nets.text2image import kl_divergence
from ganforge.train.augment import diff_augment, parse_policy
from ganforge.train.ema import EMA
from ganforge.train.gan_step import _grad_norm, report_d_stats

TextBatch = tuple[Tensor, Tensor]  # (images in [-1, 1], caption indices into the embedding table)
MISMATCH_TRIES = 16


def matching_aware_discriminator_loss(loss: GANLoss, real_logits: Tensor, mismatch_logits: Tensor,
                                      fake_logits: Tensor, mismatch_weight: float = 0.5) -> Tensor:
    """GAN-INT-CLS's D objective for any GAN loss: real matching pairs are real; fakes and real images with
    mismatched text share the "fake" side, weighted (1 - w) and w (w = ½ in the paper):

        (1 - w)·L_D(real, fake) + w·L_D(real, mismatch)

    e.g. non-saturating: E softplus(-r) + (1 - w)·E softplus(f) + w·E softplus(m)."""
    w = float(mismatch_weight)
    return (1 - w) * loss.discriminator(real_logits, fake_logits) + w * loss.discriminator(real_logits,
                                                                                         mismatch_logits)


def mismatch_allowed(labels: Tensor, attributes: Tensor, i: Tensor, j: Tensor) -> Tensor:
    """Whether caption j may serve as the mismatched text of caption i (vectors of caption indices):
    a different caption, and, where classes are known, another class or the opposite attribute."""
    li, lj, ai, aj = labels[i], labels[j], attributes[i], attributes[j]
    known = (li >= 0) & (lj >= 0)
    differs = (li != lj) | ((ai >= 0) & (aj >= 0) & (ai != aj))
    return (i != j) & (~known | differs)


class TextGANStep:
    """D update(s) on matching, mismatched and generated pairs; then one G update (adversarial + KL)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        embeddings: Tensor,
        caption_labels: Tensor | None = None,
        caption_attributes: Tensor | None = None,
        noise: torch.Generator,
        n_critic: int = 1,
        kl_weight: float = 0.05,
        mismatch_weight: float = 0.5,
        r1_weight: float = 0.0,
        ema: EMA | None = None,
        augment: str | tuple[str, ...] = (),
    ):
        if embeddings.dim() != 2 or embeddings.shape[0] < 2:
            raise ConfigError(f"the text GAN needs at least 2 distinct captions (a mismatched caption must exist), "
                              f"got an embedding table of shape {tuple(embeddings.shape)}")
        if not 0.0 <= mismatch_weight < 1.0:
            raise ConfigError(f"--mismatch-weight is a share in [0, 1), got {mismatch_weight}")
        if kl_weight < 0 or r1_weight < 0:
            raise ConfigError("--kl-weight and --r1-weight must be >= 0")
        self.generator, self.discriminator = generator, discriminator
        self.loss = loss
        self.opt_g, self.opt_d = opt_g, opt_d
        device = embeddings.device
        self.embeddings = embeddings
        n = embeddings.shape[0]
        self.caption_labels = (caption_labels if caption_labels is not None else torch.full((n,), -1)).to(device).long()
        self.caption_attributes = (caption_attributes if caption_attributes is not None
                                   else torch.full((n,), -1)).to(device).long()
        self.noise = noise
        self.n_critic = int(n_critic)
        self.kl_weight = float(kl_weight)
        self.mismatch_weight = float(mismatch_weight)
        self.r1_weight = float(r1_weight)
        self.ema = ema
        self.augment = parse_policy(augment)
        if "color" in self.augment:
            raise ConfigError("--diffaugment color changes brightness, which captions describe (dark / light): D "
                              "could no longer check it; use translation and/or cutout")
        self.threshold = decision_threshold(loss)
        self.iteration = 0
        self.measure = True

    # --- pieces ----------------------------------------------------------------------------------------------
    def mismatched(self, idx: Tensor) -> Tensor:
        """For each caption index, a random caption that says something else (redrawn until allowed)."""
        n = self.embeddings.shape[0]
        other = torch.randint(n, idx.shape, device=idx.device, generator=self.noise)
        for _ in range(MISMATCH_TRIES):
            bad = ~mismatch_allowed(self.caption_labels, self.caption_attributes, idx, other)
            if not bool(bad.any()):
                break
            redraw = torch.randint(n, idx.shape, device=idx.device, generator=self.noise)
            other = torch.where(bad, redraw, other)
        return other

    def d_forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.discriminator(diff_augment(x, self.augment) if self.augment else x, None, t)

    def d_real_pairs(self, real: Tensor, t: Tensor, t_mismatch: Tensor) -> tuple[Tensor, Tensor]:
        """D's logits for (real, its caption) and (real, a mismatched one); one pass over the images when D can
        split features from matching (``features`` and ``match``), which gives the same values for a quarter less
        work per step."""
        x = diff_augment(real, self.augment) if self.augment else real
        D = self.discriminator  # noqa: N806
        if hasattr(D, "features") and hasattr(D, "match"):
            h = D.features(x)
            return D.match(h, t), D.match(h, t_mismatch)
        return D(x, None, t), D(x, None, t_mismatch)

    def sample_z(self, n: int, device: torch.device) -> Tensor:
        return torch.randn(n, self.generator.z_dim, device=device, generator=self.noise)

    def sample_eps(self, n: int, device: torch.device) -> Tensor | None:
        ca = getattr(self.generator, "ca", None)
        if ca is None:
            return None
        return torch.randn(n, ca.out_dim, device=device, generator=self.noise)

    # --- the step --------------------------------------------------------------------------------------------
    def __call__(self, batches: Sequence[TextBatch]) -> dict[str, Tensor]:
        G, D = self.generator, self.discriminator  # noqa: N806
        # 1. discriminator phase(s): matching, mismatched and generated pairs
        D.requires_grad_(True)
        for real, idx in batches:
            t = self.embeddings[idx]  # (B, dim)
            t_mismatch = self.embeddings[self.mismatched(idx)]
            z = self.sample_z(real.shape[0], real.device)
            c, mu, logvar = G.condition(t, self.sample_eps(real.shape[0], real.device))
            fake = G.synthesize(z, c)  # graph kept for the G phase
            real_logits, mismatch_logits = self.d_real_pairs(real, t, t_mismatch)
            fake_logits = self.d_forward(fake.detach(), t)
            loss_d = matching_aware_discriminator_loss(self.loss, real_logits, mismatch_logits, fake_logits,
                                                       self.mismatch_weight)
            if self.r1_weight:  # on real matching pairs, as DF-GAN's matching-aware gradient penalty
                r1 = r1_penalty(lambda x, cond: D(x, None, cond), real, cond=t)
                report("Loss/D/r1", r1.detach())
                loss_d = loss_d + 0.5 * self.r1_weight * r1
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if self.measure:
                report("Grad/D", _grad_norm(D))
            self.opt_d.step()
        # 2. generator phase, on the last fake batch, against the updated D
        D.requires_grad_(False)
        adversarial = self.loss.generator(self.d_forward(fake, t))
        kl = kl_divergence(mu, logvar) if mu is not None and logvar is not None else adversarial.new_zeros(())
        loss_g = adversarial + self.kl_weight * kl
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.measure:
            report("Grad/G", _grad_norm(G))
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update(G)
        # 3. statistics of the last D phase
        with torch.no_grad():
            real_logits, mismatch_logits, fake_logits = real_logits.detach(), mismatch_logits.detach(), \
                fake_logits.detach()
            report("Loss/D", loss_d.detach())
            report("Loss/G", loss_g.detach())
            report("Loss/G/adv", adversarial.detach())
            report("Loss/G/kl", kl.detach())
            report_d_stats(self.loss, real_logits, fake_logits)
            report("D/mismatch", real_probability(self.loss, mismatch_logits))
            report("D/acc_mismatch", (mismatch_logits < self.threshold).float())
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    # --- what the trainer saves and restores -----------------------------------------------------------------
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
