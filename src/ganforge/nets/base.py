"""The generator and discriminator contract that every network family implements.

Trainers and samplers only rely on these two classes, so any family can be swapped in.
"""

from __future__ import annotations

from torch import Tensor, nn

from ganforge.data.spec import DataSpec
from ganforge.nets.layers import check_condition


class Generator(nn.Module):
    """Maps noise ``z`` (B, z_dim) and, for conditional data, ``labels`` (B,) int64 and/or ``cond``
    (B, cond_dim) to samples (B, *spec.shape): in [-1, 1] for images, unbounded for vectors."""

    def __init__(self, spec: DataSpec, z_dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.z_dim = z_dim

    def check_inputs(self, z: Tensor, labels: Tensor | None, cond: Tensor | None) -> None:
        """Raise ValueError with a clear message when the inputs do not match the model."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        check_condition(self.spec.n_classes, self.spec.cond_dim, z.shape[0], labels, cond)

    def forward(self, z: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class Discriminator(nn.Module):
    """Maps samples (B, *spec.shape) and their condition to raw logits (B,): no sigmoid, so losses can
    use the numerically stable ``*_with_logits`` forms."""

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.spec = spec

    def check_inputs(self, x: Tensor, labels: Tensor | None, cond: Tensor | None) -> None:
        """Raise ValueError with a clear message when the inputs do not match the model."""
        if x.dim() != len(self.spec.shape) + 1 or tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.spec.shape))}), got {tuple(x.shape)}")
        check_condition(self.spec.n_classes, self.spec.cond_dim, x.shape[0], labels, cond)

    def forward(self, x: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError
