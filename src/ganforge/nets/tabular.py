"""Networks for table rows (CTGAN, Xu et al. 2019): a residual MLP generator and a packed MLP critic.

A row is the output of `ganforge.data.tabular.TabularTransformer`: blocks ("spans") that are either
one scalar in [-1, 1] (tanh) or a one-hot (softmax). The generator outputs raw scores for every span;
`activate` turns them into a row: tanh for scalars, Gumbel-softmax for one-hots (differentiable, so the
critic's gradient reaches the choice of category).

The critic judges ``pac`` rows at once (PacGAN, against mode collapse): its input is the concatenation
of ``pac`` consecutive rows and their conditions, ``(B / pac, pac * (row_dim + cond_dim))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import ConfigError


@dataclass
class Config:
    """CTGAN's defaults: z 128, G (256, 256) residual, D (256, 256) with LeakyReLU 0.2 and dropout 0.5, pac 10."""

    z_dim: int = 128
    generator_dims: list[int] = field(default_factory=lambda: [256, 256])
    discriminator_dims: list[int] = field(default_factory=lambda: [256, 256])
    pac: int = 10
    dropout: float = 0.5

    def __post_init__(self) -> None:
        self.generator_dims = [int(d) for d in self.generator_dims]
        self.discriminator_dims = [int(d) for d in self.discriminator_dims]
        if self.z_dim < 1 or self.pac < 1 or any(d < 1 for d in self.generator_dims + self.discriminator_dims):
            raise ConfigError("tabular z_dim, pac and layer widths must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"tabular dropout must be in [0, 1), got {self.dropout}")


class Residual(nn.Module):
    """Linear-BatchNorm-ReLU whose output is concatenated to its input (CTGAN's generator block)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.bn = nn.BatchNorm1d(d_out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)  # (B, d_out + d_in)


class TabularGenerator(nn.Module):
    """(z, condition) → raw span scores (B, row_dim); call `activate` to get a row."""

    def __init__(self, z_dim: int, cond_dim: int, row_dim: int, dims: Sequence[int]):
        super().__init__()
        self.z_dim, self.cond_dim, self.row_dim = z_dim, cond_dim, row_dim
        layers: list[nn.Module] = []
        width = z_dim + cond_dim
        for d in dims:
            layers.append(Residual(width, d))
            width += d
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, row_dim)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        x = z if cond is None or cond.shape[1] == 0 else torch.cat([z, cond], dim=1)
        return self.head(self.body(x))


class TabularDiscriminator(nn.Module):
    """Packed rows (+ conditions) → one critic score per pack of ``pac`` rows."""

    def __init__(self, row_dim: int, cond_dim: int, dims: Sequence[int], pac: int = 10, dropout: float = 0.5):
        super().__init__()
        self.pac, self.row_dim, self.cond_dim = pac, row_dim, cond_dim
        layers: list[nn.Module] = []
        width = pac * (row_dim + cond_dim)
        for d in dims:
            layers += [nn.Linear(width, d), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = d
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def pack(self, rows: Tensor, cond: Tensor | None = None) -> Tensor:
        x = rows if cond is None or cond.shape[1] == 0 else torch.cat([rows, cond], dim=1)
        if x.shape[0] % self.pac:
            raise ConfigError(f"the critic judges packs of {self.pac} rows: the batch size ({x.shape[0]}) must be a "
                              "multiple of pac")
        return x.reshape(x.shape[0] // self.pac, self.pac * x.shape[1])  # (B, D) -> (B / pac, pac * D)

    def forward(self, packed: Tensor) -> Tensor:
        return self.body(packed).squeeze(1)  # (B / pac,)


def activate(raw: Tensor, spans: Sequence, tau: float = 0.2, hard: bool = False,
             generator: torch.Generator | None = None) -> Tensor:
    """Raw generator scores → a row: tanh on "tanh" spans, Gumbel-softmax (temperature ``tau``) on the others.

    ``spans`` have ``start``, ``end`` and ``activation``. With ``hard``, one-hots are exact (for sampling).
    Gumbel noise comes from ``generator`` when given, so sampling is reproducible.
    """
    parts = []
    for span in spans:
        x = raw[:, span.start : span.end]
        if span.activation == "tanh":
            parts.append(torch.tanh(x))
        else:
            u = torch.rand(x.shape, generator=generator, device=x.device) if generator is not None \
                else torch.rand_like(x)
            u = u.clamp(1e-20, 1 - 1e-7)  # keep both logarithms finite
            gumbel = -torch.log(-torch.log(u))
            soft = F.softmax((x + gumbel) / tau, dim=1)
            if hard:
                soft = F.one_hot(soft.argmax(1), x.shape[1]).to(soft.dtype)
            parts.append(soft)
    return torch.cat(parts, dim=1)


def build(config: Config, row_dim: int, cond_dim: int) -> tuple[TabularGenerator, TabularDiscriminator]:
    return (TabularGenerator(config.z_dim, cond_dim, row_dim, config.generator_dims),
            TabularDiscriminator(row_dim, cond_dim, config.discriminator_dims, config.pac, config.dropout))
