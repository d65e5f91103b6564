"""CycleGAN's networks (Zhu et al. 2017): image-to-image generators and a PatchGAN discriminator.

Unlike the noise-to-image families, these map an image of one domain to an image of another, so
they have their own contract: ``generator(x) -> y`` with ``x`` (B, C_in, H, W) and ``y``
(B, C_out, H, W) in [-1, 1]; ``discriminator(x) -> logits`` (B, 1, h, w), one logit per patch.

- `ResnetGenerator`: c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks, two
  upsamplings, c7s1-C_out, tanh (6 blocks for small images, 9 for 256 px in the paper). Fully
  convolutional: it takes any H and W divisible by 4 and at least 8.
- `UnetGenerator`: ``depth`` encoder/decoder levels with skip connections (pix2pix); H and W divisible
  by 2^depth.
- `PatchDiscriminator`: ``n_layers`` stride-2 convolutions, then two stride-1 ones; receptive field
  16 / 34 / 70 px for 1 / 2 / 3 layers (70x70 at 256 px in the paper). By default the depth is scaled
  to the image, so each patch sees at most about 60% of a small image (28x28 → 1 layer, 16 px).

Every network is checked against the image size at build time, with an error that names the sizes
it takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets.layers import add_spectral_norm_

GENERATORS = ("resnet", "unet")
NORMS = ("instance", "batch", "none")


@dataclass
class Config:
    """Settings of the CycleGAN networks (the reference defaults, except where a small image needs less)."""

    generator: str = "resnet"  # "resnet" or "unet"
    ngf: int = 64  # G's channels after its first convolution
    ndf: int = 64  # D's channels after its first convolution
    n_blocks: int | None = None  # residual blocks of the ResNet generator (None: 9 from 256 px up, else 6)
    unet_depth: int | None = None  # U-Net levels (None: as many as the size allows, at most 8)
    d_layers: int | None = None  # PatchGAN stride-2 layers (None: scaled to the image, 3 = 70x70 patches)
    norm: str = "instance"  # "instance" (reference), "batch" or "none"
    dropout: float = 0.0  # dropout in the residual blocks (the reference's --no_dropout default is off)
    spectral_norm: bool = False  # spectral normalisation of D's convolutions

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ConfigError(f"cyclegan generator must be one of {GENERATORS}, got {self.generator!r}")
        if self.norm not in NORMS:
            raise ConfigError(f"cyclegan norm must be one of {NORMS}, got {self.norm!r}")
        for name in ("ngf", "ndf"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"cyclegan {name} must be a positive integer, got {getattr(self, name)}")
        if self.n_blocks is not None and int(self.n_blocks) < 0:
            raise ConfigError(f"cyclegan n_blocks must be >= 0, got {self.n_blocks}")
        if self.d_layers is not None and not 1 <= int(self.d_layers) <= 6:
            raise ConfigError(f"cyclegan d_layers must be between 1 and 6, got {self.d_layers}")
        if self.unet_depth is not None and int(self.unet_depth) < 1:
            raise ConfigError(f"cyclegan unet_depth must be >= 1, got {self.unet_depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"cyclegan dropout must be in [0, 1), got {self.dropout}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":  # the reference: no affine parameters, no running statistics
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _init_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolutions, N(1, 0.02) norm scales, zero biases: the reference's 'normal' init."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# --- ResNet generator ----------------------------------------------------------------------------------
class ResnetBlock(nn.Module):
    """x + conv-norm-relu-[dropout]-conv-norm(x), with reflection padding (no border artefacts)."""

    def __init__(self, channels: int, norm: str, dropout: float, bias: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                                   _norm(norm, channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks, u2ngf, ungf, c7s1-C_out, tanh (Johnson et al. 2016)."""

    N_DOWN = 2

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 6,
                 norm: str = "instance", dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.multiple = 2**self.N_DOWN  # H and W must be multiples of this
        bias = norm != "batch"  # a batch norm right after would cancel the bias
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   _norm(norm, ngf), nn.ReLU(True)]
        for i in range(self.N_DOWN):  # (B, ngf*2^i, H/2^i, W/2^i) -> (B, ngf*2^(i+1), H/2^(i+1), W/2^(i+1))
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), _norm(norm, 2 * c), nn.ReLU(True)]
        width = ngf * 2**self.N_DOWN
        layers += [ResnetBlock(width, norm, dropout, bias) for _ in range(n_blocks)]
        for i in range(self.N_DOWN):  # back up to (B, ngf, H, W)
            c = width // 2**i
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       _norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        _init_weights(self)

    def check_size(self, height: int, width: int) -> None:
        """Raise ConfigError unless H and W are multiples of 4 and at least 8 (reflection padding at H/4)."""
        for name, n in (("height", height), ("width", width)):
            if n % self.multiple or n < 2 * self.multiple:
                raise ConfigError(
                    f"the ResNet generator takes heights and widths that are multiples of {self.multiple} and at "
                    f"least {2 * self.multiple} (e.g. 28, 32, 64, 128, 256); got {name} {n}. Resize with "
                    "--image-size (training); translating a file pads it to a multiple and crops back"
                )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


# --- U-Net generator -----------------------------------------------------------------------------------
class UnetLevel(nn.Module):
    """One encoder/decoder level around an inner module, with a skip connection (pix2pix's UnetSkipConnection)."""

    def __init__(self, outer: int, inner: int, inner_module: nn.Module | None, norm: str, *,
                 in_channels: int | None = None, out_channels: int | None = None, outermost: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.outermost = outermost
        bias = norm != "batch"
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)  # (B, in, H, W) -> (B, inner, H/2, W/2)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, out_channels or outer, 4, stride=2, padding=1)
            layers = [down, inner_module, nn.ReLU(True), up, nn.Tanh()]
        elif inner_module is None:  # innermost: no norm at the bottleneck (it may be 1x1)
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, _norm(norm, outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, _norm(norm, inner), inner_module, nn.ReLU(True), up,
                      _norm(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], 1)  # (B, in + out, H, W): the skip connection


class UnetGenerator(nn.Module):
    """U-Net of ``depth`` levels: channels ngf, 2ngf, 4ngf, 8ngf, then 8ngf for the deeper levels."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, depth: int = 4, norm: str = "instance",
                 dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.multiple = 2**depth
        widths = [ngf * min(2**i, 8) for i in range(depth)]  # channels after each level's down convolution
        block: nn.Module | None = None
        for i in range(depth - 1, 0, -1):  # build from the innermost level outwards
            block = UnetLevel(widths[i - 1], widths[i], block, norm, dropout=dropout if widths[i] == 8 * ngf else 0)
        self.model = UnetLevel(out_channels, widths[0], block, norm, in_channels=in_channels,
                               out_channels=out_channels, outermost=True) if depth > 1 else \
            nn.Sequential(nn.Conv2d(in_channels, ngf, 4, 2, 1), nn.ReLU(True),
                          nn.ConvTranspose2d(ngf, out_channels, 4, 2, 1), nn.Tanh())
        _init_weights(self)

    def check_size(self, height: int, width: int) -> None:
        for name, n in (("height", height), ("width", width)):
            if n % self.multiple:
                raise ConfigError(
                    f"a U-Net generator of depth {self.multiple.bit_length() - 1} takes heights and widths that are "
                    f"multiples of {self.multiple}; got {name} {n}. Lower --model-opt unet_depth, use the resnet "
                    "generator, or resize with --image-size"
                )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


# --- PatchGAN discriminator ----------------------------------------------------------------------------
def patch_receptive_field(n_layers: int) -> int:
    """Receptive field of `PatchDiscriminator` with ``n_layers`` stride-2 4x4 convolutions (70 for 3)."""
    rf = 1
    for stride in reversed([2] * n_layers + [1, 1]):  # walk back from one output logit
        rf = (rf - 1) * stride + 4
    return rf


def patch_output_size(size: int, n_layers: int) -> int:
    for _ in range(n_layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2  # two 4x4 stride-1 convolutions with padding 1


def default_d_layers(height: int, width: int) -> int:
    """The deepest PatchGAN (at most 3 layers, the reference's 70x70) whose patch is at most 60% of the image."""
    side = min(height, width)
    best = 1
    for n in (1, 2, 3):
        if patch_receptive_field(n) <= 0.6 * side and patch_output_size(side, n) >= 2:
            best = n
    return best


class PatchDiscriminator(nn.Module):
    """C64-C128-C256-C512 (for 3 layers), then a 1-channel convolution: one real/fake logit per patch."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 spectral_norm: bool = False):
        super().__init__()
        self.in_channels, self.n_layers = in_channels, n_layers
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):  # (B, ndf*mult, H/2^n, W/2^n)
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                       _norm(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), _norm(norm, ndf * mult),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        _init_weights(self)
        if spectral_norm:
            add_spectral_norm_(self)

    @property
    def receptive_field(self) -> int:
        return patch_receptive_field(self.n_layers)

    def check_size(self, height: int, width: int) -> None:
        for name, n in (("height", height), ("width", width)):
            out = patch_output_size(n, self.n_layers)
            if out < 1:
                smallest = min(s for s in range(1, 4096) if patch_output_size(s, self.n_layers) >= 1)
                raise ConfigError(
                    f"a PatchGAN discriminator with {self.n_layers} layers needs images of at least {smallest} "
                    f"pixels; got {name} {n}. Lower --model-opt d_layers or resize with --image-size"
                )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)  # (B, 1, h, w) logits, one per patch


# --- building the four networks ------------------------------------------------------------------------
def _image_spec(spec: DataSpec, which: str) -> tuple[int, int, int]:
    if spec.kind != "image":
        raise ConfigError(f"CycleGAN translates images; domain {which} is {spec.kind} data of shape {spec.shape}")
    c, h, w = spec.shape
    return c, h, w


def build_generator(config: Config, in_channels: int, out_channels: int, height: int, width: int) -> nn.Module:
    if config.generator == "resnet":
        n_blocks = config.n_blocks if config.n_blocks is not None else (9 if min(height, width) >= 256 else 6)
        g: nn.Module = ResnetGenerator(in_channels, out_channels, config.ngf, n_blocks, config.norm, config.dropout)
    else:
        depth = config.unet_depth
        if depth is None:  # as deep as H and W allow, keeping the bottleneck at least 1x1, at most 8 levels
            depth = 1
            while depth < 8 and height % 2 ** (depth + 1) == 0 and width % 2 ** (depth + 1) == 0:
                depth += 1
        g = UnetGenerator(in_channels, out_channels, config.ngf, depth, config.norm, config.dropout)
    g.check_size(height, width)
    return g


def build(config: Config, spec_a: DataSpec, spec_b: DataSpec) -> dict[str, nn.Module]:
    """The four networks: ``generator_ab`` (A→B), ``generator_ba`` (B→A), ``discriminator_a``, ``discriminator_b``.

    Domains may differ in channels (e.g. grayscale ↔ RGB) but not in size: both are checked here.
    """
    ca, ha, wa = _image_spec(spec_a, "A")
    cb, hb, wb = _image_spec(spec_b, "B")
    if (ha, wa) != (hb, wb):
        raise ConfigError(f"domains A ({ha}x{wa}) and B ({hb}x{wb}) differ in size; resize both with --image-size")
    d_layers = config.d_layers if config.d_layers is not None else default_d_layers(ha, wa)
    nets = {
        "generator_ab": build_generator(config, ca, cb, ha, wa),
        "generator_ba": build_generator(config, cb, ca, ha, wa),
        "discriminator_a": PatchDiscriminator(ca, config.ndf, d_layers, config.norm, config.spectral_norm),
        "discriminator_b": PatchDiscriminator(cb, config.ndf, d_layers, config.norm, config.spectral_norm),
    }
    for name in ("discriminator_a", "discriminator_b"):
        nets[name].check_size(ha, wa)
    return nets
