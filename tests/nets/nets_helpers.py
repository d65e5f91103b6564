"""Shared helpers for the network tests: conditions, small widths and matching inputs.

A plain module (not conftest.py) with a unique name, so it cannot clash with other test folders."""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.data.spec import DataSpec

N_CLASSES = 10
COND_DIM = 16
CONDITIONS: dict[str, dict[str, int]] = {
    "none": {},
    "labels": {"n_classes": N_CLASSES},
    "vector": {"cond_dim": COND_DIM},
    "both": {"n_classes": N_CLASSES, "cond_dim": COND_DIM},
}
# Small widths: the tests check wiring and shapes, not capacity, and must stay fast on CPU.
SMALL: dict[str, dict[str, object]] = {
    "mlp": {"hidden_g": (32, 32), "hidden_d": (32, 16), "embed_dim": 8},
    "dcgan": {"ngf": 8, "ndf": 8, "embed_dim": 8},
}


def condition_inputs(spec: DataSpec, batch: int) -> tuple[Tensor | None, Tensor | None]:
    """Random labels and/or cond for ``spec`` (None where the spec has no such condition)."""
    labels = torch.randint(0, spec.n_classes, (batch,)) if spec.n_classes else None
    cond = torch.randn(batch, spec.cond_dim) if spec.cond_dim else None
    return labels, cond
