"""The data spec: what a network family needs to know about the data to build itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataSpec:
    """Shape and conditioning of a dataset, independent of where it came from.

    ``shape`` is ``(C, H, W)`` for images and ``(D,)`` for vectors (2-D points, table rows).
    ``n_classes`` is 0 for unlabelled data; ``cond_dim`` is the size of a vector condition
    (e.g. a text embedding), 0 when there is none.
    """

    shape: tuple[int, ...]
    kind: str = "image"  # "image" | "vector"
    n_classes: int = 0
    cond_dim: int = 0
    name: str = ""
    class_names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.kind not in ("image", "vector"):
            raise ValueError(f"DataSpec.kind must be 'image' or 'vector', got {self.kind!r}")
        if self.kind == "image" and len(self.shape) != 3:
            raise ValueError(f"an image DataSpec needs shape (C, H, W), got {self.shape}")

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0 or self.cond_dim > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(**{**d, "shape": tuple(d["shape"]), "class_names": tuple(d.get("class_names", ()))})
