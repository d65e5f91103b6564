"""Scores computed with classifiers: judge accuracy, class coverage, classification accuracy score.

- ``judge_accuracy``: does a conditional generator draw the class it was asked for?
- ``class_coverage``: does an unconditional generator produce every class, in fair shares?
- ``classification_accuracy_score`` (CAS, Ravuri & Vinyals 2019): is the generated data good
  enough to *train* a classifier that works on real test data? It catches missing variety that
  sample-quality scores miss.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ganforge.errors import ConfigError
from ganforge.metrics.judge import (
    ImagesLike,
    JudgeNet,
    accuracy,
    check_images,
    default_epochs,
    fit_judge_net,
    images_tensor,
)


class Predictor(Protocol):
    """Anything with ``predict(images) -> (N,) class indices`` and ``n_classes``: a ``Judge``, or a stub in tests."""

    n_classes: int

    def predict(self, images: ImagesLike) -> np.ndarray: ...


def _labels_array(labels: torch.Tensor | np.ndarray, n: int, what: str) -> np.ndarray:
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.reshape(-1)
    if y.shape != (n,):
        raise ConfigError(f"{what}: expected {n} labels, got shape {tuple(np.shape(labels))}")
    return y.astype(np.int64)


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p ‖ uniform) in nats of the histogram ``counts`` (``p = counts / sum``; ``0 · log 0 = 0``).

    0 for perfectly balanced predictions, ``log K`` when everything falls into one of ``K`` bins.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def judge_accuracy(judge: Predictor, images: ImagesLike, labels: torch.Tensor | np.ndarray) -> float:
    """Share of generated ``images`` that ``judge`` classifies as the label they were requested with.

    For conditional generators: ``labels[i]`` is the class image ``i`` was generated for.
    """
    predicted = np.asarray(judge.predict(images)).reshape(-1)
    wanted = _labels_array(labels, len(predicted), "judge_accuracy")
    if len(predicted) == 0:
        raise ConfigError("judge_accuracy needs at least one image")
    return float(np.mean(predicted == wanted))


def class_coverage(judge: Predictor, images: ImagesLike, *, min_share: float | None = None) -> dict[str, Any]:
    """How the judge's predictions on ``images`` spread over its ``K`` classes.

    Definitions (``N`` images, predicted-class histogram ``counts`` over ``K`` bins):

    - ``classes_covered``: number of classes whose share of predictions ``counts[k] / N`` is at
      least ``min_share``, by default ``1 / (10 K)`` (a tenth of the fair share: 1% for 10
      classes), so a class that a few stray samples land in does not count as generated;
    - ``classes_predicted``: number of classes predicted at least once;
    - ``histogram``: ``counts`` as a list of ``K`` ints;
    - ``kl_to_uniform``: KL(counts / N ‖ uniform) in nats, ``0 · log 0 = 0``; 0 means balanced,
      ``log K`` total collapse onto one class. With few samples it is biased upwards (a balanced
      generator scores about ``(K - 1) / (2 N)``).
    """
    predicted = np.asarray(judge.predict(images)).reshape(-1).astype(np.int64)
    n_classes = int(judge.n_classes)
    n = len(predicted)
    if n == 0:
        raise ConfigError("class_coverage needs at least one image")
    threshold = 1.0 / (10 * n_classes) if min_share is None else float(min_share)
    counts = np.bincount(predicted, minlength=n_classes)[:n_classes]
    shares = counts / n
    return {
        "n": n,
        "n_classes": n_classes,
        "min_share": threshold,
        "classes_covered": int(np.sum(shares >= threshold)),
        "classes_predicted": int(np.sum(counts > 0)),
        "histogram": [int(c) for c in counts],
        "kl_to_uniform": kl_to_uniform(counts),
    }


def classification_accuracy_score(
    fake_images: ImagesLike,
    fake_labels: torch.Tensor | np.ndarray,
    real_test_images: ImagesLike,
    real_test_labels: torch.Tensor | np.ndarray,
    *,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> float:
    """Classification accuracy score (Ravuri & Vinyals 2019): train on generated, test on real.

    A fresh ``JudgeNet`` is trained, with the judges' recipe, on ``fake_images`` labelled with the
    classes they were generated for, and its accuracy on the real test set is returned. A
    generator that draws only the easy examples of each class scores well on judge accuracy but
    poorly here. Compare against the same classifier trained on as many real images (the "real
    data" baseline of the paper). ``epochs`` defaults to the judges' size-based rule
    (``default_epochs``). Deterministic given ``seed`` on CPU.
    """
    fake = images_tensor(fake_images)
    real = images_tensor(real_test_images)
    if fake.dim() != 4 or real.dim() != 4:
        raise ConfigError(f"CAS takes (N, C, H, W) images, got fake {tuple(fake.shape)} and real {tuple(real.shape)}")
    shape = tuple(int(s) for s in real.shape[1:])
    fake = check_images(fake, shape, "CAS (generated images vs the real test images)")  # type: ignore[arg-type]
    check_images(real, shape, "CAS")  # type: ignore[arg-type]
    y_fake = torch.from_numpy(_labels_array(fake_labels, len(fake), "CAS fake_labels"))
    y_real = torch.from_numpy(_labels_array(real_test_labels, len(real), "CAS real_test_labels"))
    if len(fake) == 0 or len(real) == 0:
        raise ConfigError("CAS needs generated and real test images")
    n_classes = max(int(y_fake.max()), int(y_real.max())) + 1
    if epochs is None:
        epochs = default_epochs("", len(fake))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JudgeNet(shape, max(2, n_classes))  # type: ignore[arg-type]
    fit_judge_net(model, fake, y_fake, epochs=epochs, seed=seed, device=device, progress=progress, desc="CAS")
    return accuracy(model, real, y_real)
