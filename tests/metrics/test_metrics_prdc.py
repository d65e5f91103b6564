"""Precision/recall/density/coverage against the reference implementation (the ``prdc`` package, clovaai)."""

from __future__ import annotations

import contextlib
import io
import tracemalloc

import numpy as np
import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.metrics.prdc import prdc

reference = pytest.importorskip("prdc", reason="dev dependency: pip install prdc==0.2")

KEYS = ("precision", "recall", "density", "coverage")


def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
        out = reference.compute_prdc(real, fake, nearest_k=k)
    return {key: float(out[key]) for key in KEYS}


def assert_matches_reference(real: np.ndarray, fake: np.ndarray, k: int, **kwargs) -> dict[str, float]:
    ours = prdc(real, fake, k=k, **kwargs)
    ref = reference_prdc(real, fake, k)
    assert set(ours) == set(KEYS)
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), key
    return ours


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k", "shift", "scale"),
    [
        (400, 300, 8, 5, 0.3, 1.2),
        (250, 250, 2, 3, 0.0, 1.0),
        (200, 350, 64, 10, 0.5, 0.8),
        (150, 120, 16, 1, 1.0, 1.0),
    ],
)
def test_prdc_matches_reference(n_real, n_fake, dim, k, shift, scale):
    rng = np.random.default_rng(n_real + dim + k)
    real = rng.normal(size=(n_real, dim))
    fake = rng.normal(shift, scale, size=(n_fake, dim))
    out = assert_matches_reference(real, fake, k)
    assert 0 < out["precision"] < 1 or 0 < out["coverage"] < 1  # a case where the comparisons matter


def test_prdc_identical_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 5))
    out = assert_matches_reference(real, real.copy(), 5)
    assert out == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_prdc_mode_collapse_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(1)
    modes = rng.normal(0, 4, size=(10, 2))
    real = modes[rng.integers(0, 10, 1000)] + rng.normal(0, 0.3, (1000, 2))
    collapsed = modes[rng.integers(0, 2, 1000)] + rng.normal(0, 0.3, (1000, 2))  # 2 of the 10 modes
    full = modes[rng.integers(0, 10, 1000)] + rng.normal(0, 0.3, (1000, 2))
    bad = assert_matches_reference(real, collapsed, 5)
    good = assert_matches_reference(real, full, 5)
    assert bad["precision"] > 0.9 and good["precision"] > 0.9
    assert bad["recall"] < 0.5 < 0.9 < good["recall"]
    assert bad["coverage"] < 0.5 < 0.9 < good["coverage"]


def test_prdc_blocks_give_the_same_result_and_bound_memory():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(2000, 4))
    fake = rng.normal(0.2, 1.0, size=(1500, 4))
    whole = prdc(real, fake, k=4)
    tracemalloc.start()
    try:
        blocked = prdc(real, fake, k=4, block_bytes=2**20)  # ~ 65 rows per block instead of all 2000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blocked == whole
    # One full 2000 x 2000 float64 matrix would take 32 MB.
    assert peak < 6 * 2**20
    assert blocked == assert_matches_reference(real, fake, 4, block_bytes=8 * 1500 * 7 + 3)  # ragged last block


def test_prdc_accepts_torch_tensors():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(100, 3)), rng.normal(size=(80, 3))
    assert prdc(torch.from_numpy(real), torch.from_numpy(fake), k=3) == prdc(real, fake, k=3)


def test_prdc_errors():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(10, 3))
    with pytest.raises(ConfigError, match="3 features per sample but fake_features have 4"):
        prdc(real, rng.normal(size=(10, 4)))
    with pytest.raises(ConfigError, match="fake_features has 5"):
        prdc(real, real[:5], k=5)
    with pytest.raises(ConfigError, match="real_features has 10"):
        prdc(real, rng.normal(size=(30, 3)), k=10)
    assert set(prdc(real, real[:6], k=5)) == set(KEYS)  # k = n - 1 is the largest allowed
    with pytest.raises(ConfigError, match="positive"):
        prdc(real, real, k=0)
    with pytest.raises(ConfigError, match="2-D"):
        prdc(real.ravel(), real)
