"""Loading folders of PNG/JPEG images: labels from sub-folders, channels, sizes, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import load
from ganforge.errors import ConfigError, GanforgeError


def _png(
    path: Path, mode: str = "L", size: tuple[int, int] = (8, 8), value: int | tuple[int, ...] = 128
) -> Path:
    """Write a flat image; ``size`` is (height, width)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size[1], size[0]), value).save(path)
    return path


def test_class_subfolders_become_labels(tmp_path: Path) -> None:
    _png(tmp_path / "dogs" / "b.png", value=20)
    _png(tmp_path / "dogs" / "a.PNG", value=10)
    _png(tmp_path / "cats" / "x.jpg", value=200)
    _png(tmp_path / "cats" / "deeper" / "y.jpeg", value=100)
    data = load(tmp_path)
    assert data.spec.class_names == ("cats", "dogs") and data.spec.n_classes == 2
    assert data.labels is not None and data.labels.tolist() == [0, 0, 1, 1]
    assert data.images.shape == (4, 1, 8, 8) and data.spec.name == tmp_path.name
    # sorted by path: cats/deeper/y.jpeg, cats/x.jpg, dogs/a.PNG, dogs/b.png (JPEG is lossy: approx)
    assert data.images[:, 0, 0, 0].tolist() == pytest.approx([100, 200, 10, 20], abs=3)
    assert torch.equal(load(tmp_path).images, data.images)  # deterministic


def test_images_at_top_level_or_one_subfolder_are_unlabelled(tmp_path: Path) -> None:
    _png(tmp_path / "only" / "a.png")
    _png(tmp_path / "only" / "b.png")
    data = load(tmp_path)
    assert data.labels is None and data.spec.n_classes == 0 and data.spec.class_names == ()
    _png(tmp_path / "other" / "c.png")
    _png(tmp_path / "loose.png")  # not every image is in a class folder
    data = load(tmp_path)
    assert data.labels is None and len(data) == 4


def test_grayscale_vs_rgb(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", "L", value=90)
    _png(tmp_path / "b.png", "1", value=1)
    _png(tmp_path / "c.png", "LA", value=(100, 255))
    assert load(tmp_path).images.shape == (3, 1, 8, 8)
    _png(tmp_path / "d.png", "RGB", value=(255, 0, 0))
    data = load(tmp_path)
    assert data.images.shape == (4, 3, 8, 8)
    assert data.images[:, :, 0, 0].tolist() == [[90, 90, 90], [255, 255, 255], [100, 100, 100], [255, 0, 0]]


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", "RGBA", value=(200, 100, 50, 0))
    _png(tmp_path / "b.png", "RGBA", value=(200, 100, 50, 255))
    _png(tmp_path / "c.png", "LA", value=(200, 0))
    data = load(tmp_path)
    assert data.images[:, :, 0, 0].tolist() == [[0, 0, 0], [200, 100, 50], [0, 0, 0]]


def test_16_bit_grayscale_is_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4), 257 * 100, np.uint16)).save(tmp_path / "b.png")
    data = load(tmp_path)
    assert data.images.shape == (2, 1, 4, 4) and data.images[:, 0, 0, 0].tolist() == [255, 100]


def test_mixed_sizes_warn_and_use_the_most_common(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", size=(8, 8))
    _png(tmp_path / "b.png", size=(8, 8))
    _png(tmp_path / "c.png", size=(10, 12))
    with pytest.warns(UserWarning, match=r"resized 1 of 3 images to 8x8 \(height x width\), the most common"):
        data = load(tmp_path)
    assert data.images.shape == (3, 1, 8, 8) and data.spec.shape == (1, 8, 8)
    assert data.images.unique().tolist() == [128]


def test_size_ties_pick_the_largest_and_size_overrides(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", size=(8, 8))
    _png(tmp_path / "b.png", size=(10, 12))
    with pytest.warns(UserWarning, match="resized 1 of 2 images to 10x12"):
        assert load(tmp_path).images.shape == (2, 1, 10, 12)
    with pytest.warns(UserWarning, match="resized 2 of 2 images to 5x6 .*the size you asked for"):
        assert load(tmp_path, size=(5, 6)).images.shape == (2, 1, 5, 6)


def test_size_on_a_uniform_folder_resizes_quietly(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    _png(tmp_path / "a.png", size=(8, 8))
    assert load(tmp_path, size=4).images.shape == (1, 1, 4, 4)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    _png(tmp_path / ".hidden" / "a.png")
    with pytest.raises(GanforgeError, match=f"no images found in folder {tmp_path}"):
        load(tmp_path)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_corrupt_image_names_the_file(tmp_path: Path, content: bytes | str) -> None:
    good = _png(tmp_path / "good.png", "RGB", size=(32, 32), value=(1, 2, 3))
    bad = tmp_path / "bad.png"
    bad.write_bytes(content if isinstance(content, bytes) else good.read_bytes()[:60])
    with pytest.raises(GanforgeError, match=f"cannot read image {bad}"):
        load(tmp_path)


def test_folder_has_no_test_split(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="no test split"):
        load(tmp_path, split="test")


def test_symlinked_class_folders_are_followed_once(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    _png(root / "cats" / "a.png")
    _png(elsewhere / "b.png")
    (root / "dogs").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(elsewhere, target_is_directory=True)  # must not recurse forever
    data = load(root)
    assert len(data) == 2 and data.spec.class_names == ("cats", "dogs")
