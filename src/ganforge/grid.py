"""Image grids and conversions between model tensors and pictures (Pillow only)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] → uint8 array (N, C, H, W)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).numpy()


def make_grid(images: np.ndarray, nrow: int, padding: int = 2, min_cell: int = 32) -> np.ndarray:
    """Tile uint8 images (N, C, H, W) into one (H', W', C) picture, ``nrow`` images per row.

    Small images are enlarged by an integer factor (nearest neighbour) so that each cell is at
    least ``min_cell`` pixels tall: an 8x8 digit is unreadable at its own size.
    """
    n, c, h, w = images.shape
    scale = max(1, math.ceil(min_cell / h))
    if scale > 1:
        images = images.repeat(scale, axis=2).repeat(scale, axis=3)
        h, w = h * scale, w * scale
    ncol = max(1, nrow)
    nrows = math.ceil(n / ncol)
    grid = np.zeros((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i].transpose(1, 2, 0)  # (H, W, C)
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8) -> Path:
    """Save (N, C, H, W) images in [-1, 1] as a PNG grid, written atomically."""
    grid = make_grid(to_uint8(images), nrow)
    return _save_png(Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid[:, :, :3]), path)


def _save_png(pic: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically (temp file + rename): a reader never sees half a picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pic.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def save_scatter(
    points: torch.Tensor,
    path: str | os.PathLike,
    reference: torch.Tensor | None = None,
    size: int = 400,
    extent: float | None = None,
) -> Path:
    """Save 2-D points as a PNG scatter plot (`scatter_image`), written atomically."""
    return _save_png(scatter_image(points, reference, size, extent), path)


def scatter_image(
    points: torch.Tensor,
    reference: torch.Tensor | None = None,
    size: int = 400,
    extent: float | None = None,
) -> Image.Image:
    """2-D points as a scatter plot picture (generated in red over ``reference`` in grey).

    ``extent`` is the half-width of the square shown; by default it fits every point with a margin.
    """
    from PIL import ImageDraw

    pts = points.detach().float().cpu().numpy()[:, :2]
    ref = reference.detach().float().cpu().numpy()[:, :2] if reference is not None else None
    if extent is None:
        both = pts if ref is None else np.concatenate([pts, ref])
        finite = both[np.isfinite(both).all(axis=1)]
        extent = float(np.abs(finite).max()) * 1.1 if len(finite) else 1.0
        extent = max(extent, 1e-6)
    pic = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(pic)
    centre = size / 2
    draw.line([(0, centre), (size, centre)], fill=(225, 225, 225))
    draw.line([(centre, 0), (centre, size)], fill=(225, 225, 225))

    def plot(xy: np.ndarray, colour: tuple[int, int, int]) -> None:
        for x, y in xy[np.isfinite(xy).all(axis=1)]:
            u, v = centre + x / extent * centre, centre - y / extent * centre  # y axis points up
            draw.rectangle([u - 1, v - 1, u + 1, v + 1], fill=colour)

    if ref is not None:
        plot(ref, (160, 160, 160))
    plot(pts, (214, 39, 40))
    return pic
