"""2-D Gaussian mixtures, the standard mode-collapse testbeds, with one fixed definition each.

Papers disagree on these sets (ring radius 1 or 2, std 0.01 or 0.02; one popular demo builds
its ring with ``linspace(0, 2π, 8)`` so that two modes coincide). ganforge fixes:

- ``ring8``: 8 modes at angles 2πk/8, k = 0..7, on a circle of radius 2; std 0.02 per axis.
- ``grid25``: 25 modes at (i, j) for i, j in {-4, -2, 0, 2, 4} (spacing 2); std 0.05 per axis.

Each split is drawn with a fixed seed (train 0, test 1): mode index uniform, then isotropic
Gaussian noise. Labels are the mode index, so the sets can also train conditional models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ganforge.data.spec import DataSpec

TOY_SIZES = {"train": 50_000, "test": 10_000}


@dataclass(frozen=True)
class Mixture:
    """A 2-D Gaussian mixture with equal weights and isotropic components."""

    name: str
    modes: np.ndarray = field(repr=False)  # (K, 2)
    std: float

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, len(self.modes), size=n)
        points = self.modes[labels] + rng.normal(0.0, self.std, size=(n, 2))
        return points.astype(np.float32), labels.astype(np.int64)


RING8 = Mixture(
    "ring8",
    np.array([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)]),
    0.02,
)
GRID25 = Mixture("grid25", np.array([[i, j] for i in range(-4, 5, 2) for j in range(-4, 5, 2)], dtype=float), 0.05)
MIXTURES = {m.name: m for m in (RING8, GRID25)}


@dataclass
class VectorData:
    """A dataset of float vectors (N, D): the counterpart of ``ImageData`` for points and table rows.

    ``values`` is what a network trains on as it is (no [-1, 1] rescaling).
    """

    values: torch.Tensor = field(repr=False)
    labels: torch.Tensor | None = field(repr=False)
    spec: DataSpec
    source: str

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def images(self) -> torch.Tensor:
        """The training tensor, under the name the trainer uses for every dataset."""
        return self.values

    def to_float(self) -> torch.Tensor:
        return self.values.float()

    def resized(self, size: object) -> VectorData:
        from ganforge.errors import ConfigError

        raise ConfigError(f"--image-size applies to images; {self.spec.name} holds 2-D points")


def load_mixture(mixture: Mixture, split: str) -> VectorData:
    points, labels = mixture.sample(TOY_SIZES[split], seed=0 if split == "train" else 1)
    spec = DataSpec(shape=(2,), kind="vector", n_classes=len(mixture.modes), name=mixture.name,
                    class_names=tuple(f"mode {k}" for k in range(len(mixture.modes))))
    source = f"{mixture.name} (std {mixture.std}, {len(mixture.modes)} modes, seed {0 if split == 'train' else 1})"
    return VectorData(torch.from_numpy(points), torch.from_numpy(labels), spec, source)
