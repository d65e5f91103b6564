"""Video networks: a recurrent convolutional frame predictor with a clip discriminator (future-frame
prediction, Mathieu et al. 2016), and MoCoGAN's content/motion generator with image and video
discriminators (unconditional clips, Tulyakov et al. 2018).

Clips are ``(B, T, C, H, W)`` floats in [-1, 1] throughout.

Why a recurrent encoder-decoder for prediction: a convolutional GRU at 1/2^levels of the frame size
carries the motion state from frame to frame, so one model reads any number of context frames and
rolls out any number of future frames (``predict(context, n_frames)`` with n_frames larger than in
training works), and its cost grows linearly with the clip length. 3-D convolutions would fix both
lengths at build time. Skip connections from the most recent frame's encoder features give the
decoder the appearance of the digits at full resolution; the recurrent state says where they move.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets import dcgan
from ganforge.nets.layers import add_spectral_norm_


@dataclass
class PredictorConfig:
    """Frame predictor (G) and clip discriminator (D) sizes."""

    width: int = 16  # encoder channels at full resolution; doubled at each stride-2 stage
    hidden: int = 64  # channels of the ConvGRU state at the lowest resolution
    levels: int = 3  # stride-2 stages: 64x64 frames -> an 8x8 recurrent state
    max_width: int = 128  # cap on encoder/decoder channels
    ndf: int = 32  # clip discriminator channels at its first stage
    spectral_norm: bool = False  # spectral norm on every D weight

    def __post_init__(self) -> None:
        for name in ("width", "hidden", "levels", "max_width", "ndf"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"video predictor setting {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class GeneratorConfig:
    """MoCoGAN sizes: content and motion latents, the per-frame image generator and both discriminators."""

    content_dim: int = 50  # z_C: one per clip, what is in it
    motion_dim: int = 10  # z_M(t): the GRU's state, how it moves
    motion_noise_dim: int = 10  # ε(t): the GRU's input at each frame
    ngf: int = 32  # image generator channels at its last stage (DCGAN)
    ndf: int = 32  # image and video discriminator channels at their first stage
    image_frames: int = 4  # frames per clip the image discriminator sees (MoCoGAN samples single frames)
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("content_dim", "motion_dim", "motion_noise_dim", "ngf", "ndf", "image_frames"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"video generator setting {name} must be >= 1, got {getattr(self, name)}")


def check_frame_size(height: int, width: int, levels: int) -> None:
    """Frames must halve ``levels`` times evenly; ConfigError naming sizes that work otherwise."""
    factor = 2**levels
    if height % factor or width % factor or min(height, width) // factor < 2:
        raise ConfigError(
            f"the video predictor halves frames {levels} times, so height and width must be multiples of "
            f"{factor} and at least {2 * factor}; got {height}x{width} (e.g. 32x32 or 64x64, or change levels)"
        )


def _check_clips(x: Tensor, channels: int, size: tuple[int, int], what: str) -> None:
    if x.dim() != 5 or x.shape[2] != channels or tuple(x.shape[3:]) != tuple(size):
        raise ValueError(f"{what} must have shape (B, T, {channels}, {size[0]}, {size[1]}), got {tuple(x.shape)}")


class ConvGRUCell(nn.Module):
    """A GRU whose gates are 3x3 convolutions (Ballas et al. 2016): state (B, hidden, h, w)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel, padding=kernel // 2)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel, padding=kernel // 2)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return (1 - update) * h + update * candidate


class FramePredictor(nn.Module):
    """Reads ``context`` (B, K, C, H, W) and returns the next ``n_frames`` (B, n_frames, C, H, W) in [-1, 1].

    Each frame is encoded (stride-2 convs), its lowest-resolution features update a ConvGRU state, and
    the decoder (transposed convs, U-Net skips from the latest frame's features) turns the state into
    the next frame, which is fed back as the next input: at test time the model sees only its own
    predictions, so it is trained that way too (no teacher forcing).
    """

    def __init__(self, config: PredictorConfig, channels: int, size: tuple[int, int]) -> None:
        super().__init__()
        check_frame_size(*size, config.levels)
        self.config, self.channels, self.size = config, channels, tuple(size)
        widths = [min(config.width * 2**i, config.max_width) for i in range(config.levels + 1)]
        self.widths = widths
        self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), nn.GroupNorm(_groups(widths[i + 1]),
                                                                                    widths[i + 1]),
                          nn.LeakyReLU(0.2, inplace=True))
            for i in range(config.levels)
        )
        self.cell = ConvGRUCell(widths[-1], config.hidden)
        ups: list[nn.Module] = []
        c_in = config.hidden
        for i in reversed(range(config.levels)):  # from the lowest resolution up, with the skip of that level
            ups.append(nn.Sequential(nn.ConvTranspose2d(c_in + widths[i + 1], widths[i], 4, 2, 1),
                                     nn.GroupNorm(_groups(widths[i]), widths[i]), nn.ReLU(inplace=True)))
            c_in = widths[i]
        self.up = nn.ModuleList(ups)
        self.head = nn.Sequential(nn.Conv2d(c_in + widths[0], widths[0], 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(widths[0], channels, 3, 1, 1), nn.Tanh())

    def encode(self, frame: Tensor) -> list[Tensor]:
        """Features of one frame (B, C, H, W) at every resolution, full first."""
        feats = [self.stem(frame)]
        for stage in self.down:
            feats.append(stage(feats[-1]))
        return feats

    def decode(self, h: Tensor, skips: list[Tensor]) -> Tensor:
        x = h
        for stage, skip in zip(self.up, reversed(skips[1:]), strict=True):
            x = stage(torch.cat([x, skip], dim=1))
        return self.head(torch.cat([x, skips[0]], dim=1))

    def forward(self, context: Tensor, n_frames: int) -> Tensor:
        _check_clips(context, self.channels, self.size, "context")
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        batch = context.shape[0]
        low = (self.size[0] >> self.config.levels, self.size[1] >> self.config.levels)
        h = context.new_zeros(batch, self.config.hidden, *low)
        feats: list[Tensor] = []
        for t in range(context.shape[1]):
            feats = self.encode(context[:, t])
            h = self.cell(feats[-1], h)
        out = []
        for t in range(n_frames):
            frame = self.decode(h, feats)
            out.append(frame)
            if t + 1 < n_frames:
                feats = self.encode(frame)
                h = self.cell(feats[-1], h)
        return torch.stack(out, dim=1)


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ClipDiscriminator(nn.Module):
    """3-D convolutions over a clip (B, T, C, H, W) to one logit per clip (B,).

    Space halves at every stage until 4x4; time halves while at least 4 frames remain, so clips of any
    length work. Sees the whole window (context and future), so it can judge whether the future is a
    plausible continuation, not only whether its frames look real.
    """

    def __init__(self, channels: int, size: tuple[int, int], frames: int, ndf: int = 32,
                 spectral_norm: bool = False, max_width: int = 256) -> None:
        super().__init__()
        if frames < 1:
            raise ConfigError(f"a clip discriminator needs at least one frame, got {frames}")
        self.channels, self.size, self.frames = channels, tuple(size), frames
        layers: list[nn.Module] = []
        c_in, c_out, t, s = channels, ndf, frames, min(size)
        while s > 4:
            stride_t = 2 if t >= 4 else 1
            layers += [nn.Conv3d(c_in, c_out, (3, 4, 4), (stride_t, 2, 2), (1, 1, 1)),
                       nn.LeakyReLU(0.2, inplace=True)]
            t = (t - 1) // stride_t + 1
            s //= 2
            c_in, c_out = c_out, min(c_out * 2, max_width)
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(c_in, 1)
        if spectral_norm:
            add_spectral_norm_(self)

    def forward(self, clips: Tensor) -> Tensor:
        _check_clips(clips, self.channels, self.size, "clips")
        h = self.features(clips.transpose(1, 2))  # (B, T, C, H, W) -> (B, C, T, H, W) -> (B, F, t, h, w)
        return self.out(h.mean(dim=(2, 3, 4))).view(-1)


def build_predictor(config: PredictorConfig, channels: int, size: tuple[int, int], frames: int
                    ) -> tuple[FramePredictor, ClipDiscriminator]:
    """(frame predictor, clip discriminator over ``frames`` = context + future frames)."""
    generator = FramePredictor(config, channels, size)
    discriminator = ClipDiscriminator(channels, size, frames, config.ndf, config.spectral_norm)
    return generator, discriminator


# --- MoCoGAN ---------------------------------------------------------------------------------------------
class VideoGenerator(nn.Module):
    """MoCoGAN's generator: a GRU turns per-frame noise ε(t) into motion codes z_M(t); each frame is a
    DCGAN image generator applied to [z_C, z_M(t)] with one content code z_C per clip, so content stays
    fixed while the motion trajectory varies."""

    def __init__(self, config: GeneratorConfig, channels: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.config, self.channels, self.size = config, channels, tuple(size)
        self.motion = nn.GRUCell(config.motion_noise_dim, config.motion_dim)
        image_config = dcgan.Config(z_dim=config.content_dim + config.motion_dim, ngf=config.ngf, ndf=config.ndf)
        self.image = dcgan.DCGANGenerator(image_config, DataSpec((channels, *size)))
        self.image.apply(dcgan.dcgan_init_)

    def latents(self, n: int, frames: int, generator: torch.Generator, device: torch.device | str
                ) -> tuple[Tensor, Tensor, Tensor]:
        """(z_C (n, content), ε (n, frames, noise), h0 (n, motion)) drawn from ``generator``."""
        c = self.config
        z_c = torch.randn(n, c.content_dim, generator=generator, device=device)
        eps = torch.randn(n, frames, c.motion_noise_dim, generator=generator, device=device)
        h0 = torch.randn(n, c.motion_dim, generator=generator, device=device)
        return z_c, eps, h0

    def forward(self, z_content: Tensor, motion_noise: Tensor, h0: Tensor) -> Tensor:
        batch, frames = motion_noise.shape[:2]
        h, codes = h0, []
        for t in range(frames):
            h = self.motion(motion_noise[:, t], h)
            codes.append(h)
        z_m = torch.stack(codes, dim=1)  # (B, T, motion)
        z = torch.cat([z_content[:, None].expand(-1, frames, -1), z_m], dim=2).reshape(batch * frames, -1)
        images = self.image(z)  # (B*T, C, H, W)
        return images.view(batch, frames, self.channels, *self.size)


def build_generator(config: GeneratorConfig, channels: int, size: tuple[int, int], frames: int
                    ) -> tuple[VideoGenerator, nn.Module, ClipDiscriminator]:
    """(video generator, image discriminator (DCGAN, single frames), video discriminator (3-D convs))."""
    dcgan.stages(*size)  # a ConfigError naming the supported sizes
    generator = VideoGenerator(config, channels, size)
    image_config = dcgan.Config(ndf=config.ndf, spectral_norm=config.spectral_norm)
    image_d = dcgan.DCGANDiscriminator(image_config, DataSpec((channels, *size)))
    image_d.apply(dcgan.dcgan_init_)
    video_d = ClipDiscriminator(channels, size, frames, config.ndf, config.spectral_norm)
    return generator, image_d, video_d
