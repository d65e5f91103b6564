"""Image datasets in memory: the ``ImageData`` container and loaders for arrays and image folders.

Every loader ends in the same place: a uint8 ``(N, C, H, W)`` tensor, optional int64 labels
and a ``DataSpec``, so the rest of ganforge never cares where the pixels came from.
"""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError, GanforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Modes Pillow uses for single-channel images (bilevel, 8-bit, with alpha, 16/32-bit).
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_RESAMPLE = Image.Resampling.LANCZOS
_FLOAT_TOLERANCE = 1e-6


@dataclass
class ImageData:
    """A whole image dataset as tensors: what a trainer, a metric or a sample grid consumes.

    ``images`` is uint8 ``(N, C, H, W)`` (kept compact; ``to_float`` gives the [-1, 1] view
    networks train on), ``labels`` is int64 ``(N,)`` or ``None`` for unlabelled data.
    """

    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor | None = field(repr=False)
    spec: DataSpec
    source: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                "ImageData.images must be uint8 (N, C, H, W), "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        self.images = self.images.contiguous()
        if self.labels is not None:
            if self.labels.shape != (self.images.shape[0],):
                raise ValueError(
                    f"ImageData.labels must have shape ({self.images.shape[0]},), "
                    f"got {tuple(self.labels.shape)}"
                )
            self.labels = self.labels.to(torch.int64).contiguous()
        if tuple(self.images.shape[1:]) != self.spec.shape:
            raise ValueError(f"images are {tuple(self.images.shape[1:])} but spec.shape is {self.spec.shape}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.spec.name!r}, n={len(self)}, shape={self.spec.shape}, "
            f"n_classes={self.spec.n_classes}, source={self.source!r})"
        )

    def to_float(self) -> torch.Tensor:
        """Images as float32 in [-1, 1] (``x / 127.5 - 1``), the range a tanh generator produces."""
        return to_model_range(self.images)

    def resized(self, size: int | tuple[int, int]) -> ImageData:
        """A copy with every image resized to ``size`` (``int`` or ``(height, width)``) by Lanczos."""
        target = parse_size(size)
        if target is None or target == tuple(self.images.shape[2:]):
            return self
        height, width = target
        images = resize_images(self.images, (height, width))
        spec = replace(self.spec, shape=(self.spec.channels, height, width))
        return ImageData(images=images, labels=self.labels, spec=spec, source=self.source)


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float32 in [-1, 1] (``x / 127.5 - 1``); float tensors (already model values) pass as float32.

    Index before converting (``to_model_range(images[idx])``): converting a whole dataset first
    costs four times its memory for nothing.
    """
    return x.to(torch.float32) / 127.5 - 1.0 if x.dtype == torch.uint8 else x.to(torch.float32)


def parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as ``(height, width)``; an ``int`` means a square. ``None`` passes through."""
    if size is None:
        return None
    pair = [size, size] if isinstance(size, int) else list(size) if isinstance(size, Sequence) else []
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ConfigError(f"size must be a positive int or (height, width), got {size!r}")
    return pair[0], pair[1]


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` images to ``size`` = (height, width) with Pillow's Lanczos.

    Pillow rather than ``torch.nn.functional.interpolate`` so that arrays and image folders go
    through the same filter (resize filters are a known source of metric mismatches).
    """
    height, width = size
    n, channels = images.shape[:2]
    if tuple(images.shape[2:]) == (height, width):
        return images
    if channels not in (1, 3):
        raise ValueError(f"can only resize 1- or 3-channel images, got {channels} channels")
    hwc = images.permute(0, 2, 3, 1).numpy()
    out = np.empty((n, height, width, channels), dtype=np.uint8)
    for i in range(n):
        pixels = hwc[i, :, :, 0] if channels == 1 else hwc[i]
        resized = np.asarray(Image.fromarray(pixels).resize((width, height), _RESAMPLE))
        out[i] = resized.reshape(height, width, channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------
# arrays (.npy / .npz)


def array_to_images(array: np.ndarray, what: str) -> torch.Tensor:
    """Convert an image array to a uint8 ``(N, C, H, W)`` tensor; ``what`` names it in errors.

    Accepted layouts: ``(N, H, W)``; ``(N, H, W, C)`` with C in {1, 3, 4}; ``(N, C, H, W)`` with
    C in {1, 3} (when both readings fit, channels-first wins). Four channels are RGBA and are
    composited on black. Values: uint8 as-is; other integers must lie in 0..255; floats in
    [0, 1] are scaled by 255, and floats with negatives are read as [-1, 1] and mapped by
    ``(x + 1) / 2`` first (so a [-1, 1] array with no negative value is read as [0, 1]).
    """
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]  # (N, 1, H, W)
    elif a.ndim == 4:
        first, last = a.shape[1], a.shape[3]
        if first in (1, 3):
            pass  # already (N, C, H, W)
        elif last in (1, 3, 4):
            a = a.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        else:
            raise GanforgeError(
                f"{what}: cannot tell the channel axis of shape {a.shape}; expected (N, H, W), "
                "(N, H, W, C) with C in 1/3/4, or (N, C, H, W) with C in 1/3"
            )
    else:
        raise GanforgeError(
            f"{what}: expected image arrays of shape (N, H, W), (N, H, W, C) or (N, C, H, W), "
            f"got shape {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[2] == 0 or a.shape[3] == 0:
        raise GanforgeError(f"{what}: holds no images (shape {a.shape})")
    a = _to_uint8(a, what)
    if a.shape[1] == 4:
        a = _composite_on_black(a)
    return torch.from_numpy(np.ascontiguousarray(a))


def _to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        low, high = int(a.min()), int(a.max())
        if low < 0 or high > 255:
            raise GanforgeError(
                f"{what}: integer pixel values must lie in 0..255, found {low}..{high}; rescale the array"
            )
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float64)
        if not np.isfinite(x).all():
            raise GanforgeError(f"{what}: contains NaN or infinite values; clean the array first")
        lo, hi = float(x.min()), float(x.max())
        tol = _FLOAT_TOLERANCE
        if lo < -tol and lo >= -1 - tol and hi <= 1 + tol:
            x += 1.0
            x /= 2.0
        elif lo < -tol or hi > 1 + tol:
            raise GanforgeError(
                f"{what}: float pixel values must lie in [0, 1] (or [-1, 1]), found [{lo:.4g}, {hi:.4g}]; "
                "scale it (e.g. x / 255) or save it as uint8"
            )
        np.clip(x, 0.0, 1.0, out=x)  # in place: these arrays can be large
        x *= 255.0
        return np.rint(x, out=x).astype(np.uint8)
    raise GanforgeError(f"{what}: unsupported dtype {a.dtype}; save the images as uint8 or float in [0, 1]")


def _composite_on_black(nchw: np.ndarray) -> np.ndarray:
    """RGBA (N, 4, H, W) -> RGB over a black background, so transparent pixels become black."""
    alpha = nchw[:, 3:4].astype(np.float32) / 255.0
    return np.rint(nchw[:, :3].astype(np.float32) * alpha).astype(np.uint8)


def labels_to_tensor(labels: np.ndarray, n: int, what: str) -> torch.Tensor:
    """Validate class labels (1-D, ``n`` long, non-negative whole numbers) and return int64."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise GanforgeError(f"{what}: labels must have shape ({n},) to match the images, got {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise GanforgeError(f"{what}: labels must be whole numbers (class indices)")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise GanforgeError(f"{what}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and int(y.min()) < 0:
        raise GanforgeError(f"{what}: labels must be class indices >= 0, found {int(y.min())}")
    return torch.from_numpy(np.ascontiguousarray(y))


def _image_data(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    name: str,
    source: str,
    class_names: Sequence[str] = (),
    n_classes: int | None = None,
) -> ImageData:
    if labels is None:
        n_classes = 0
    elif n_classes is None:
        n_classes = max(int(labels.max()) + 1 if len(labels) else 0, len(class_names))
    spec = DataSpec(
        shape=tuple(images.shape[1:]),
        kind="image",
        n_classes=n_classes,
        name=name,
        class_names=tuple(class_names),
    )
    return ImageData(images=images, labels=labels, spec=spec, source=source)


def _no_test_split(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"{path} is {what} and has no test split: use split='train' (all of it), "
        "or keep test data in a separate file or folder and load that path"
    )


def load_npy(path: Path, split: str = "train") -> ImageData:
    """Load an unlabelled image array saved with ``np.save`` (layouts as in ``array_to_images``)."""
    if split != "train":
        raise _no_test_split(path, "a .npy array")
    array = _np_load(path)
    if not isinstance(array, np.ndarray):
        raise GanforgeError(f"{path}: expected one array saved with np.save")
    images = array_to_images(array, str(path))
    return _image_data(images, None, name=path.stem, source=str(path))


def load_npz(path: Path, split: str = "train") -> ImageData:
    """Load a ``.npz`` image archive.

    Keys, first match wins: ``x_train/y_train/x_test/y_test`` (``split`` picks one pair),
    ``x`` (+ optional ``y``), ``images`` (+ optional ``labels``). An optional ``class_names``
    string array names the classes. Labels become int64 and ``n_classes = max label + 1``.
    """
    archive = _np_load(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise GanforgeError(f"{path}: not a .npz archive")
    with archive:
        keys = set(archive.files)
        if f"x_{split}" in keys:
            x_key, y_key = f"x_{split}", f"y_{split}"
        elif "x_train" in keys or "x_test" in keys:
            raise ConfigError(f"{path} has no 'x_{split}' array (it has {sorted(keys)}); use another split")
        elif "x" in keys:
            x_key, y_key = "x", "y"
        elif "images" in keys:
            x_key, y_key = "images", "labels"
        else:
            raise GanforgeError(
                f"{path}: found arrays {sorted(keys)}; expected x_train/y_train/x_test/y_test, "
                "or x (+ y), or images (+ labels)"
            )
        if x_key in ("x", "images") and split != "train":
            raise _no_test_split(path, "a single-split .npz archive")
        what = f"{path}[{x_key!r}]"
        images = array_to_images(_npz_array(archive, x_key, path), what)
        labels = None
        if y_key in keys:
            labels = labels_to_tensor(_npz_array(archive, y_key, path), len(images), f"{path}[{y_key!r}]")
        class_names: tuple[str, ...] = ()
        if "class_names" in keys and labels is not None:
            class_names = tuple(str(c) for c in _npz_array(archive, "class_names", path).reshape(-1))
            if class_names and int(labels.max()) >= len(class_names):
                raise GanforgeError(
                    f"{path}: labels go up to {int(labels.max())} but class_names has only "
                    f"{len(class_names)} names"
                )
    return _image_data(images, labels, name=path.stem, source=str(path), class_names=class_names)


def _np_load(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    # allow_pickle=False: an array file must never be able to run code.
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GanforgeError(
            f"cannot read {path}: {exc}; check that the file is a complete NumPy file"
        ) from exc


def _npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise GanforgeError(f"cannot read array {key!r} from {path}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# image folders


def list_images(folder: Path) -> list[Path]:
    """All PNG/JPEG files under ``folder`` (recursive, any suffix case), sorted; hidden entries skipped."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):  # symlinked class folders are common
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop: do not walk the same folder twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(Path(root, name))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def load_image_folder(folder: Path, split: str = "train", size: tuple[int, int] | None = None) -> ImageData:
    """Load every PNG/JPEG under ``folder`` (recursively) as one dataset.

    Labels: when every image sits inside a direct sub-folder and there are at least two such
    sub-folders, the sorted sub-folder names are the classes; otherwise the data is unlabelled
    (one sub-folder is just a container, not a class). Channels: grayscale when every image is
    single-channel (modes 1/L/LA/I;16), RGB otherwise; alpha is composited on black, so
    transparent areas become black. Sizes: images are resized (Lanczos) to ``size`` when given,
    else to the most common size (ties: the largest), with a ``UserWarning`` when sizes differ.
    A folder has no test split: ``split='train'`` means all images, ``'test'`` is an error.
    """
    if split != "train":
        raise _no_test_split(folder, "an image folder")
    paths = list_images(folder)
    if not paths:
        raise GanforgeError(
            f"no images found in folder {folder}: looked recursively for *.png, *.jpg, *.jpeg; "
            "put the images there or give another folder"
        )

    modes, sizes = [], []
    for path in paths:
        with _open_image(path) as image:
            modes.append(image.mode)
            sizes.append((image.height, image.width))  # (H, W), the order ganforge uses everywhere
    gray = all(mode in _GRAY_MODES for mode in modes)

    counts = Counter(sizes)
    if size is not None:
        target = size
    else:
        target = max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw))
    n_resized = sum(1 for hw in sizes if hw != target)
    if len(counts) > 1:
        why = "the size you asked for" if size is not None else "the most common size"
        warnings.warn(
            f"images in {folder} have {len(counts)} different sizes; resized {n_resized} of {len(paths)} "
            f"images to {target[0]}x{target[1]} (height x width), {why}; pass size=... to choose another",
            UserWarning,
            stacklevel=3,
        )

    channels = 1 if gray else 3
    out = np.empty((len(paths), target[0], target[1], channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        with _open_image(path) as image:
            try:
                pixels = _decode(image, gray, target)
            except (OSError, ValueError, SyntaxError) as exc:
                raise GanforgeError(f"cannot read image {path}: {exc}; remove or replace the file") from exc
        out[i] = pixels.reshape(target[0], target[1], channels)
    images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)

    relative = [p.relative_to(folder).parts for p in paths]
    class_names = sorted({parts[0] for parts in relative if len(parts) > 1})
    labels = None
    if all(len(parts) > 1 for parts in relative) and len(class_names) > 1:
        index = {name: i for i, name in enumerate(class_names)}
        labels = torch.tensor([index[parts[0]] for parts in relative], dtype=torch.int64)
    else:
        class_names = []
    return _image_data(
        images, labels, name=folder.resolve().name, source=str(folder), class_names=class_names
    )


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise GanforgeError(f"cannot read image {path}: {exc}; remove or replace the file") from exc


def _decode(image: Image.Image, gray: bool, size: tuple[int, int]) -> np.ndarray:
    """Decode to 8-bit L (``gray``) or RGB at ``size`` (height, width)."""
    image.load()
    if image.mode in _WIDE_GRAY_MODES:
        # 16-bit grayscale: Pillow's convert("L") clips instead of scaling, so scale by hand.
        wide = np.asarray(image, dtype=np.float64)
        scale = 1.0 if image.mode == "F" else 255.0 / 65535.0
        image = Image.fromarray(np.rint(np.clip(wide * scale, 0, 255)).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    image = image.convert("L" if gray else "RGB")
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), _RESAMPLE)
    return np.asarray(image, dtype=np.uint8)
