"""`Augmenter`: a class-conditional GAN fitted to a few labelled images, used as a source of extra training data.

    from ganforge import Augmenter
    from ganforge.apps.augment import accuracy, train_classifier

    augmenter = Augmenter(steps=1500, seed=0).fit(x_labelled, y_labelled)   # uint8 (N, H, W) or (N, C, H, W)
    x_syn, y_syn = augmenter.augment(n_per_class=60, min_confidence=0.9)     # balanced, judge-filtered
    model = train_classifier(x_labelled, y_labelled, extra=(x_syn, y_syn))
    print(accuracy(model, x_test, y_test))

How it works: ``fit`` writes the labelled images as ``labelled.npz`` next to a ganforge run directory
(``out/gan``) and trains a conditional DCGAN there with `ganforge.train.run.train`: DiffAugment (the
stabiliser that matters most for a few hundred images, Zhao et al. 2020), spectral normalisation and the
minibatch standard deviation in D, and an EMA of G's weights. Everything the trainer writes (stats, doctor
findings, sample grids, checkpoints, report) is kept, and an interrupted fit continues with ``resume="auto"``.
``augment`` samples the EMA generator class by class; with ``min_confidence`` a judge
(`ganforge.metrics.judge.JudgeNet` trained on the labelled images only) keeps the samples it assigns to their
intended class with at least that probability.

The second half of this module is the fixed, small classifier of the augmentation experiment
(``ganforge augment``, ``bench/augment.py``): a 3-conv CNN stopped early on a validation split carved from
the labelled images, by the same procedure in every arm.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ganforge.errors import ConfigError, GanforgeError

DEFAULT_POLICY = "color,translation,cutout"
AUGMENTER_FILE = "augmenter.json"
LABELLED_FILE = "labelled.npz"
GAN_DIR = "gan"
FORMAT = 1
# augment(min_confidence=...) gives up on a class after drawing this many candidates per sample wanted
MAX_DRAWS_PER_SAMPLE = 20


class ProbabilityJudge(Protocol):
    """Anything with ``probabilities(uint8 (N, C, H, W)) -> (N, n_classes)``, e.g. `ganforge.metrics.judge.Judge`."""

    def probabilities(self, images: torch.Tensor) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# input checks shared by the Augmenter, the classifier and the CLI


def as_image_array(images: Any, who: str = "images") -> np.ndarray:
    """Labelled images as uint8 (N, C, H, W): accepts uint8 (N, H, W) or (N, C, H, W) arrays or tensors."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ConfigError(f"{who} must be an array of shape (N, H, W) or (N, C, H, W), got shape {x.shape}")
    if x.dtype != np.uint8:
        raise ConfigError(f"{who} must be uint8 pixels in 0..255, got dtype {x.dtype}; convert them first "
                          "(e.g. (x * 255).round().astype(np.uint8) for floats in [0, 1])")
    if len(x) == 0:
        raise ConfigError(f"{who} is empty")
    return np.ascontiguousarray(x)


def as_label_array(labels: Any, n: int, who: str = "labels") -> np.ndarray:
    """Integer class labels (N,) as int64, checked against the number of images and for negatives."""
    if labels is None:
        raise ConfigError(f"{who} are missing: a class-conditional GAN and a classifier need a label per image")
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ConfigError(f"{who} must be a 1-D array with one label per image ({n}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ConfigError(f"{who} must be integer class indices 0..K-1, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise ConfigError(f"{who} must be class indices 0..K-1, found {int(y.min())}")
    return y


def export_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) as written to synthetic.npz: (N, H, W) for one channel, else unchanged."""
    return x[:, 0] if x.shape[1] == 1 else x


# ---------------------------------------------------------------------------------------------
# the labelled subset


@dataclass
class Subset:
    """A stratified, seeded draw of ``labels_per_class`` training images per class: ``subset.json``."""

    dataset: str
    labels_per_class: int
    seed: int
    indices: list[int]  # into the training split, sorted
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        from ganforge.train.config import save_json

        save_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Subset:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(dataset=str(d["dataset"]), labels_per_class=int(d["labels_per_class"]), seed=int(d["seed"]),
                       indices=[int(i) for i in d["indices"]], split=str(d.get("split", "train")))
        except FileNotFoundError:
            raise ConfigError(f"no subset file at {path}") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise GanforgeError(f"{path} is not a subset file written by ganforge augment: {e}") from None


def select_subset(labels: Any, labels_per_class: int, seed: int) -> np.ndarray:
    """Indices of ``labels_per_class`` images of every class, drawn without replacement (sorted).

    Stratified and seeded: the same labels and seed always give the same indices. Raises ConfigError when
    a class has fewer images than asked for.
    """
    y = np.asarray(labels)
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, int | np.integer) \
            or labels_per_class < 1:
        raise ConfigError(f"--labels-per-class must be a positive integer, got {labels_per_class!r}")
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < labels_per_class:
        smallest = int(classes[counts.argmin()])
        raise ConfigError(f"--labels-per-class {labels_per_class} is more than the smallest class has (class "
                          f"{smallest}: {int(counts.min())} images); give at most {int(counts.min())}")
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(y == c), size=labels_per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the Augmenter


SETTINGS = ("steps", "batch_size", "seed", "diffaugment", "ema", "spectral_norm", "minibatch_std", "r1_weight",
            "width", "lr_g", "lr_d", "device", "threads", "progress", "doctor", "sample_every", "checkpoint_every")


class Augmenter:
    """Fit a class-conditional GAN on a small labelled image set; draw balanced synthetic labelled samples.

    Every setting is a public attribute of the same name. ``width`` is DCGAN's ``ngf`` and ``ndf`` (32 trains
    about 1.5x faster than 64 on a CPU). ``ema`` is 0.99, not the usual 0.999: the average starts from G's
    initial weights, and after the 1,000-2,000 steps a few hundred images need, 0.999 still holds 14-37 % of
    them (grey noise at step 500 on Fashion-MNIST). ``minibatch_std`` is on because without it the conditional
    G collapsed to one image per class (step 661, 60 images per class).
    ``out`` keeps the run (``out/gan``: stats, samples, checkpoints, report.html, and ``out/labelled.npz``);
    None trains in a temporary folder that lives as long as the object.
    """

    def __init__(self, *, steps: int = 1500, batch_size: int = 64, seed: int = 0, diffaugment: str = DEFAULT_POLICY,
                 ema: float = 0.99, spectral_norm: bool = True, minibatch_std: bool = True, r1_weight: float = 0.0,
                 width: int = 32,
                 lr_g: float = 2e-4, lr_d: float = 2e-4, device: str = "cpu", threads: int = 0,
                 progress: bool = True, doctor: bool = True, sample_every: int = 500, checkpoint_every: int = 500,
                 out: str | os.PathLike | None = None):
        self.steps, self.batch_size, self.seed = steps, batch_size, seed
        self.diffaugment, self.ema, self.spectral_norm, self.r1_weight = diffaugment, ema, spectral_norm, r1_weight
        self.minibatch_std = minibatch_std
        self.width, self.lr_g, self.lr_d = width, lr_g, lr_d
        self.device, self.threads, self.progress, self.doctor = device, threads, progress, doctor
        self.sample_every, self.checkpoint_every = sample_every, checkpoint_every
        self.out = Path(out) if out is not None else None
        for name in ("steps", "batch_size", "width", "sample_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Augmenter {name} must be a positive integer, got {value!r}")
        self.run_config().validate()  # the trainer's own checks (DiffAugment policy, EMA range, ...)
        self.trained = None  # ganforge.train.run.TrainedRun once fitted or loaded
        self.judge = None  # the judge trained on the labelled images, made on first use
        self.n_classes = 0
        self.image_shape: tuple[int, int, int] | None = None
        self._labelled: tuple[np.ndarray, np.ndarray] | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SETTINGS}

    @property
    def run_dir(self) -> Path | None:
        """The GAN's ganforge run directory (None before ``fit``)."""
        root = self.out if self.out is not None else (Path(self._tmp.name) if self._tmp is not None else None)
        return None if root is None else root / GAN_DIR

    def run_config(self, data: str = "labelled.npz"):
        """The `RunConfig` of the GAN: a conditional DCGAN with the limited-data stabilisers."""
        from ganforge.train.config import RunConfig

        return RunConfig(model="dcgan", conditional=True, data=data,
                         model_config={"ngf": self.width, "ndf": self.width},
                         steps=self.steps, batch_size=self.batch_size, seed=self.seed, diffaugment=self.diffaugment,
                         ema=self.ema, spectral_norm=self.spectral_norm, minibatch_std=self.minibatch_std,
                         r1_weight=self.r1_weight, lr_g=self.lr_g,
                         lr_d=self.lr_d, device=self.device, threads=self.threads, progress=self.progress,
                         doctor=self.doctor, sample_every=self.sample_every, checkpoint_every=self.checkpoint_every)

    def fit(self, images: Any, labels: Any, *, resume: str | None = None) -> Augmenter:
        """Train the conditional GAN on ``images`` (uint8 (N, H, W) or (N, C, H, W)) and ``labels`` (0..K-1).

        Returns self. ``resume="auto"`` continues an interrupted fit in ``out`` (the same images are required).
        Every class 0..K-1 must have at least one image.
        """
        from ganforge.train.run import load_run, train

        x = as_image_array(images)
        y = as_label_array(labels, len(x))
        n_classes = int(y.max()) + 1
        missing = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
        if n_classes < 2 or missing:
            raise ConfigError(f"labels must cover classes 0..K-1 with K >= 2; missing classes {missing}" if missing
                              else "a conditional GAN needs at least 2 classes, got 1")
        if self.out is None:
            if resume is not None:
                raise ConfigError("resume needs out=...: a temporary run cannot be continued")
            self._tmp = tempfile.TemporaryDirectory(prefix="ganforge-augment-")
        root = self.out if self.out is not None else Path(self._tmp.name)
        root.mkdir(parents=True, exist_ok=True)
        data_path = (root / LABELLED_FILE).resolve()
        if resume is not None and data_path.exists():
            with np.load(data_path, allow_pickle=False) as stored:
                if not (np.array_equal(stored["x_train"], x) and np.array_equal(stored["y_train"], y)):
                    raise ConfigError(f"resume: {data_path} holds other images than the ones given; fit the same "
                                      "labelled set, or start a new run in another out")
        else:
            if (root / GAN_DIR).exists() and resume is None:
                raise ConfigError(f"{root / GAN_DIR} already holds a run; pass resume='auto' to continue it, or "
                                  "choose another out")
            np.savez(data_path, x_train=x, y_train=y)
        train(self.run_config(data=str(data_path)), out=root / GAN_DIR, resume=resume)
        self.trained = load_run(root / GAN_DIR, device=self.device)
        self.n_classes = n_classes
        self.image_shape = tuple(int(s) for s in x.shape[1:])  # type: ignore[assignment]
        self._labelled = (x, y)
        self.judge = None
        if self.out is not None:
            self._write_meta(self.out)
        return self

    # --- sampling --------------------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.trained is None:
            raise ConfigError("this Augmenter is not fitted: call fit(images, labels) or Augmenter.load(dir) first")

    def sample_class(self, label: int, n: int, seed: int) -> np.ndarray:
        """``n`` uint8 (n, C, H, W) images of class ``label`` from the EMA generator, seeded."""
        from ganforge.grid import to_uint8

        self._require_fitted()
        return to_uint8(self.trained.sample(n, labels=int(label), seed=seed))

    def make_judge(self, *, epochs: int | None = None, progress: bool | None = None):
        """A `ganforge.metrics.judge.Judge` trained on the labelled images only (never on test data).

        About 200 optimiser steps (batch 128, random shifts of a fourteenth of the side), at least 15 epochs: a
        judge of a few hundred images overfits soon, and 600 steps took 4.6 minutes at 28x28 on a busy 2-core CPU.
        """
        from ganforge.metrics.judge import Judge, JudgeNet, fit_judge_net

        if self._labelled is None:
            raise ConfigError("min_confidence needs a judge: this Augmenter was loaded without its labelled images; "
                              "pass judge=... (anything with .probabilities(images)) to augment")
        x, y = self._labelled
        if epochs is None:
            epochs = max(15, math.ceil(200 / math.ceil(len(x) / 128)))
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            model = JudgeNet(tuple(x.shape[1:]), self.n_classes)  # type: ignore[arg-type]
        fit_judge_net(model, torch.from_numpy(x), torch.from_numpy(y), epochs=epochs, seed=self.seed,
                      progress=self.progress if progress is None else progress, desc="augment judge")
        # no test split here: test_accuracy is unknown (NaN) by design
        return Judge(model, dataset="labelled", test_accuracy=float("nan"), meta={"n_train": len(x), "epochs": epochs})

    def augment(self, n_per_class: int, seed: int | None = None, min_confidence: float | None = None,
                judge: ProbabilityJudge | None = None, on_shortfall: str = "error") -> tuple[np.ndarray, np.ndarray]:
        """``n_per_class`` synthetic images of every class: ``(x, y)``.

        ``x`` is uint8 (N, H, W) for one-channel images, else (N, C, H, W); ``y`` int64, grouped by class 0..K-1.
        With ``min_confidence`` (in (0, 1]) only samples that ``judge`` (default: one trained on the labelled
        images, see ``make_judge``) assigns to their intended class with at least that probability are kept;
        more are drawn until every class has ``n_per_class``. A class that needs more than
        ``MAX_DRAWS_PER_SAMPLE`` candidates per kept sample raises GanforgeError (``on_shortfall="error"``), or,
        with ``on_shortfall="warn"``, is topped up with its most confident rejected candidates and a warning.
        The share of candidates accepted per class is left in ``self.acceptance``.
        """
        self._require_fitted()
        if isinstance(n_per_class, bool) or not isinstance(n_per_class, int | np.integer) or n_per_class < 1:
            raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
        if min_confidence is not None and not 0.0 < min_confidence <= 1.0:
            raise ConfigError(f"min_confidence is a probability in (0, 1], got {min_confidence}")
        if on_shortfall not in ("error", "warn"):
            raise ConfigError(f"on_shortfall must be 'error' or 'warn', got {on_shortfall!r}")
        seed = self.seed if seed is None else int(seed)
        if min_confidence is not None and judge is None:
            if self.judge is None:
                self.judge = self.make_judge()
            judge = self.judge
        self.acceptance: dict[int, float] = {}
        xs, ys = [], []
        for label in range(self.n_classes):
            if min_confidence is None:
                x = self.sample_class(label, n_per_class, _class_seed(seed, label, 0))
            else:
                x = self._confident(label, n_per_class, seed, min_confidence, judge, on_shortfall)
            xs.append(x)
            ys.append(np.full(n_per_class, label, dtype=np.int64))
        return export_images(np.concatenate(xs)), np.concatenate(ys)

    def _confident(self, label: int, n: int, seed: int, min_confidence: float, judge: ProbabilityJudge,
                   on_shortfall: str) -> np.ndarray:
        kept: list[np.ndarray] = []
        rejected: list[tuple[np.ndarray, np.ndarray]] = []  # (images, their confidence), for a top-up
        n_kept = drawn = draw = 0
        cap = MAX_DRAWS_PER_SAMPLE * n
        while n_kept < n and drawn < cap:
            batch = min(cap - drawn, max(64, 2 * (n - n_kept)))
            x = self.sample_class(label, batch, _class_seed(seed, label, draw))
            probabilities = np.asarray(judge.probabilities(torch.from_numpy(x)))
            if probabilities.ndim != 2 or probabilities.shape[0] != len(x) or probabilities.shape[1] <= label:
                raise ConfigError(f"the judge returned probabilities of shape {probabilities.shape} for {len(x)} "
                                  f"images; expected ({len(x)}, n_classes >= {label + 1})")
            confidence = probabilities[:, label]
            good = confidence >= min_confidence
            kept.append(x[good])
            rejected.append((x[~good], confidence[~good]))
            n_kept += int(good.sum())
            drawn += batch
            draw += 1
        self.acceptance[label] = n_kept / drawn
        if n_kept < n:
            message = (f"augment: class {label} gave only {n_kept} of {n} samples with judge confidence >= "
                       f"{min_confidence} in {drawn} draws ({n_kept / drawn:.1%} accepted)")
            if on_shortfall == "error":
                raise GanforgeError(f"{message}; lower min_confidence, train the GAN longer (steps), or ask for "
                                    "fewer samples per class")
            images = np.concatenate([r[0] for r in rejected])
            order = np.argsort(-np.concatenate([r[1] for r in rejected]), kind="stable")
            kept.append(images[order[: n - n_kept]])
            warnings.warn(f"{message}; topped up with the {n - n_kept} most confident of the rest", UserWarning,
                          stacklevel=3)
        return np.concatenate(kept)[:n]

    # --- persistence -----------------------------------------------------------------------------------------
    def _write_meta(self, folder: Path) -> None:
        from ganforge.train.config import save_json

        save_json(folder / AUGMENTER_FILE, {"format": FORMAT, "settings": {**self.settings()},
                                            "n_classes": self.n_classes, "image_shape": list(self.image_shape or ())})

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the augmenter to ``folder``: ``augmenter.json``, the GAN run (``gan/``) and ``labelled.npz``.

        Saving to the ``out`` it was fitted in only writes augmenter.json (the run is already there).
        """
        self._require_fitted()
        folder = Path(folder)
        root = self.run_dir.parent  # type: ignore[union-attr]
        if folder.resolve() != root.resolve():
            if (folder / GAN_DIR).exists():
                raise ConfigError(f"{folder / GAN_DIR} already exists; save to a new folder")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copytree(root / GAN_DIR, folder / GAN_DIR)
            if (root / LABELLED_FILE).exists():
                shutil.copy2(root / LABELLED_FILE, folder / LABELLED_FILE)
        self._write_meta(folder)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu") -> Augmenter:
        """An Augmenter saved by ``save`` or fitted with ``out=folder``, ready to ``augment``."""
        from ganforge.train.run import load_run

        folder = Path(folder)
        try:
            meta = json.loads((folder / AUGMENTER_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{folder} holds no {AUGMENTER_FILE}: not an Augmenter directory") from None
        except ValueError as e:
            raise GanforgeError(f"{folder / AUGMENTER_FILE} is not valid JSON: {e}") from None
        settings = {**meta["settings"], "device": device}
        augmenter = cls(**settings, out=folder)
        augmenter.trained = load_run(folder / GAN_DIR, device=device)
        augmenter.n_classes = int(meta["n_classes"])
        augmenter.image_shape = tuple(meta["image_shape"])  # type: ignore[assignment]
        labelled = folder / LABELLED_FILE
        if labelled.exists():
            with np.load(labelled, allow_pickle=False) as stored:
                augmenter._labelled = (stored["x_train"], stored["y_train"])
        return augmenter


def _class_seed(seed: int, label: int, draw: int) -> int:
    """A separate noise stream per (seed, class, draw): adding a class never changes another's samples."""
    return (int(seed) * 1_000_003 + label * 10_007 + draw) % (2**63)


# ---------------------------------------------------------------------------------------------
# the experiment's classifier


class SmallCNN(nn.Module):
    """The experiment's fixed classifier: three 3x3 conv layers (BN, ReLU; max-pool after the first two), global
    average pooling, dropout and a linear layer. Any (C, H, W) with H, W >= 4."""

    def __init__(self, input_shape: Sequence[int], n_classes: int, widths: Sequence[int] = (32, 64, 128),
                 dropout: float = 0.3):
        super().__init__()
        channels = int(input_shape[0])
        w1, w2, w3 = (int(w) for w in widths)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.features = nn.Sequential(
            nn.Conv2d(channels, w1, 3, padding=1), nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, w1, H/2, W/2)
            nn.Conv2d(w1, w2, 3, padding=1), nn.BatchNorm2d(w2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, w2, H/4, W/4)
            nn.Conv2d(w2, w3, 3, padding=1), nn.BatchNorm2d(w3), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, w3)
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(w3, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ClassifierRecipe:
    """The fixed training recipe and tuning budget, the same in every arm of the experiment.

    Default: a fixed 1000 steps with a cosine learning rate on every labelled image (plus any synthetic ones),
    last weights kept: no tuning at all, so every arm gets exactly the same budget. On Fashion-MNIST with 60
    labels per class this gives 78.7 % real-only (seed 0), where early stopping on a 20 % validation split
    (which costs a fifth of the few labels) gave 71.0 % after 300 steps and 75.3 % after 1500 (widths 16-32-64).
    ``val_share`` > 0 switches early stopping on: that share of the real labelled images (stratified, at least
    one per class) is held out, the classifier is scored on it every ``eval_every`` steps, and the weights of
    the best check are kept (the earliest on ties). The test set is never looked at.
    """

    max_steps: int = 1000
    eval_every: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 5e-4
    val_share: float = 0.0  # 0: no validation split; train on every labelled image and keep the last weights
    widths: tuple[int, int, int] = (32, 64, 128)
    schedule: str = "cosine"  # or "constant"; cosine anneals the learning rate to 0 over max_steps
    max_shift: int = 2  # classic augmentation: random shift up to this many pixels
    flip: bool = False  # classic augmentation: random horizontal flips too (clothes yes, digits no)

    def __post_init__(self) -> None:
        for name in ("max_steps", "eval_every", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"classifier {name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.val_share < 1:
            raise ConfigError(f"classifier val_share must be in [0, 1), got {self.val_share}")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"classifier schedule must be constant or cosine, got {self.schedule!r}")

    def describe(self) -> str:
        lr = f"lr {self.lr}" + (" cosine-annealed to 0" if self.schedule == "cosine" else "")
        head = (f"SmallCNN (3 conv, widths {list(self.widths)}), AdamW {lr}, weight decay {self.weight_decay}, "
                f"batch {self.batch_size}, {self.max_steps} steps")
        if self.val_share == 0:
            return head + "; no early stopping: trained on every labelled image, last weights kept"
        return (head + f"; early stopping every {self.eval_every} steps on a {self.val_share:.0%} stratified "
                "validation split of the real labelled images (never the test set)")


def classic_augment(x: torch.Tensor, max_shift: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to ``max_shift`` pixels (edges replicated) and, with ``flip``, horizontal flips.

    ``x`` float (B, C, H, W); each image gets its own offsets and flip.
    """
    if flip:
        flips = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(flips[:, None, None, None].to(x.device), x.flip(3), x)
    if max_shift > 0:
        s = max_shift
        height, width = x.shape[2:]
        padded = F.pad(x, (s, s, s, s), mode="replicate")  # (B, C, H + 2s, W + 2s)
        offsets = torch.randint(0, 2 * s + 1, (len(x), 2), generator=generator).tolist()
        x = torch.stack([padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)])
    return x


def _to_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.dim() == 3:
        t = t[:, None]
    return t.to(torch.float32) / 127.5 - 1.0


def stratified_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: ``share`` of every class held out (at least one when the class has two)."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(len(idx) - 1, max(1, round(share * len(idx))))
        val_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def _fit(train: tuple[torch.Tensor, torch.Tensor] | None, extra: tuple[torch.Tensor, torch.Tensor] | None,
         val: tuple[torch.Tensor, torch.Tensor] | None, *, recipe: ClassifierRecipe, seed: int, n_classes: int,
         shape: Sequence[int], classic: bool, extra_share: float, progress: bool) -> SmallCNN:
    """Train a fresh SmallCNN, keeping the weights that score best on ``val`` (None: the last weights).

    The pool is ``train`` plus the synthetic ``extra`` during the first ``extra_share`` of the steps, then
    ``train`` alone (``train`` None: synthetic only). ``model.tuning`` records the chosen step and the curve.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN(shape, n_classes, recipe.widths)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.max_steps) \
            if recipe.schedule == "cosine" else None
        if extra is None and train is None:
            raise ConfigError("nothing to train the classifier on")
        mixed = extra if train is None else train if extra is None else \
            (torch.cat([train[0], extra[0]]), torch.cat([train[1], extra[1]]))
        extra_until = round(extra_share * recipe.max_steps) if extra is not None else 0
        curve: list[tuple[int, float]] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        pool: tuple[torch.Tensor, torch.Tensor] | None = None
        order = torch.empty(0, dtype=torch.long)
        position = 0
        model.train()
        bar = tqdm(range(1, recipe.max_steps + 1), disable=not progress, desc="classifier", unit="step", leave=False)
        for step in bar:
            wanted = mixed if step <= extra_until or train is None else train
            if wanted is not pool or position + recipe.batch_size > len(order):
                pool = wanted
                order = torch.randperm(len(pool[0]), generator=generator)
                position = 0
            index = order[position : position + recipe.batch_size]
            position += recipe.batch_size
            batch = pool[0][index]
            if classic:
                batch = classic_augment(batch, recipe.max_shift, recipe.flip, generator)
            loss = F.cross_entropy(model(batch), pool[1][index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if val is None:
                continue
            if step % recipe.eval_every == 0 or step == recipe.max_steps:
                score = accuracy(model, val[0], val[1])
                curve.append((step, score))
                if best is None or score > best[0]:
                    best = (score, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                model.train()
    if val is None:
        model.tuning = {"steps": recipe.max_steps, "val_accuracy": None, "curve": [],  # type: ignore[attr-defined]
                        "n_val": 0}
        return model.eval()
    assert best is not None
    model.load_state_dict(best[2])
    model.tuning = {"steps": best[1], "val_accuracy": best[0], "curve": curve,  # type: ignore[attr-defined]
                    "n_val": len(val[1])}
    return model.eval()


def train_classifier(x: Any, y: Any, *, extra: tuple[Any, Any] | None = None, extra_share: float = 1.0,
                     classic: bool = False, recipe: ClassifierRecipe | None = None, seed: int = 0,
                     n_classes: int | None = None, progress: bool = False) -> SmallCNN:
    """Train the experiment's classifier on real labelled ``x`` (uint8 (N, H, W) or (N, C, H, W)) and ``y``.

    ``extra`` = (x_syn, y_syn): synthetic images mixed into training (never into validation) during the first
    ``extra_share`` of the steps (1.0: the whole run). ``classic``: random shifts (and flips when the recipe
    says so) on every training batch. Early stopping on a validation split of the real images (see
    `ClassifierRecipe`); for training on synthetic images only see ``train_synthetic_only``. The chosen step
    and the validation curve are in ``model.tuning``.
    """
    recipe = recipe or ClassifierRecipe()
    if not 0.0 <= extra_share <= 1.0:
        raise ConfigError(f"extra_share is a share of the steps in [0, 1], got {extra_share}")
    x_real = _to_float(as_image_array(x, "classifier images"))
    y_np = as_label_array(y, len(x_real), "classifier labels")
    k = int(n_classes or y_np.max() + 1)
    y_real = torch.from_numpy(y_np)
    extra_t = None
    if extra is not None:
        x_extra = _to_float(as_image_array(extra[0], "synthetic images"))
        y_extra = torch.from_numpy(as_label_array(extra[1], len(x_extra), "synthetic labels"))
        if tuple(x_extra.shape[1:]) != tuple(x_real.shape[1:]):
            raise ConfigError(f"synthetic images are {tuple(x_extra.shape[1:])}, real ones {tuple(x_real.shape[1:])}")
        k = max(k, int(y_extra.max()) + 1)
        extra_t = (x_extra, y_extra)
    if recipe.val_share == 0:
        return _fit((x_real, y_real), extra_t, None, recipe=recipe, seed=seed, n_classes=k, shape=x_real.shape[1:],
                    classic=classic, extra_share=extra_share, progress=progress)
    train_idx, val_idx = stratified_split(y_np, recipe.val_share, seed)
    tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    return _fit((x_real[tr], y_real[tr]), extra_t, (x_real[va], y_real[va]), recipe=recipe, seed=seed, n_classes=k,
                shape=x_real.shape[1:], classic=classic, extra_share=extra_share, progress=progress)


def train_synthetic_only(x_syn: Any, y_syn: Any, x_real: Any, y_real: Any, *, recipe: ClassifierRecipe | None = None,
                         seed: int = 0, progress: bool = False) -> SmallCNN:
    """The classification accuracy score's classifier: trained on synthetic images only, stopped early on the same
    validation split of the real labelled images as every other arm (real images are never trained on)."""
    recipe = recipe or ClassifierRecipe()
    x_s = _to_float(as_image_array(x_syn, "synthetic images"))
    y_s = torch.from_numpy(as_label_array(y_syn, len(x_s), "synthetic labels"))
    x_r = _to_float(as_image_array(x_real, "real images"))
    y_np = as_label_array(y_real, len(x_r), "real labels")
    k = int(max(y_np.max(), int(y_s.max())) + 1)
    val = None
    if recipe.val_share > 0:
        _, val_idx = stratified_split(y_np, recipe.val_share, seed)
        va = torch.from_numpy(val_idx)
        val = (x_r[va], torch.from_numpy(y_np)[va])
    return _fit(None, (x_s, y_s), val, recipe=recipe, seed=seed, n_classes=k, shape=x_s.shape[1:], classic=False,
                extra_share=1.0, progress=progress)


@torch.no_grad()
def accuracy(model: nn.Module, x: Any, y: Any, batch_size: int = 1000) -> float:
    """Share of images ``x`` (uint8 (N, H, W) / (N, C, H, W), or floats already in [-1, 1]) classified as ``y``."""
    was_training = model.training
    model.eval()
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        images = x if x.dim() == 4 else x[:, None]
    else:
        images = _to_float(as_image_array(x, "test images"))
    labels = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y, dtype=torch.int64)
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(images))


# ---------------------------------------------------------------------------------------------
# the experiment's arms


@dataclass(frozen=True)
class Arm:
    """One way to train the classifier. ``ratio``: synthetic images per real labelled image (0 = none)."""

    name: str
    ratio: float = 0.0
    classic: bool = False
    filtered: bool = False  # the synthetic images come from augment(min_confidence=...)
    synthetic_only: bool = False  # classification accuracy score: no real image is trained on
    extra_share: float = 1.0  # synthetic images only during this first share of the steps


def default_arms(ratios: Sequence[float], min_confidence: float | None = None) -> list[Arm]:
    """Real only; real + classic augmentation; real + synthetic at each ratio; the same at ratio 1 (or the first)
    with classic augmentation, and judge-filtered when ``min_confidence`` is given; synthetic only."""
    ratios = [float(r) for r in ratios]
    if not ratios or any(not (r > 0 and math.isfinite(r)) for r in ratios):
        raise ConfigError(f"--ratios must be positive numbers, e.g. 0.5,1,2; got {ratios}")
    middle = 1.0 if 1.0 in ratios else ratios[0]
    arms = [Arm("real only"), Arm("real + classic augmentation", classic=True)]
    arms += [Arm(f"real + ganforge x{r:g}", ratio=r) for r in ratios]
    if min_confidence is not None:
        arms.append(Arm(f"real + ganforge x{middle:g}, confidence >= {min_confidence:g}", ratio=middle, filtered=True))
    arms.append(Arm(f"real + classic + ganforge x{middle:g}", ratio=middle, classic=True))
    arms.append(Arm(f"synthetic only x{max(ratios):g} (CAS)", ratio=max(ratios), synthetic_only=True))
    return arms


def take_per_class(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of every class (sets from ``augment`` are grouped by class)."""
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c in np.unique(y)])
    return x[keep], y[keep]


def synthetic_sets(augmenter: Augmenter, arms: Sequence[Arm], labels_per_class: int, seed: int,
                   min_confidence: float | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The synthetic sets the arms need, drawn once: ``"plain"`` at the largest ratio and, when an arm is
    filtered, ``"filtered"`` at the largest filtered ratio (a class the judge rarely accepts is topped up with
    its most confident samples, with a warning; ``augmenter.acceptance`` says how often it accepted). Smaller
    ratios take per-class prefixes."""
    sets = {}
    plain = [a.ratio for a in arms if a.ratio > 0 and not a.filtered]
    filtered = [a.ratio for a in arms if a.ratio > 0 and a.filtered]
    if plain:
        sets["plain"] = augmenter.augment(max(1, round(max(plain) * labels_per_class)), seed=seed)
    if filtered:
        if min_confidence is None:
            raise ConfigError("a filtered arm needs min_confidence")
        sets["filtered"] = augmenter.augment(max(1, round(max(filtered) * labels_per_class)), seed=seed,
                                             min_confidence=min_confidence, on_shortfall="warn")
    return sets


def run_arms(arms: Sequence[Arm], x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             sets: dict[str, tuple[np.ndarray, np.ndarray]], *, recipe: ClassifierRecipe | None = None, seed: int = 0,
             progress: bool = True) -> list[dict[str, Any]]:
    """Train the classifier in every arm (same recipe and seed) and score it on the test set.

    Returns one record per arm: name, test accuracy, the early-stopping step and validation accuracy, and how
    many real and synthetic images it trained on.
    """
    recipe = recipe or ClassifierRecipe()
    labels_per_class = int(np.bincount(y).min())
    n_classes = int(y.max()) + 1
    rows = []
    for arm in tqdm(arms, disable=not progress, desc="arms", unit="arm"):
        extra = None
        if arm.ratio > 0:
            source = sets["filtered" if arm.filtered else "plain"]
            extra = take_per_class(*source, max(1, round(arm.ratio * labels_per_class)))
        if arm.synthetic_only:
            assert extra is not None
            model = train_synthetic_only(extra[0], extra[1], x, y, recipe=recipe, seed=seed)
        else:
            model = train_classifier(x, y, extra=extra, extra_share=arm.extra_share, classic=arm.classic,
                                     recipe=recipe, seed=seed, n_classes=n_classes)
        rows.append({"arm": arm.name, "test_accuracy": accuracy(model, x_test, y_test),
                     "val_accuracy": model.tuning["val_accuracy"],
                     "steps": model.tuning["steps"], "n_real": 0 if arm.synthetic_only else len(y),
                     "n_synthetic": 0 if extra is None else len(extra[1]), **asdict(arm)})
    return rows
