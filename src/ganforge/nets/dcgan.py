"""DCGAN (Radford et al. 2016), generalised from 64x64 to any image with H and W in [8, 256].

At 64x64 with the default config and no condition, G and D are exactly the pytorch/examples DCGAN
(same layers in the same order, same ``main.N`` state_dict keys, D minus its final Sigmoid; same
weights for the same seed), so benchmarks compare the same model and its checkpoints load as they are.

Other sizes: ``k`` stride-2 stages, the largest k >= 1 with H and W divisible by 2^k and
min(H, W) / 2^k >= 4; G's first transposed conv maps 1x1 to the ``base`` size (H/2^k, W/2^k) and D's
last conv maps ``base`` to 1x1.

``extra_layers`` adds depth without changing the sizes: that many stride-1 3x3 conv + BN + activation layers
at the highest hidden resolution (H/2 x W/2), in G before its output layer and in D after its first layer (as the
``n_extra_layers`` of the WGAN authors' DCGAN code). At 28x28 DCGAN has only two stride-2 stages, against
four layers in the Stacked MNIST networks of the PacGAN and VEEGAN papers; this is the way to match them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets.base import Discriminator, Generator
from ganforge.nets.layers import (
    CONDITION_MODES,
    ConditionEmbedding,
    MinibatchStdDev,
    ProjectionHead,
    add_spectral_norm_,
    refresh_spectral_norm_,
    weight_of,
)

MIN_SIZE = 8
MAX_SIZE = 256
MIN_BASE = 4
SUPPORTED_SIZES = (
    f"DCGAN needs H and W between {MIN_SIZE} and {MAX_SIZE}, both even, with a common power-of-two "
    f"factor 2^k (k >= 1) such that min(H, W) / 2^k >= {MIN_BASE}: e.g. 8x8, 28x28, 32x32, 64x64, "
    "48x64, 256x256 (not odd sizes such as 27 or 9); use the 'mlp' family for other sizes"
)


@dataclass
class Config:
    """Settings of DCGAN; every field can be overridden through ``ganforge.nets.build``."""

    z_dim: int = 100
    ngf: int = 64  # G's channels at its last stage (highest resolution)
    ndf: int = 64  # D's channels at its first stage
    max_mult: int = 8  # cap on the channel multiplier, so large images do not blow up the width
    embed_dim: int = 32  # size of the condition embedding (concatenated to z, and to x with "concat")
    condition: str = "projection"  # how D uses the condition: "projection" or "concat"
    spectral_norm: bool = False  # spectral norm on every D weight; D's BatchNorm is then dropped
    minibatch_std: bool = False  # append the minibatch std map before D's final conv
    extra_layers: int = 0  # stride-1 3x3 conv layers at H/2 in G (before its output layer) and in D (after its first)

    def __post_init__(self) -> None:
        for name in ("z_dim", "ngf", "ndf", "max_mult", "embed_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"dcgan {name} must be a positive integer, got {getattr(self, name)}")
        if int(self.extra_layers) < 0:
            raise ConfigError(f"dcgan extra_layers must be 0 or more, got {self.extra_layers}")
        if self.condition not in CONDITION_MODES:
            raise ConfigError(f"dcgan condition must be one of {CONDITION_MODES}, got {self.condition!r}")


def stages(height: int, width: int) -> tuple[int, tuple[int, int]]:
    """The number k of stride-2 stages and the base size (H/2^k, W/2^k); ConfigError if unsupported."""
    if not (MIN_SIZE <= height <= MAX_SIZE and MIN_SIZE <= width <= MAX_SIZE):
        raise ConfigError(f"{SUPPORTED_SIZES}; got {height}x{width}")
    k = 0
    while height % 2 ** (k + 1) == 0 and width % 2 ** (k + 1) == 0 and min(height, width) // 2 ** (k + 1) >= MIN_BASE:
        k += 1
    if k == 0:
        raise ConfigError(f"{SUPPORTED_SIZES}; got {height}x{width}")
    return k, (height // 2**k, width // 2**k)


def multipliers(k: int, max_mult: int) -> list[int]:
    """Channel multipliers from the base resolution up: min(2^(k-1-i), max_mult) for stage i."""
    return [min(2 ** (k - 1 - i), max_mult) for i in range(k)]


def _check_spec(spec: DataSpec) -> tuple[int, tuple[int, int]]:
    if spec.kind != "image":
        raise ConfigError(
            f"DCGAN builds image networks (shape (C, H, W)); got a {spec.kind} spec of shape {spec.shape}: "
            "use the 'mlp' family for vector data"
        )
    return stages(spec.height, spec.width)


class DCGANGenerator(Generator):
    """ConvTranspose(z -> base) + BN + ReLU, then stride-2 ConvTranspose + BN + ReLU stages halving the
    channels, then ConvTranspose to the image channels + Tanh. z (and the condition embedding) enter as
    a 1x1 map."""

    def __init__(self, config: Config, spec: DataSpec) -> None:
        super().__init__(spec, config.z_dim)
        self.config = config
        k, base = _check_spec(spec)
        self.embed = ConditionEmbedding(spec.n_classes, spec.cond_dim, config.embed_dim) if spec.conditional else None
        in_channels = config.z_dim + (config.embed_dim if self.embed is not None else 0)
        widths = [config.ngf * m for m in multipliers(k, config.max_mult)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_channels, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for in_width, out_width in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.ConvTranspose2d(in_width, out_width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(out_width),
                nn.ReLU(True),
            ]
        for _ in range(config.extra_layers):
            layers += [nn.Conv2d(widths[-1], widths[-1], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[-1]),
                       nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], spec.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)  # named as in pytorch/examples, for checkpoint compatibility

    def forward(self, z: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        self.check_inputs(z, labels, cond)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels, cond)], dim=1)  # (B, z_dim + embed_dim)
        return self.main(z[:, :, None, None])  # (B, z_dim [+ embed_dim], 1, 1) -> (B, C, H, W)


class DCGANDiscriminator(Discriminator):
    """Conv + LeakyReLU, then stride-2 Conv + BN + LeakyReLU stages doubling the channels, then a conv
    over the whole base map to one logit. With spectral norm the BatchNorms are dropped, as in Miyato
    et al. 2018: BN divides by the batch std, which can undo the Lipschitz bound SN gives each layer;
    those convs get a bias in place of BN's shift.

    Projection: phi(x) is the input of the final conv summed over space, and the logit gains
    ``<embed(y), phi(x)>``. Concat: the condition embedding is broadcast as extra input channels; it goes
    into the input rather than the last features because the final conv is linear, so a condition
    concatenated there could only shift the logit, never interact with the image.
    """

    def __init__(self, config: Config, spec: DataSpec) -> None:
        super().__init__(spec)
        self.config = config
        k, base = _check_spec(spec)
        concat = spec.conditional and config.condition == "concat"
        self.embed = ConditionEmbedding(spec.n_classes, spec.cond_dim, config.embed_dim) if concat else None
        in_channels = spec.channels + (config.embed_dim if concat else 0)
        widths = [config.ndf * m for m in reversed(multipliers(k, config.max_mult))]
        batch_norm = not config.spectral_norm
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        convs = [(widths[0], widths[0], 3, 1)] * config.extra_layers  # (in, out, kernel, stride)
        convs += [(in_width, out_width, 4, 2) for in_width, out_width in zip(widths[:-1], widths[1:], strict=True)]
        for in_width, out_width, kernel, stride in convs:
            layers.append(nn.Conv2d(in_width, out_width, kernel, stride, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        feature_dim = widths[-1]
        if config.minibatch_std:
            layers.append(MinibatchStdDev())
            feature_dim += 1
        layers.append(nn.Conv2d(feature_dim, 1, base, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)  # named as in pytorch/examples, for checkpoint compatibility
        projection = spec.conditional and config.condition == "projection"
        self.projection = ProjectionHead(spec.n_classes, spec.cond_dim, feature_dim) if projection else None
        if config.spectral_norm:
            add_spectral_norm_(self)

    def forward(self, x: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        self.check_inputs(x, labels, cond)
        batch, _, height, width = x.shape
        if self.embed is not None:
            embedding = self.embed(labels, cond)[:, :, None, None]  # (B, E, 1, 1)
            x = torch.cat([x, embedding.expand(-1, -1, height, width)], dim=1)  # (B, C + E, H, W)
        *features, final = self.main
        h = x
        for layer in features:
            h = layer(h)  # ends at (B, F, base_h, base_w)
        logit = final(h).view(batch)  # (B, 1, 1, 1) -> (B,)
        if self.projection is not None:
            logit = logit + self.projection(h.sum(dim=(2, 3)), labels, cond)  # phi(x): (B, F)
        return logit


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN's initialisation, as pytorch/examples ``weights_init``: conv weights N(0, 0.02),
    BatchNorm weights N(1, 0.02) and biases 0. Use as ``model.apply(dcgan_init_)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(weight_of(module), 0.0, 0.02)
        refresh_spectral_norm_(module)  # no-op without spectral norm
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build(config: Config, spec: DataSpec) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """Build and initialise (generator, discriminator) for ``spec``.

    Same order as pytorch/examples main.py (create G, init G, create D, init D), so a seed gives the
    same weights there and here.
    """
    generator = DCGANGenerator(config, spec)
    generator.apply(dcgan_init_)
    discriminator = DCGANDiscriminator(config, spec)
    discriminator.apply(dcgan_init_)
    return generator, discriminator
