"""Training steps for video: adversarial future-frame prediction and MoCoGAN clip generation.

Both speak the `Trainer`'s protocol (``n_critic``, ``measure``, ``iteration``, ``noise``,
``networks()``, ``optimizers()``, ``sampling_generator()``), so stats, the doctor, checkpoints,
exact resume and the report work as for every ganforge GAN.

`VideoStep` (Mathieu, Couprie & LeCun 2016): the predictor maps the first ``context`` frames of a
clip to the next ``future`` frames. Its loss is λ_rec·MSE + λ_gdl·GDL + λ_adv·adversarial, where the
clip discriminator sees the context followed by either the true or the predicted future. With
``adv_weight = 0`` it is the MSE(+GDL)-only baseline and no discriminator is trained.

Scale: Mathieu et al.'s L2 and GDL terms are sums over a frame's pixels, so their weights (1, 1, 0.05)
make the adversarial term tiny next to them. Here MSE and GDL are means over pixels (the numbers stay
readable), so the adversarial term is divided by the pixels per frame (C·H·W) to keep the published
weights' meaning. Without that division the adversarial term was ~4096x stronger at 64x64: with
weight 0.05, and even 0.01 with a spectrally normalised D, it drove the predictor to black frames
or to noise (MSE 170 vs 122 for MSE alone; bench/results/video.md).

`MoCoGANStep` (Tulyakov et al. 2018): the image discriminator judges single frames, the video
discriminator whole clips; the generator is trained against both.

Both take instance noise and the R1 penalty (`ganforge.train.d_stabilisers`): every discriminator input,
real and generated, in both phases, gets the same noise; R1 is taken on the real inputs. The doctor's
``--auto-remedy`` can switch them on during a run (``settings()`` / ``load_settings()``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.losses import GANLoss, gradient_difference_loss
from ganforge.monitor import report
from ganforge.train.d_stabilisers import DiscriminatorStabilisers
from ganforge.train.gan_step import _grad_norm, report_d_stats

ClipBatch = tuple[Tensor, None]  # (clips (B, T, C, H, W) in [-1, 1], no labels)


class VideoStep(DiscriminatorStabilisers):
    """One step of adversarial future-frame prediction: D phase (if adversarial), then the predictor."""

    n_critic = 1

    def __init__(
        self,
        predictor: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        noise: torch.Generator,
        context_frames: int,
        future_frames: int,
        adv_weight: float = 0.05,
        gdl_weight: float = 1.0,
        recon_weight: float = 1.0,
        instance_noise: float = 0.0,
        instance_noise_steps: int = 0,
        r1_weight: float = 0.0,
    ):
        if context_frames < 1 or future_frames < 1:
            raise ConfigError(f"need at least one context and one future frame, got {context_frames} and "
                              f"{future_frames}")
        if min(adv_weight, gdl_weight, recon_weight) < 0:
            raise ConfigError("--adv-weight, --gdl-weight and the reconstruction weight must be >= 0")
        self.predictor, self.discriminator = predictor, discriminator
        self.loss = loss
        self.opt_g, self.opt_d = opt_g, opt_d
        self.noise = noise  # unused by the step (prediction is deterministic); kept for the Trainer's RNG state
        self.context_frames, self.future_frames = int(context_frames), int(future_frames)
        self.adv_weight, self.gdl_weight, self.recon_weight = float(adv_weight), float(gdl_weight), float(recon_weight)
        self.iteration = 0
        self.measure = True
        self._init_stabilisers(instance_noise, instance_noise_steps, r1_weight)

    @property
    def adversarial(self) -> bool:
        return self.adv_weight > 0

    def split(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        k, m = self.context_frames, self.future_frames
        if clips.shape[1] < k + m:
            raise ConfigError(f"clips of {clips.shape[1]} frames are shorter than context {k} + future {m} frames")
        return clips[:, :k], clips[:, k: k + m]

    def __call__(self, batches: Sequence[ClipBatch]) -> dict[str, Tensor]:
        (clips, _), = batches
        context, future = self.split(clips)
        G, D = self.predictor, self.discriminator  # noqa: N806
        predicted = G(context, self.future_frames)  # (B, m, C, H, W), graph kept for the G phase
        out: dict[str, Tensor] = {}
        # 1. discriminator: context + true future is real, context + predicted future is fake
        if self.adversarial:
            D.requires_grad_(True)
            real = torch.cat([context, future], dim=1)
            real_logits = D(self.noised(real))
            fake_logits = D(self.noised(torch.cat([context, predicted.detach()], dim=1)))
            loss_d = self.loss.discriminator(real_logits, fake_logits) + self.r1_term(D, real)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if self.measure:
                report("Grad/D", _grad_norm(D))
            self.opt_d.step()
            out["loss_d"] = loss_d.detach()
        # 2. predictor, against the updated D
        recon = F.mse_loss(predicted, future)
        gdl = gradient_difference_loss(predicted, future)
        loss_g = self.recon_weight * recon + self.gdl_weight * gdl
        if self.adversarial:
            D.requires_grad_(False)
            adv = self.loss.generator(D(self.noised(torch.cat([context, predicted], dim=1))))
            loss_g = loss_g + self.adv_weight / future[0, 0].numel() * adv  # see the module docstring: scale
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.measure:
            report("Grad/G", _grad_norm(G))
        self.opt_g.step()
        with torch.no_grad():
            report("Loss/G", loss_g)
            report("Loss/G/mse", recon)
            report("Loss/G/gdl", gdl)
            # the literature's number: squared error summed over a frame in [0, 1] pixels (x - y in [-1, 1] / 2)
            report("Pred/mse_per_frame", recon * future[0, 0].numel() / 4)
            if self.adversarial:
                report("Loss/G/adv", adv)
                report("Loss/D", loss_d)
                report_d_stats(self.loss, real_logits.detach(), fake_logits.detach())
        out["loss_g"] = loss_g.detach()
        return out

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.predictor, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def sampling_generator(self) -> nn.Module:
        return self.predictor


class MoCoGANStep(DiscriminatorStabilisers):
    """One MoCoGAN step: image and video discriminators, then the generator against both."""

    n_critic = 1

    def __init__(
        self,
        generator: nn.Module,
        image_discriminator: nn.Module,
        video_discriminator: nn.Module,
        loss: GANLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        noise: torch.Generator,
        image_frames: int = 4,
        image_weight: float = 1.0,
        instance_noise: float = 0.0,
        instance_noise_steps: int = 0,
        r1_weight: float = 0.0,
    ):
        self.generator = generator
        self.image_discriminator, self.video_discriminator = image_discriminator, video_discriminator
        self.loss = loss
        self.opt_g, self.opt_d = opt_g, opt_d
        self.noise = noise  # latents and the frames shown to the image discriminator
        self.image_frames = int(image_frames)
        self.image_weight = float(image_weight)
        self.iteration = 0
        self.measure = True
        self._init_stabilisers(instance_noise, instance_noise_steps, r1_weight)

    def _frames(self, clips: Tensor, index: Tensor) -> Tensor:
        """``image_frames`` frames of each clip, at ``index`` (B, k): (B * k, C, H, W)."""
        b = clips.shape[0]
        picked = clips[torch.arange(b, device=clips.device)[:, None], index]  # (B, k, C, H, W)
        return picked.flatten(0, 1)

    def __call__(self, batches: Sequence[ClipBatch]) -> dict[str, Tensor]:
        (real, _), = batches
        G, DI, DV = self.generator, self.image_discriminator, self.video_discriminator  # noqa: N806
        b, t = real.shape[:2]
        device = real.device
        z_c, eps, h0 = G.latents(b, t, self.noise, device)
        fake = G(z_c, eps, h0)  # (B, T, C, H, W)
        k = min(self.image_frames, t)
        index = torch.stack([torch.randperm(t, generator=self.noise, device=self.noise.device)[:k]
                             for _ in range(b)]).to(device)
        # 1. discriminators
        for d in (DI, DV):
            d.requires_grad_(True)
        real_img, fake_img = self._frames(real, index), self._frames(fake.detach(), index)
        ri, fi = DI(self.noised(real_img)), DI(self.noised(fake_img))
        rv, fv = DV(self.noised(real)), DV(self.noised(fake.detach()))
        loss_di = self.loss.discriminator(ri, fi)
        loss_dv = self.loss.discriminator(rv, fv)
        loss_d = self.image_weight * (loss_di + self.r1_term(DI, real_img, "Loss/D_image/r1")) + loss_dv \
            + self.r1_term(DV, real)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        if self.measure:
            report("Grad/D", _grad_norm(DV))
            report("Grad/D_image", _grad_norm(DI))
        self.opt_d.step()
        # 2. generator against both
        for d in (DI, DV):
            d.requires_grad_(False)
        loss_gi = self.loss.generator(DI(self.noised(self._frames(fake, index))))
        loss_gv = self.loss.generator(DV(self.noised(fake)))
        loss_g = self.image_weight * loss_gi + loss_gv
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.measure:
            report("Grad/G", _grad_norm(G))
        self.opt_g.step()
        with torch.no_grad():
            report("Loss/D", loss_d)
            report("Loss/G", loss_g)
            report("Loss/D/image", loss_di)
            report("Loss/D/video", loss_dv)
            # the doctor reads D/*: the video discriminator's view (whole clips); the image one under DI/*
            report_d_stats(self.loss, rv.detach(), fv.detach(), "D")
            report_d_stats(self.loss, ri.detach(), fi.detach(), "DI")
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "image_discriminator": self.image_discriminator,
                "discriminator": self.video_discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def sampling_generator(self) -> nn.Module:
        return self.generator
