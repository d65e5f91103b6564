"""The domain judge on scikit-learn's digits: accuracy, features, caching, corruption, determinism."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data import load
from ganforge.data.images import ImageData
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import judge as judge_module
from ganforge.metrics.judge import (
    FEATURE_DIM,
    Judge,
    JudgeNet,
    get_judge,
    load_judge,
    train_judge,
)


@pytest.fixture(scope="module")
def digits() -> tuple[ImageData, ImageData]:
    return load("digits", "train"), load("digits", "test")


@pytest.fixture(scope="module")
def trained(digits: tuple[ImageData, ImageData]) -> tuple[Judge, float]:
    train, test = digits
    start = time.perf_counter()
    judge = train_judge(train, test, epochs=8, seed=0, progress=False)
    return judge, time.perf_counter() - start


@pytest.fixture
def quick_recipe(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make get_judge train digits for 2 epochs, and count how often it trains."""
    monkeypatch.setitem(judge_module.DEFAULT_RECIPES, "digits", {"epochs": 2})
    calls: list[int] = []
    real_train = judge_module.train_judge

    def counting_train(*args: object, **kwargs: object) -> Judge:
        calls.append(1)
        return real_train(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(judge_module, "train_judge", counting_train)
    return calls


def test_judge_learns_digits_quickly(trained: tuple[Judge, float]) -> None:
    judge, seconds = trained
    assert judge.test_accuracy >= 0.90
    assert judge.name == "digits_cnn" and judge.dataset == "digits"
    assert judge.n_classes == 10 and judge.input_shape == (1, 8, 8)
    assert len(judge.weights_hash) == 64


def test_features_probabilities_predict(trained: tuple[Judge, float], digits: tuple[ImageData, ImageData]) -> None:
    judge, _ = trained
    test = digits[1]
    feats = judge.features(test.images[:37])
    assert feats.shape == (37, FEATURE_DIM) and feats.dtype == np.float32
    assert (feats >= 0).all()  # taken after the ReLU
    probs = judge.probabilities(test)
    assert probs.shape == (len(test), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    predicted = judge.predict(test.images)
    assert predicted.shape == (len(test),) and predicted.dtype == np.int64
    assert np.mean(predicted == test.labels.numpy()) == pytest.approx(judge.test_accuracy)
    # uint8 and the equivalent floats in [-1, 1] are the same input
    np.testing.assert_allclose(judge.features(test.to_float()[:37]), feats, atol=1e-5)
    # batching does not change the results
    judge.batch_size = 5
    try:
        np.testing.assert_allclose(judge.features(test.images[:37]), feats, atol=1e-5)
    finally:
        judge.batch_size = 512


def test_wrong_inputs_are_refused(trained: tuple[Judge, float]) -> None:
    judge, _ = trained
    with pytest.raises(ConfigError, match=r"resize them first"):
        judge.features(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ConfigError, match=r"\(1, 8, 8\)"):
        judge.predict(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        judge.predict(torch.full((2, 1, 8, 8), 255.0))
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
        judge.predict(torch.zeros(8, 8))


def test_judgenet_any_size_and_minimum() -> None:
    for shape in [(1, 8, 8), (3, 32, 32), (1, 28, 28), (3, 9, 40)]:
        net = JudgeNet(shape, 5).eval()
        x = torch.zeros(2, *shape)
        assert net(x).shape == (2, 5)
        assert net.embed(x).shape == (2, FEATURE_DIM)
    with pytest.raises(ConfigError, match="at least 8x8"):
        JudgeNet((1, 7, 28), 10)


def test_same_seed_same_weights(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    small = ImageData(train.images[:300], train.labels[:300], train.spec, train.source)
    state = torch.random.get_rng_state()
    a = train_judge(small, test, epochs=1, seed=3, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    b = train_judge(small, test, epochs=1, seed=3, progress=False)
    c = train_judge(small, test, epochs=1, seed=4, progress=False)
    assert a.weights_hash == b.weights_hash
    assert a.weights_hash != c.weights_hash


def test_cache_round_trip(tmp_path: Path, quick_recipe: list[int]) -> None:
    first = get_judge("digits", cache_dir=tmp_path, progress=False)
    assert quick_recipe == [1]
    folders = [p for p in tmp_path.iterdir()]
    assert len(folders) == 1 and folders[0].name.startswith("digits_cnn-")
    meta = json.loads((folders[0] / "judge.json").read_text())
    wanted = "name dataset test_accuracy n_test epochs seed recipe input_shape n_classes created weights_sha256 key"
    assert set(wanted.split()) <= set(meta)
    assert meta["weights_sha256"] == first.weights_hash
    assert meta["recipe"]["version"] == judge_module.JUDGE_VERSION

    second = get_judge("digits", cache_dir=tmp_path, progress=False)
    assert quick_recipe == [1]  # loaded, not retrained
    assert second.weights_hash == first.weights_hash
    assert second.test_accuracy == first.test_accuracy
    images = load("digits", "test").images[:20]
    np.testing.assert_allclose(second.features(images), first.features(images), atol=1e-6)

    get_judge("digits", cache_dir=tmp_path, seed=1, progress=False)  # another seed is another judge
    assert quick_recipe == [1, 1]
    assert len(list(tmp_path.iterdir())) == 2


def test_corrupt_cache_is_detected(tmp_path: Path, quick_recipe: list[int]) -> None:
    judge = get_judge("digits", cache_dir=tmp_path, progress=False)
    assert judge.path is not None
    weights = judge.path / "judge.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-5] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(GanforgeError, match="corrupt"):
        load_judge(judge.path)
    with pytest.raises(GanforgeError, match="corrupt"):
        get_judge("digits", cache_dir=tmp_path, train_if_missing=False, progress=False)
    with pytest.warns(UserWarning, match="retraining"):
        again = get_judge("digits", cache_dir=tmp_path, progress=False)
    assert quick_recipe == [1, 1]
    assert again.weights_hash == judge.weights_hash  # same seed, same recipe: the same weights back
    load_judge(again.path)  # the cache is healthy again
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_missing_judge_without_training(tmp_path: Path, quick_recipe: list[int]) -> None:
    with pytest.raises(GanforgeError, match="train_if_missing=True"):
        get_judge("digits", cache_dir=tmp_path, train_if_missing=False, progress=False)
    assert quick_recipe == []


def test_unlabelled_data_is_refused(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", array)
    data = load(str(tmp_path / "faces.npy"))
    with pytest.raises(ConfigError, match="no labels"):
        train_judge(data, data, epochs=1, progress=False)
