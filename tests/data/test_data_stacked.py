"""Stacked MNIST: construction from any 1-channel digit data, the loader, and mode statistics.

Built from scikit-learn's 8x8 digits so the tests run without MNIST.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data import load
from ganforge.data import registry as registry_module
from ganforge.data.images import ImageData
from ganforge.data.spec import DataSpec
from ganforge.data.stacked import load_stacked_mnist, make_stacked, register, stacked_mode_stats
from ganforge.errors import ConfigError, DataNotFoundError


class LookupJudge:
    """A perfect stub judge for digits: recognises each channel image by its exact pixels."""

    def __init__(self, source: ImageData):
        assert source.labels is not None
        self.table = {bytes(img.numpy().tobytes()): int(y) for img, y in zip(source.images, source.labels, strict=True)}
        self.n_classes = 10

    def predict(self, images: torch.Tensor) -> np.ndarray:
        assert images.shape[1] == 1  # one channel at a time
        return np.array([self.table[bytes(img.contiguous().numpy().tobytes())] for img in images], dtype=np.int64)


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load("digits", "train")


def test_make_stacked_shapes_labels_and_determinism(digits: ImageData) -> None:
    stacked = make_stacked(digits, n=500, seed=7)
    assert stacked.images.shape == (500, 3, 8, 8) and stacked.images.dtype == torch.uint8
    assert stacked.spec.shape == (3, 8, 8) and stacked.spec.n_classes == 1000
    assert stacked.labels is not None and int(stacked.labels.max()) < 1000
    judge = LookupJudge(digits)
    for i in (0, 123, 499):
        channels = [judge.predict(stacked.images[i : i + 1, c : c + 1])[0] for c in range(3)]
        assert int(stacked.labels[i]) == 100 * channels[0] + 10 * channels[1] + channels[2]
    again = make_stacked(digits, n=500, seed=7)
    assert torch.equal(again.images, stacked.images) and torch.equal(again.labels, stacked.labels)
    other = make_stacked(digits, n=500, seed=8)
    assert not torch.equal(other.labels, stacked.labels)


def test_make_stacked_refuses_bad_sources(digits: ImageData) -> None:
    color = ImageData(digits.images.expand(-1, 3, -1, -1), digits.labels, DataSpec(shape=(3, 8, 8)), "x")
    with pytest.raises(ConfigError, match="1-channel"):
        make_stacked(color, n=10, seed=0)
    unlabelled = ImageData(digits.images, None, digits.spec, "x")
    with pytest.raises(ConfigError, match="labels"):
        make_stacked(unlabelled, n=10, seed=0)
    with pytest.raises(ConfigError, match="positive"):
        make_stacked(digits, n=0, seed=0)


def test_mode_stats_real_vs_collapsed(digits: ImageData) -> None:
    judge = LookupJudge(digits)
    stacked = make_stacked(digits, n=2000, seed=0)
    real = stacked_mode_stats(judge, stacked.images)
    expected = 1000 * (1 - math.exp(-2))  # modes a uniform sampler hits with 2000 draws, ~865
    assert abs(real["modes_captured"] - expected) < 40
    assert real["n"] == 2000 and sum(real["histogram"]) == 2000 and len(real["histogram"]) == 1000
    counts = np.bincount(stacked.labels.numpy(), minlength=1000)
    assert real["histogram"] == counts.tolist()  # a perfect judge recovers the labels
    assert 0.2 < real["kl_to_uniform"] < 0.5  # small-sample bias: about 999 / (2 * 2000)

    collapsed = stacked_mode_stats(judge, stacked.images[:1].expand(300, -1, -1, -1))
    assert collapsed["modes_captured"] == 1
    assert collapsed["largest_mode_share"] == 1.0
    assert collapsed["kl_to_uniform"] == pytest.approx(math.log(1000))

    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        stacked_mode_stats(judge, digits.images)


class _FixedJudge:
    """Reads the digit a test image encodes in its first pixel (0..9)."""

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return x[:, 0, 0, 0].long().numpy()


def test_mode_stats_kl_splits_into_channel_imbalance_and_dependence() -> None:
    # channel R all 7s (KL log 10); G uniform; B = G (fully dependent: total correlation log 10)
    g = np.arange(1000) % 10
    digits = np.stack([np.full(1000, 7), g, g], axis=1)
    images = torch.zeros(1000, 3, 2, 2, dtype=torch.uint8)
    images[:, :, 0, 0] = torch.from_numpy(digits).to(torch.uint8)
    stats = stacked_mode_stats(_FixedJudge(), images)
    assert stats["modes_captured"] == 10
    assert stats["kl_to_uniform"] == pytest.approx(math.log(100))  # 10 equal modes of 1000
    assert stats["kl_channels"] == pytest.approx([math.log(10), 0.0, 0.0])
    assert stats["total_correlation"] == pytest.approx(math.log(10))
    assert stats["channel_histograms"][0] == [0] * 7 + [1000, 0, 0]
    # independent uniform channels: every part near 0 (up to the sampling bias)
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, size=(20000, 3))
    images = torch.zeros(20000, 3, 2, 2, dtype=torch.uint8)
    images[:, :, 0, 0] = torch.from_numpy(digits).to(torch.uint8)
    stats = stacked_mode_stats(_FixedJudge(), images)
    assert max(stats["kl_channels"]) < 0.002 and stats["total_correlation"] < 0.03
    assert stats["kl_to_uniform"] == pytest.approx(sum(stats["kl_channels"]) + stats["total_correlation"])


def test_mode_stats_with_a_trained_judge(digits: ImageData) -> None:
    from ganforge.metrics.judge import train_judge

    judge = train_judge(digits, load("digits", "test"), epochs=4, progress=False)
    stacked = make_stacked(load("digits", "test"), n=1000, seed=1)
    real = stacked_mode_stats(judge, stacked.to_float())  # floats in [-1, 1] work as well as uint8
    assert real["modes_captured"] > 500
    collapsed = stacked_mode_stats(judge, stacked.images[:1].expand(200, -1, -1, -1))
    assert collapsed["modes_captured"] == 1


def test_loader_needs_mnist_and_registers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="mnist"):
        load_stacked_mnist("test", str(tmp_path))
    with pytest.raises(ConfigError, match="split"):
        load_stacked_mnist("valid")

    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))  # undone after the test
    register()
    register()  # idempotent
    assert "stacked_mnist" in registry_module.available_datasets()

    rng = np.random.default_rng(0)
    fake_mnist = {
        "x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_train": np.arange(30) % 10,
        "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_test": np.arange(20) % 10,
    }
    np.savez(tmp_path / "mnist.npz", **fake_mnist)
    test = load("stacked_mnist", "test", data_dir=tmp_path)
    assert test.images.shape == (10_000, 3, 28, 28)
    assert test.spec.name == "stacked_mnist" and test.spec.n_classes == 1000
    again = load_stacked_mnist("test", str(tmp_path))
    assert torch.equal(again.labels, test.labels)  # fixed seed per split
