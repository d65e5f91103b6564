"""Augmenter (conditional GAN → balanced synthetic labelled samples), the experiment's classifier, and the
``ganforge augment`` command, on scikit-learn's 8x8 digits with a few dozen GAN steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.apps.augment import (
    Augmenter,
    ClassifierRecipe,
    Subset,
    accuracy,
    classic_augment,
    select_subset,
    take_per_class,
    train_classifier,
)
from ganforge.cli import main
from ganforge.data import load
from ganforge.errors import ConfigError, GanforgeError


@pytest.fixture(scope="module")
def digits():
    train, test = load("digits", "train"), load("digits", "test")
    idx = select_subset(train.labels.numpy(), 20, seed=0)
    return train.images.numpy()[idx], train.labels.numpy()[idx], test.images.numpy(), test.labels.numpy()


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    x, y, _, _ = digits
    out = tmp_path_factory.mktemp("augmenter")
    return Augmenter(steps=30, batch_size=32, threads=1, progress=False, doctor=False, sample_every=30,
                     checkpoint_every=30, out=out).fit(x, y)


def test_fit_trains_through_the_ordinary_trainer(fitted):
    run = fitted.run_dir
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["conditional"] and config["diffaugment"] == "color,translation,cutout"
    assert config["ema"] == 0.99 and config["minibatch_std"] and config["spectral_norm"]
    assert config["data"].endswith("labelled.npz")
    assert (run / "checkpoints" / "step_000030").is_dir() and (run / "stats.jsonl").exists()
    assert fitted.trained.uses_ema


def test_augment_shapes_dtype_and_balanced_labels(fitted):
    x, y = fitted.augment(7, seed=1)
    assert x.shape == (70, 8, 8) and x.dtype == np.uint8
    assert y.dtype == np.int64 and np.array_equal(np.bincount(y, minlength=10), [7] * 10)
    assert y.min() == 0 and y.max() == 9
    again, _ = fitted.augment(7, seed=1)
    other, _ = fitted.augment(7, seed=2)
    assert np.array_equal(x, again) and not np.array_equal(x, other)
    assert x.std() > 0  # not a constant image


class BrightnessJudge:
    """A judge whose answer the test controls: every class gets the image's mean brightness in [0, 1] as its
    'probability', except ``refuse`` classes, which get 0."""

    def __init__(self, refuse: tuple[int, ...] = ()):
        self.refuse = refuse
        self.calls = 0
        self.seen = 0

    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        self.calls += 1
        self.seen += len(images)
        brightness = images.float().mean(dim=(1, 2, 3)).numpy() / 255.0
        p = np.repeat(brightness[:, None], 10, axis=1)
        p[:, list(self.refuse)] = 0.0
        return p


def test_confidence_filter_keeps_only_confident_samples(fitted):
    plain, _ = fitted.augment(40, seed=3)
    threshold = float(np.median(plain.reshape(len(plain), -1).mean(1) / 255.0))
    judge = BrightnessJudge()
    x, y = fitted.augment(5, seed=3, min_confidence=threshold, judge=judge)
    brightness = x.reshape(len(x), -1).mean(1) / 255.0
    assert np.array_equal(np.bincount(y), [5] * 10)
    assert (brightness >= threshold).all()
    assert ((plain.reshape(len(plain), -1).mean(1) / 255.0) < threshold).any()  # the filter had work to do
    assert judge.seen > len(x)  # rejected candidates were drawn


def test_confidence_filter_gives_up_with_a_clear_error(fitted):
    with pytest.raises(GanforgeError, match=r"class 3 gave only 0 of 4 samples.*lower min_confidence"):
        fitted.augment(4, seed=0, min_confidence=0.5, judge=BrightnessJudge(refuse=(3,)))
    with pytest.warns(UserWarning, match="class 3 gave only 0 of 4.*topped up"):
        x, y = fitted.augment(4, seed=0, min_confidence=0.01, judge=BrightnessJudge(refuse=(3,)), on_shortfall="warn")
    assert np.array_equal(np.bincount(y), [4] * 10) and x.shape == (40, 8, 8)
    assert fitted.acceptance[3] == 0.0 and fitted.acceptance[0] > 0.9


def test_bad_augment_arguments(fitted):
    with pytest.raises(ConfigError, match="n_per_class"):
        fitted.augment(0)
    with pytest.raises(ConfigError, match="min_confidence"):
        fitted.augment(3, min_confidence=1.5)
    with pytest.raises(ConfigError, match="not fitted"):
        Augmenter(steps=5).augment(3)
    with pytest.raises(ConfigError, match="uint8"):
        Augmenter(steps=5).fit(np.zeros((20, 8, 8), dtype=np.float32), np.arange(20) % 2)
    with pytest.raises(ConfigError, match="labels are missing"):
        Augmenter(steps=5).fit(np.zeros((20, 8, 8), dtype=np.uint8), None)
    with pytest.raises(ConfigError, match="steps"):
        Augmenter(steps=0)


def test_save_and_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "copy")
    loaded = Augmenter.load(tmp_path / "copy")
    assert loaded.n_classes == 10 and loaded.settings() == fitted.settings()
    assert np.array_equal(loaded.augment(3, seed=5)[0], fitted.augment(3, seed=5)[0])


def test_subset_is_stratified_seeded_and_round_trips(tmp_path):
    labels = load("digits", "train").labels.numpy()
    a = select_subset(labels, 12, seed=4)
    assert np.array_equal(np.bincount(labels[a], minlength=10), [12] * 10)
    assert len(np.unique(a)) == len(a) and np.array_equal(a, np.sort(a))
    assert np.array_equal(a, select_subset(labels, 12, seed=4))
    assert not np.array_equal(a, select_subset(labels, 12, seed=5))
    subset = Subset(dataset="digits", labels_per_class=12, seed=4, indices=a.tolist())
    assert Subset.load(subset.save(tmp_path / "subset.json")) == subset
    smallest = int(np.bincount(labels).min())
    with pytest.raises(ConfigError, match=f"give at most {smallest}"):
        select_subset(labels, smallest + 1, seed=0)
    with pytest.raises(ConfigError, match="positive"):
        select_subset(labels, 0, seed=0)


def test_classifier_learns_and_early_stops_on_labelled_data_only(digits):
    x, y, x_test, y_test = digits
    recipe = ClassifierRecipe(max_steps=120, eval_every=40, val_share=0.2)
    model = train_classifier(x, y, recipe=recipe, seed=0)
    assert model.tuning["steps"] in (40, 80, 120) and model.tuning["n_val"] == 40  # 20 % of 200
    assert accuracy(model, x_test, y_test) > 0.6  # chance is 0.1


def test_default_recipe_trains_a_fixed_length_on_every_labelled_image(digits):
    x, y, x_test, y_test = digits
    recipe = ClassifierRecipe(max_steps=120, widths=(8, 16, 32))
    assert recipe.val_share == 0 and recipe.schedule == "cosine"
    model = train_classifier(x, y, recipe=recipe, seed=0)
    assert model.tuning == {"steps": 120, "val_accuracy": None, "curve": [], "n_val": 0}
    assert accuracy(model, x_test, y_test) > 0.6
    assert "no early stopping" in recipe.describe() and "cosine" in recipe.describe()
    with pytest.raises(ConfigError, match="schedule"):
        ClassifierRecipe(schedule="step")
    with pytest.raises(ConfigError, match="val_share"):
        ClassifierRecipe(val_share=1.0)


def test_classic_augment_and_take_per_class():
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(classic_augment(x, 0, False, g), x)
    shifted = classic_augment(x, 1, True, g)
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    y = np.array([0, 1, 0, 1, 0, 1])
    xs, ys = take_per_class(np.arange(6), y, 2)
    assert np.array_equal(xs, [0, 2, 1, 3]) and np.array_equal(ys, [0, 0, 1, 1])


@pytest.mark.slow
def test_cli_end_to_end_on_digits(tmp_path, capsys):
    out = tmp_path / "exp"
    code = main(["augment", "--data", "digits", "--labels-per-class", "10", "--out", str(out), "--steps", "20",
                 "--batch-size", "32", "--ratios", "1,2", "--classifier-steps", "40", "--threads", "1",
                 "--no-progress", "--seed", "3"])
    assert code == 0
    subset = Subset.load(out / "subset.json")
    labels = load("digits", "train").labels.numpy()
    assert subset.dataset == "digits" and subset.seed == 3 and subset.labels_per_class == 10
    assert np.array_equal(np.bincount(labels[subset.indices]), [10] * 10)
    with np.load(out / "synthetic.npz") as synthetic:
        assert synthetic["x"].shape == (200, 8, 8) and synthetic["x"].dtype == np.uint8
        assert np.array_equal(np.bincount(synthetic["y"]), [20] * 10)
    results = json.loads((out / "results.json").read_text())
    arms = {row["arm"]: row for row in results["arms"]}
    assert set(arms) == {"real only", "real + classic augmentation", "real + ganforge x1", "real + ganforge x2",
                         "real + classic + ganforge x1", "synthetic only x2 (CAS)"}
    assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in arms.values())
    assert arms["real + ganforge x2"]["n_synthetic"] == 200 and arms["synthetic only x2 (CAS)"]["n_real"] == 0
    rows = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 6 and rows[1].startswith("| real only | ")
    assert (out / "gan" / "checkpoints" / "step_000020").is_dir()
    assert "real only" in capsys.readouterr().out
    # a second run into the same directory is refused; --resume auto finishes from the stored run
    assert main(["augment", "--data", "digits", "--labels-per-class", "10", "--out", str(out), "--steps", "20"]) == 2
    assert "--resume auto" in capsys.readouterr().err
    before = (out / "subset.json").read_text()
    assert main(["augment", "--data", "digits", "--labels-per-class", "10", "--out", str(out), "--steps", "20",
                 "--ratios", "1", "--classifier-steps", "20", "--threads", "1", "--no-progress", "--seed", "3",
                 "--resume", "auto"]) == 0
    assert (out / "subset.json").read_text() == before
    assert len(json.loads((out / "results.json").read_text())["arms"]) == 5
    # resuming with another seed would mix two experiments: refused
    assert main(["augment", "--data", "digits", "--labels-per-class", "10", "--out", str(out), "--seed", "4",
                 "--resume", "auto"]) == 2
    assert "give the same --data" in capsys.readouterr().err


def _unlabelled_npz(tmp_path):
    path = tmp_path / "nolabels.npz"
    np.savez(path, x_train=np.zeros((30, 8, 8), np.uint8), x_test=np.zeros((10, 8, 8), np.uint8))
    return str(path)


@pytest.mark.parametrize("flags, message", [
    (["--data", "no_such_data"], "unknown dataset"),
    (["--labels-per-class", "1000"], "more than the smallest class"),
    (["--data", "NOLABELS"], "has no labels"),
])
def test_cli_bad_inputs_give_one_clear_error(tmp_path, capsys, flags, message):
    flags = [_unlabelled_npz(tmp_path) if f == "NOLABELS" else f for f in flags]
    argv = ["augment", "--data", "digits", "--out", str(tmp_path / "exp"), "--no-progress", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not (tmp_path / "exp" / "gan").exists()


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps"),
    (["--labels-per-class", "-3"], "--labels-per-class"),
    (["--ratios", "1,-2"], "--ratios"),
    (["--min-confidence", "0"], "--min-confidence"),
])
def test_cli_non_positive_numbers_are_refused(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["augment", "--data", "digits", "--out", str(tmp_path / "exp"), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
