"""Judge accuracy, class coverage and the classification accuracy score, on scikit-learn's digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.data import load
from ganforge.data.images import ImageData
from ganforge.errors import ConfigError
from ganforge.metrics.classifier_scores import (
    class_coverage,
    classification_accuracy_score,
    judge_accuracy,
    kl_to_uniform,
)
from ganforge.metrics.judge import Judge, train_judge


class FixedJudge:
    """A stub judge that 'predicts' whatever it was told to."""

    def __init__(self, predictions: list[int], n_classes: int = 10):
        self.predictions = np.asarray(predictions, dtype=np.int64)
        self.n_classes = n_classes

    def predict(self, images: object) -> np.ndarray:
        return self.predictions


@pytest.fixture(scope="module")
def digits() -> tuple[ImageData, ImageData]:
    return load("digits", "train"), load("digits", "test")


@pytest.fixture(scope="module")
def judge(digits: tuple[ImageData, ImageData]) -> Judge:
    return train_judge(*digits, epochs=6, seed=0, progress=False)


def test_judge_accuracy(judge: Judge, digits: tuple[ImageData, ImageData]) -> None:
    test = digits[1]
    assert judge_accuracy(judge, test.images, test.labels) == pytest.approx(judge.test_accuracy)
    assert judge_accuracy(judge, test.to_float(), test.labels.numpy()) == pytest.approx(judge.test_accuracy)
    wrong = (test.labels + 1) % 10
    assert judge_accuracy(judge, test.images, wrong) < 0.2
    assert judge_accuracy(FixedJudge([1, 2, 3, 4]), None, torch.tensor([1, 2, 0, 0])) == 0.5
    with pytest.raises(ConfigError, match="expected 4 labels"):
        judge_accuracy(FixedJudge([1, 2, 3, 4]), None, [1, 2])


def test_class_coverage_on_real_and_collapsed(judge: Judge, digits: tuple[ImageData, ImageData]) -> None:
    test = digits[1]
    real = class_coverage(judge, test.images)
    assert real["classes_covered"] == 10 and real["classes_predicted"] == 10
    assert sum(real["histogram"]) == len(test) and len(real["histogram"]) == 10
    assert real["kl_to_uniform"] < 0.05
    assert real["min_share"] == pytest.approx(0.01)

    collapsed = class_coverage(judge, test.images[:1].expand(50, -1, -1, -1))
    assert collapsed["classes_covered"] == 1
    assert collapsed["kl_to_uniform"] == pytest.approx(math.log(10))


def test_class_coverage_threshold() -> None:
    # 1000 predictions: class 0 gets 990, class 1 gets 9 (0.9% < 1%), class 2 gets 1.
    stub = FixedJudge([0] * 990 + [1] * 9 + [2])
    result = class_coverage(stub, None)
    assert result["classes_covered"] == 1
    assert result["classes_predicted"] == 3
    assert result["histogram"][:3] == [990, 9, 1]
    assert class_coverage(stub, None, min_share=0.001)["classes_covered"] == 3


def test_kl_to_uniform() -> None:
    assert kl_to_uniform(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert kl_to_uniform(np.array([7, 0, 0, 0])) == pytest.approx(math.log(4))
    assert kl_to_uniform(np.array([1, 1, 0, 0])) == pytest.approx(math.log(2))


def test_cas_real_data_scores_high(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    score = classification_accuracy_score(train.to_float(), train.labels, test.images, test.labels, epochs=6)
    assert score >= 0.85


def test_cas_shuffled_labels_near_chance(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    shuffled = train.labels[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    score = classification_accuracy_score(train.images, shuffled, test.images, test.labels, epochs=3, seed=1)
    assert score <= 0.3


def test_cas_refuses_mismatched_sizes(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    with pytest.raises(ConfigError, match="resize them first"):
        classification_accuracy_score(torch.zeros(4, 1, 16, 16), [0, 1, 2, 3], test.images, test.labels, epochs=1)
