"""A text-conditional GAN for small images, in the spirit of GAN-INT-CLS (Reed et al. 2016) and DF-GAN
(Tao et al. 2022), scaled to 28x28 / 32x32.

Generator::

    sentence vector t ──► conditioning augmentation: (μ, log σ²) = fc(t); c = μ + σ·ε        (StackGAN)
    [z, c] ──► fc ──► (B, 2·ngf, h0, w0) ──► k-1 x [upsample x2, conv3x3, BN (no affine), FiLM(c), ReLU]
           ──► upsample x2, conv3x3 to the image channels, tanh   (the last stage is DCGAN's: straight to pixels)

FiLM(c) is DF-GAN's affine modulation: per-channel (1 + γ(c), β(c)) applied to the normalised features
at every resolution, so the text steers every stage, not only the input. The KL term KL(N(μ, σ²) ‖ N(0, I))
keeps the condition manifold smooth (the training step weighs it).

Discriminator: DCGAN-style strided convs (no BatchNorm: real matching, real mismatched and fake pairs are
judged in one objective), then the image-text match: a projection term ``<W t, φ(x)>`` added to the
unconditional logit (Miyato & Koyama 2018), or, with ``condition="concat"``, t replicated over the last
feature map, concatenated, and a conv3x3 before the final logit (DF-GAN's joint head).

Sizes: H and W as `ganforge.nets.dcgan.stages` allows (k stride-2 stages down to a base of at least 4),
e.g. 8x8, 16x16, 28x28 (base 7), 32x32 (base 4), 64x64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets.base import Discriminator, Generator
from ganforge.nets.dcgan import dcgan_init_, multipliers, stages
from ganforge.nets.layers import ProjectionHead, add_spectral_norm_

CONDITIONS = ("projection", "concat")


@dataclass
class Config:
    """Settings of the text-to-image networks (override with ``model_config``/``--model-opt``)."""

    z_dim: int = 64
    ngf: int = 64  # G's channels at its highest resolution (2·ngf at the base)
    ndf: int = 64  # D's channels at its first stage
    max_mult: int = 4
    ca_dim: int = 64  # conditioning augmentation's output c; 0 = off (c is a deterministic projection of t)
    embed_dim: int = 64  # D's text embedding in the concat head
    condition: str = "projection"  # how D matches image and text: "projection" or "concat"
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("z_dim", "ngf", "ndf", "max_mult", "embed_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"text2image {name} must be a positive integer, got {getattr(self, name)}")
        if self.ca_dim < 0:
            raise ConfigError(f"text2image ca_dim must be >= 0 (0 = no conditioning augmentation), got {self.ca_dim}")
        if self.condition not in CONDITIONS:
            raise ConfigError(f"text2image condition must be one of {CONDITIONS}, got {self.condition!r}")


def _check_spec(spec: DataSpec) -> tuple[int, tuple[int, int]]:
    if spec.kind != "image":
        raise ConfigError(f"the text-to-image GAN makes images (C, H, W); got a {spec.kind} spec {spec.shape}")
    if spec.cond_dim < 1 or spec.n_classes:
        raise ConfigError("the text-to-image GAN is conditioned on sentence vectors only: its spec needs "
                          f"cond_dim > 0 (the encoder's size) and no class labels, got cond_dim {spec.cond_dim}, "
                          f"n_classes {spec.n_classes}")
    return stages(spec.height, spec.width)


class ConditioningAugmentation(nn.Module):
    """(μ, log σ²) = fc(t), then c = μ + σ·ε (Zhang et al., StackGAN 2017): many latent conditions per sentence,
    which smooths what G sees of a small set of captions; ε = 0 gives μ (used in eval mode)."""

    def __init__(self, cond_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cond_dim, 2 * out_dim)
        self.out_dim = out_dim

    def forward(self, t: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.fc(t).chunk(2, dim=1)  # (B, ca_dim) each
        logvar = logvar.clamp(-10, 10)
        if eps is None:
            eps = torch.randn_like(mu) if self.training else torch.zeros_like(mu)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)), summed over dimensions, averaged over the batch."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)).mean()


class FiLM(nn.Module):
    """Affine modulation of normalised features by the condition: x·(1 + γ(c)) + β(c), per channel."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.fc.weight)  # starts as the identity: the text's influence is learned, not random
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        gamma, beta = self.fc(c).chunk(2, dim=1)  # (B, channels) each
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class TextGenerator(Generator):
    """z and a sentence vector -> image; see the module docstring for the layout."""

    def __init__(self, config: Config, spec: DataSpec) -> None:
        super().__init__(spec, config.z_dim)
        self.config = config
        k, (h0, w0) = _check_spec(spec)
        self.base = (h0, w0)
        c_dim = config.ca_dim or config.embed_dim
        self.ca = ConditioningAugmentation(spec.cond_dim, config.ca_dim) if config.ca_dim else None
        self.project = None if config.ca_dim else nn.Linear(spec.cond_dim, c_dim)
        widths = [config.ngf * m for m in multipliers(k, config.max_mult)]  # base, then per stage but the last
        self.fc = nn.Linear(config.z_dim + c_dim, widths[0] * h0 * w0)
        self.norm0 = nn.BatchNorm2d(widths[0], affine=False)
        self.film0 = FiLM(c_dim, widths[0])
        self.stages = nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            self.stages.append(nn.ModuleDict({
                "conv": nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
                "norm": nn.BatchNorm2d(c_out, affine=False),
                "film": FiLM(c_dim, c_out),
            }))
        self.to_image = nn.Conv2d(widths[-1], spec.channels, 3, 1, 1)
        self.widths = widths

    def condition(self, cond: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(c, μ, log σ²) for sentence vectors ``cond`` (B, cond_dim); μ and log σ² are None without CA."""
        if self.ca is not None:
            return self.ca(cond, eps)
        assert self.project is not None
        return self.project(cond), None, None

    def synthesize(self, z: Tensor, c: Tensor) -> Tensor:
        """Images (B, C, H, W) in [-1, 1] from noise and the latent condition c."""
        h = self.fc(torch.cat([z, c], dim=1)).view(z.shape[0], self.widths[0], *self.base)  # (B, 2ngf, h0, w0)
        h = torch.relu(self.film0(self.norm0(h), c))
        for stage in self.stages:
            h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")  # (B, C_in, 2h, 2w)
            h = torch.relu(stage["film"](stage["norm"](stage["conv"](h)), c))
        h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")  # (B, ngf, H, W)
        return torch.tanh(self.to_image(h))  # (B, C, H, W)

    def forward(self, z: Tensor, labels: Tensor | None = None, cond: Tensor | None = None,
                eps: Tensor | None = None) -> Tensor:
        self.check_inputs(z, labels, cond)
        assert cond is not None
        c, _, _ = self.condition(cond, eps)
        return self.synthesize(z, c)


class TextDiscriminator(Discriminator):
    """(image, sentence vector) -> one logit: real and matching, or not."""

    def __init__(self, config: Config, spec: DataSpec) -> None:
        super().__init__(spec)
        self.config = config
        k, base = _check_spec(spec)
        widths = [config.ndf * m for m in reversed(multipliers(k, config.max_mult))]
        layers: list[nn.Module] = []
        c_in = spec.channels
        for width in widths:
            layers += [nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = width
        self.features = nn.Sequential(*layers)  # (B, C, H, W) -> (B, F, h0, w0)
        feature_dim = widths[-1]
        if config.condition == "concat":
            self.text = nn.Sequential(nn.Linear(spec.cond_dim, config.embed_dim), nn.LeakyReLU(0.2, inplace=True))
            self.joint = nn.Sequential(nn.Conv2d(feature_dim + config.embed_dim, feature_dim, 3, 1, 1),
                                       nn.LeakyReLU(0.2, inplace=True))
            self.projection = None
        else:
            self.text = self.joint = None
            self.projection = ProjectionHead(0, spec.cond_dim, feature_dim)
        self.logit = nn.Conv2d(feature_dim, 1, base, 1, 0)  # the whole base map -> 1x1
        if config.spectral_norm:
            add_spectral_norm_(self)

    def forward(self, x: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        self.check_inputs(x, labels, cond)
        assert cond is not None
        return self.match(self.features(x), cond)

    def match(self, h: Tensor, cond: Tensor) -> Tensor:
        """The logit of image features ``h`` (B, F, h0, w0) with sentence vectors ``cond`` (B, cond_dim): split
        from `forward` so one real batch's features serve both its matching and its mismatched captions."""
        if self.joint is not None:
            assert self.text is not None
            t = self.text(cond)[:, :, None, None].expand(-1, -1, *h.shape[2:])  # (B, E, h0, w0)
            return self.logit(self.joint(torch.cat([h, t], dim=1))).view(h.shape[0])
        assert self.projection is not None
        return self.logit(h).view(h.shape[0]) + self.projection(h.sum(dim=(2, 3)), None, cond)  # (B,)


def build(config: Config, spec: DataSpec) -> tuple[TextGenerator, TextDiscriminator]:
    """(generator, discriminator) for ``spec`` (image shape, ``cond_dim`` = the sentence encoder's size)."""
    generator = TextGenerator(config, spec)
    for module in generator.modules():
        if isinstance(module, nn.Conv2d):
            dcgan_init_(module)
    discriminator = TextDiscriminator(config, spec)
    for module in discriminator.modules():
        if isinstance(module, nn.Conv2d):
            dcgan_init_(module)
    return generator, discriminator


def config_for(**overrides: object) -> Config:
    """The family's Config with ``overrides``; ConfigError naming unknown keys."""
    import dataclasses

    valid = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown text2image setting(s) {', '.join(unknown)}; valid settings: {', '.join(valid)}")
    return Config(**overrides)  # type: ignore[arg-type]
