"""``load``: one entry point for named datasets and paths, plus the registry other packages extend.

A name maps to a loader ``loader(split, data_dir) -> ImageData``; ``register_dataset`` adds one,
so new datasets (toy 2-D sets, video) plug in without touching ``load``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ganforge.data import sources
from ganforge.data.images import ImageData, load_image_folder, load_npy, load_npz, parse_size
from ganforge.errors import ConfigError, DataNotFoundError

Loader = Callable[[str, str | None], ImageData]
SPLITS = ("train", "test")

_REGISTRY: dict[str, Loader] = {}


def canonical_name(name: str) -> str:
    """Names are case-insensitive and ``-`` equals ``_``: "Fashion-MNIST" -> "fashion_mnist"."""
    return name.strip().lower().replace("-", "_")


def register_dataset(name: str, loader: Loader, *, replace: bool = False) -> None:
    """Make ``load(name)`` call ``loader(split, data_dir)``; ``replace=True`` overrides an existing name."""
    key = canonical_name(name)
    if not key or any(sep in key for sep in ("/", "\\", os.sep)):
        raise ConfigError(f"dataset name {name!r} must be a non-empty name without path separators")
    if key in _REGISTRY and not replace:
        raise ConfigError(f"dataset {key!r} is already registered; pass replace=True to override it")
    _REGISTRY[key] = loader


def available_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith(("~", "."))
        or "/" in text
        or (os.sep in text)
        or bool(os.altsep and os.altsep in text)
    )


def load(
    name_or_path: str | os.PathLike[str],
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    size: int | tuple[int, int] | None = None,
) -> ImageData:
    """Load a dataset by registered name ("digits", "mnist", "fashion_mnist", ...) or by path.

    Paths: a folder of PNG/JPEG images, a ``.npy`` array or a ``.npz`` archive (see
    ``ganforge.data.images``). A registered name wins over a same-named folder in the current
    directory; write ``./digits`` to mean the folder. ``split`` is "train" or "test";
    ``data_dir`` is searched first for named datasets; ``size`` (int or (height, width))
    resizes every image, e.g. to train 32x32 on MNIST.
    """
    if not isinstance(split, str) or split.strip().lower() not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    split = split.strip().lower()
    target = parse_size(size)
    text = os.fspath(name_or_path)
    key = canonical_name(text)
    if key in _REGISTRY and not _looks_like_path(text):
        data = _REGISTRY[key](split, None if data_dir is None else os.fspath(data_dir))
    else:
        data = _load_path(Path(text).expanduser(), text, split, target)
    return data if target is None else data.resized(target)


def _load_path(path: Path, text: str, split: str, size: tuple[int, int] | None) -> ImageData:
    if path.is_dir():
        return load_image_folder(path, split, size)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npy":
            return load_npy(path, split)
        if suffix == ".npz":
            return load_npz(path, split)
        raise ConfigError(
            f"cannot load {path}: unsupported file type {suffix or '(no suffix)'!r}; "
            "give a folder of PNG/JPEG images, a .npy array or a .npz archive"
        )
    known = ", ".join(available_datasets())
    if _looks_like_path(text) or path.suffix:
        raise DataNotFoundError(
            f"no file or folder at {text!r} ({path.absolute()}); check the path. "
            f"Known dataset names are {known}"
        )
    raise DataNotFoundError(
        f"unknown dataset {text!r}: known names are {known}; or give a path to an image folder, .npy or .npz"
    )


register_dataset("digits", sources.load_digits)
register_dataset("mnist", sources.load_mnist)
register_dataset("fashion_mnist", sources.load_fashion_mnist)


def _register_toy() -> None:
    from ganforge.data.toy import MIXTURES, load_mixture

    for name, mixture in MIXTURES.items():
        register_dataset(name, lambda split, data_dir, m=mixture: load_mixture(m, split))  # type: ignore[misc]


_register_toy()


def _register_stacked() -> None:
    from ganforge.data import stacked

    stacked.register()


_register_stacked()
