"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

The same random transformations are applied to real and generated images every time D sees
them, in both phases, and they are differentiable, so the generator is trained through them.
D then cannot memorise the (small) training set, and G is not pushed to reproduce the
augmentations, because they are applied to both sides. Three policies, as in the paper:

- ``color``: per-image brightness shift in [-0.5, 0.5), saturation scale in [0, 2), contrast
  scale in [0.5, 1.5) (images in [-1, 1]; the shift is applied on that scale);
- ``translation``: per-image shift by up to 1/8 of the height and width, zero padded;
- ``cutout``: per-image zeroed square of half the height and width at a random place.

Randomness comes from torch's global generator on the images' device, whose state a
checkpoint saves, so a resumed run draws the same augmentations.

    >>> import torch
    >>> x = torch.zeros(4, 3, 16, 16)
    >>> diff_augment(x, ("translation", "cutout")).shape
    torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import ConfigError


def _rand(x: Tensor, *shape: int) -> Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast, per image."""
    x = x + (_rand(x, 1, 1, 1) - 0.5)
    if x.shape[1] > 1:  # saturation only means something with several channels
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size (integer pixels), filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1) + dy  # source row of each output row
    xs = torch.arange(w, device=x.device).view(1, 1, w) + dx
    ys = (ys + 1).clamp(0, h + 1).expand(b, h, w)  # index into a 1-pixel zero border
    xs = (xs + 1).clamp(0, w + 1).expand(b, h, w)
    padded = F.pad(x, (1, 1, 1, 1))
    flat = padded.flatten(2)  # (B, C, (H+2)(W+2))
    index = (ys * (w + 2) + xs).flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1)
    return flat.gather(2, index).view_as(x)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of ``ratio`` times the image size at a random position in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy + ch // 2).clamp(min=0) < ch) & ((ys - cy + ch // 2) >= 0)
    inside = inside & ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, Callable[[Tensor], Tensor]] = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"color,translation"`` → ("color", "translation"); refuse unknown names."""
    if not text:
        return ()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ConfigError(f"--diffaugment: unknown policy {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return tuple(names)


def diff_augment(x: Tensor, policy: Sequence[str]) -> Tensor:
    """Apply the named augmentations in order to a batch of images (B, C, H, W)."""
    if policy and x.dim() != 4:
        raise ConfigError(f"--diffaugment works on images (B, C, H, W); this data has shape {tuple(x.shape[1:])}")
    for name in policy:
        x = POLICIES[name](x)
    return x
