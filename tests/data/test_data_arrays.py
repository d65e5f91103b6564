"""ImageData and loading .npy / .npz arrays by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data import DataSpec, ImageData, load, parse_size
from ganforge.errors import ConfigError, GanforgeError

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (4, 6, 5), dtype=np.uint8)  # (N, H, W)
COLOR = RNG.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)  # (N, H, W, C)


def _save(tmp_path: Path, array: np.ndarray) -> Path:
    path = tmp_path / "arr.npy"
    np.save(path, array)
    return path


def test_image_data_basics() -> None:
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).reshape(3, 1, 1, 1)
    data = ImageData(images, None, DataSpec((1, 1, 1)), "test")
    assert len(data) == 3
    torch.testing.assert_close(data.to_float().flatten(), torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))
    assert "n=3" in repr(data) and "tensor" not in repr(data)
    with pytest.raises(ValueError, match="uint8"):
        ImageData(images.float(), None, DataSpec((1, 1, 1)), "test")


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (GRAY, GRAY[:, None]),
        (GRAY[..., None], GRAY[:, None]),  # (N, H, W, 1)
        (GRAY[:, None], GRAY[:, None]),  # (N, 1, H, W)
        (COLOR, COLOR.transpose(0, 3, 1, 2)),  # (N, H, W, 3)
        (COLOR.transpose(0, 3, 1, 2), COLOR.transpose(0, 3, 1, 2)),  # (N, 3, H, W)
        (GRAY.astype(np.int64), GRAY[:, None]),
        (GRAY / 255.0, GRAY[:, None]),  # float in [0, 1]
        ((GRAY / 127.5 - 1).astype(np.float32), GRAY[:, None]),  # float in [-1, 1]
    ],
)
def test_npy_layouts_and_value_ranges(tmp_path: Path, array: np.ndarray, expected: np.ndarray) -> None:
    data = load(_save(tmp_path, array))
    assert data.images.dtype == torch.uint8 and data.images.is_contiguous()
    np.testing.assert_array_equal(data.images.numpy(), expected)
    assert data.labels is None and data.spec.n_classes == 0 and data.spec.shape == expected.shape[1:]
    assert data.spec.name == "arr" and data.source == str(tmp_path / "arr.npy")


def test_npy_rgba_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((1, 2, 2, 4), np.uint8)  # (N, H, W, 4)
    rgba[0, 0] = [[200, 100, 50, 255], [200, 100, 50, 0]]
    rgba[0, 1] = [[200, 100, 50, 51], [0, 0, 0, 0]]
    data = load(_save(tmp_path, rgba))
    assert data.images.shape == (1, 3, 2, 2)
    assert data.images[0].permute(1, 2, 0).reshape(4, 3).tolist() == [
        [200, 100, 50], [0, 0, 0], [40, 20, 10], [0, 0, 0]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (GRAY.astype(np.float32) * 2, r"must lie in \[0, 1\] \(or \[-1, 1\]\), found \[0, \d+\]"),
        (GRAY.astype(np.int16) - 1, r"0\.\.255, found -1\.\.\d+"),
        (np.zeros((2, 5, 5, 7), np.uint8), "channel axis"),
        (np.zeros((10,), np.uint8), r"shape \(10,\)"),
        (np.full((1, 2, 2), np.nan), "NaN"),
        (np.zeros((0, 4, 4), np.uint8), "no images"),
    ],
)
def test_npy_bad_arrays(tmp_path: Path, array: np.ndarray, message: str) -> None:
    with pytest.raises(GanforgeError, match=message) as info:
        load(_save(tmp_path, array))
    assert "arr.npy" in str(info.value)


def test_npy_has_no_test_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no test split"):
        load(_save(tmp_path, GRAY), split="test")


def test_npz_standard_layout_uses_split(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(
        path, x_train=COLOR, y_train=np.array([0, 1, 4, 1]), x_test=GRAY[:2], y_test=np.array([2.0, 0.0])
    )
    train, test = load(path), load(path, split="test")
    assert train.images.shape == (4, 3, 6, 5) and test.images.shape == (2, 1, 6, 5)
    assert (
        train.labels is not None
        and train.labels.dtype == torch.int64
        and train.labels.tolist() == [0, 1, 4, 1]
    )
    assert train.spec.n_classes == 5 and test.spec.n_classes == 3


@pytest.mark.parametrize(("x_key", "y_key"), [("x", "y"), ("images", "labels")])
def test_npz_single_split_layouts(tmp_path: Path, x_key: str, y_key: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **{x_key: GRAY, y_key: np.array([1, 0, 1, 1], np.uint8)})
    data = load(path)
    assert data.labels is not None and data.labels.tolist() == [1, 0, 1, 1] and data.spec.n_classes == 2
    np.savez(path, **{x_key: GRAY})
    assert load(path).labels is None
    with pytest.raises(ConfigError, match="no test split"):
        load(path, split="test")


def test_npz_class_names(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=GRAY, y=np.array([0, 1, 0, 1]), class_names=np.array(["cat", "dog", "eel"]))
    data = load(path)
    assert data.spec.class_names == ("cat", "dog", "eel") and data.spec.n_classes == 3


def test_npz_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=GRAY, y_train=np.arange(4))
    with pytest.raises(ConfigError, match="no 'x_test' array"):
        load(path, split="test")
    np.savez(path, pixels=GRAY)
    with pytest.raises(GanforgeError, match=r"d\.npz: found arrays \['pixels'\]"):
        load(path)
    np.savez(path, x=GRAY, y=np.arange(3))
    with pytest.raises(GanforgeError, match=r"labels must have shape \(4,\)"):
        load(path)
    path.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(GanforgeError, match="cannot read"):
        load(path)


def test_size_resizes_arrays(tmp_path: Path) -> None:
    path = _save(tmp_path, COLOR)
    assert load(path, size=8).images.shape == (4, 3, 8, 8)
    data = load(path, size=(3, 10))
    assert data.images.shape == (4, 3, 3, 10) and data.spec.shape == (3, 3, 10)
    flat = np.full((1, 6, 6), 77, np.uint8)
    assert load(_save(tmp_path, flat), size=12).images.unique().tolist() == [77]  # a filter, not noise


@pytest.mark.parametrize("size", [0, -3, (4,), (4, 0), "8", 2.5, True])
def test_bad_size_is_a_config_error(size: object) -> None:
    with pytest.raises(ConfigError, match="size must be"):
        parse_size(size)  # type: ignore[arg-type]


def test_unsupported_file_type(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"unsupported file type '\.csv'"):
        load(path)
