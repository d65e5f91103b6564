"""The vanilla GAN (Goodfellow et al. 2014): fully connected G and D, for any data shape.

Images are flattened, so this is the family for small images, odd sizes DCGAN refuses, and vector
data (2-D toy distributions, table rows).
"""

from __future__ import annotations

import math
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
)


@dataclass
class Config:
    """Settings of the MLP GAN; every field can be overridden through ``ganforge.nets.build``."""

    z_dim: int = 100
    hidden_g: tuple[int, ...] = (256, 512, 1024)  # widths of G's hidden layers, input to output
    hidden_d: tuple[int, ...] = (512, 256)  # widths of D's hidden layers, input to output
    negative_slope: float = 0.2  # LeakyReLU slope, in G and D
    embed_dim: int = 32  # size of the condition embedding concatenated to z (and to x with "concat")
    condition: str = "projection"  # how D uses the condition: "projection" or "concat"
    spectral_norm: bool = False  # spectral normalisation on every D weight
    minibatch_std: bool = False  # append the minibatch std feature before D's last linear

    def __post_init__(self) -> None:
        self.hidden_g = _widths("hidden_g", self.hidden_g)
        self.hidden_d = _widths("hidden_d", self.hidden_d)
        if self.z_dim < 1:
            raise ConfigError(f"mlp z_dim must be a positive integer, got {self.z_dim}")
        if self.embed_dim < 1:
            raise ConfigError(f"mlp embed_dim must be a positive integer, got {self.embed_dim}")
        if not 0.0 <= self.negative_slope < 1.0:
            raise ConfigError(f"mlp negative_slope must be in [0, 1), got {self.negative_slope}")
        if self.condition not in CONDITION_MODES:
            raise ConfigError(f"mlp condition must be one of {CONDITION_MODES}, got {self.condition!r}")


def _widths(name: str, widths: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Coerce a list (e.g. from a JSON config) to a tuple of positive ints."""
    widths = tuple(int(w) for w in widths)
    if any(w < 1 for w in widths):
        raise ConfigError(f"mlp {name} must be a sequence of positive layer widths, got {widths}")
    return widths


def _hidden_layers(widths: list[int], negative_slope: float) -> nn.Sequential:
    """Linear + LeakyReLU blocks through ``widths`` (input width first)."""
    layers: list[nn.Module] = []
    for in_features, out_features in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(in_features, out_features), nn.LeakyReLU(negative_slope)]
    return nn.Sequential(*layers)


class MLPGenerator(Generator):
    """z (+ condition embedding) -> Linear+LeakyReLU blocks -> Linear -> tanh for images -> reshape.

    LeakyReLU rather than ReLU: no unit can die and every input keeps a gradient, which matters for
    small G's on low-dimensional data where a few dead units visibly drop modes.
    """

    def __init__(self, config: Config, spec: DataSpec) -> None:
        super().__init__(spec, config.z_dim)
        self.config = config
        self.embed = ConditionEmbedding(spec.n_classes, spec.cond_dim, config.embed_dim) if spec.conditional else None
        in_features = config.z_dim + (config.embed_dim if self.embed is not None else 0)
        self.hidden = _hidden_layers([in_features, *config.hidden_g], config.negative_slope)
        self.output = nn.Linear(config.hidden_g[-1] if config.hidden_g else in_features, math.prod(spec.shape))
        self.squash = nn.Tanh() if spec.kind == "image" else nn.Identity()

    def forward(self, z: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        self.check_inputs(z, labels, cond)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels, cond)], dim=1)  # (B, z_dim + embed_dim)
        x = self.squash(self.output(self.hidden(z)))  # (B, prod(shape))
        return x.view(z.shape[0], *self.spec.shape)  # (B, C, H, W) or (B, D)


class MLPDiscriminator(Discriminator):
    """flatten (+ condition embedding with "concat") -> Linear+LeakyReLU blocks -> phi(x) -> logit,
    plus ``<embed(y), phi(x)>`` with "projection"."""

    def __init__(self, config: Config, spec: DataSpec) -> None:
        super().__init__(spec)
        self.config = config
        concat = spec.conditional and config.condition == "concat"
        self.embed = ConditionEmbedding(spec.n_classes, spec.cond_dim, config.embed_dim) if concat else None
        in_features = math.prod(spec.shape) + (config.embed_dim if concat else 0)
        self.hidden = _hidden_layers([in_features, *config.hidden_d], config.negative_slope)
        feature_dim = config.hidden_d[-1] if config.hidden_d else in_features
        self.minibatch_std = MinibatchStdDev() if config.minibatch_std else None
        feature_dim += 1 if config.minibatch_std else 0
        self.output = nn.Linear(feature_dim, 1)
        projection = spec.conditional and config.condition == "projection"
        self.projection = ProjectionHead(spec.n_classes, spec.cond_dim, feature_dim) if projection else None
        if config.spectral_norm:
            add_spectral_norm_(self)

    def forward(self, x: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        self.check_inputs(x, labels, cond)
        h = x.flatten(1)  # (B, prod(shape))
        if self.embed is not None:
            h = torch.cat([h, self.embed(labels, cond)], dim=1)  # (B, prod(shape) + embed_dim)
        h = self.hidden(h)  # (B, F)
        if self.minibatch_std is not None:
            h = self.minibatch_std(h)  # (B, F + 1)
        logit = self.output(h).squeeze(1)  # (B,)
        if self.projection is not None:
            logit = logit + self.projection(h, labels, cond)
        return logit


def build(config: Config, spec: DataSpec) -> tuple[MLPGenerator, MLPDiscriminator]:
    """Build the (generator, discriminator) pair for ``spec``; PyTorch's default initialisation."""
    return MLPGenerator(config, spec), MLPDiscriminator(config, spec)
