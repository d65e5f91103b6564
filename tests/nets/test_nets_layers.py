"""Shared layers: condition checks and embeddings, projection head, minibatch std, spectral norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.nets.layers import (
    ConditionEmbedding,
    MinibatchStdDev,
    ProjectionHead,
    add_spectral_norm_,
    check_condition,
    refresh_spectral_norm_,
    weight_of,
)


def test_check_condition_accepts_matching_inputs() -> None:
    check_condition(0, 0, 3, None, None)
    check_condition(5, 0, 3, torch.tensor([0, 4, 2]), None)
    check_condition(5, 2, 3, torch.tensor([0, 4, 2], dtype=torch.int32), torch.zeros(3, 2))
    check_condition(0, 2, None, None, torch.zeros(7, 2))


@pytest.mark.parametrize(
    ("n_classes", "cond_dim", "labels", "cond", "message"),
    [
        (5, 0, None, None, "class-conditional"),
        (0, 0, torch.tensor([1, 2]), None, "not class-conditional"),
        (5, 0, torch.tensor([1.0, 2.0]), None, "integer"),
        (5, 0, torch.tensor([[1, 2]]), None, "shape"),
        (0, 3, None, None, "vector condition"),
        (0, 3, None, torch.zeros(2, 4), r"shape \(2, 3\)"),
        (0, 0, None, torch.zeros(2, 3), "no vector condition"),
    ],
)
def test_check_condition_errors(
    n_classes: int, cond_dim: int, labels: torch.Tensor | None, cond: torch.Tensor | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_condition(n_classes, cond_dim, 2, labels, cond)


def test_condition_embedding() -> None:
    labels, cond = torch.tensor([0, 2, 1]), torch.randn(3, 4)
    by_label = ConditionEmbedding(3, 0, 8)
    assert by_label(labels).shape == (3, 8)
    assert by_label.condition_linear is None
    by_vector = ConditionEmbedding(0, 4, 8)
    assert by_vector(cond=cond).shape == (3, 8)
    both = ConditionEmbedding(3, 4, 8)
    assert both.label_embedding is not None and both.condition_linear is not None
    expected = both.label_embedding(labels) + both.condition_linear(cond)
    torch.testing.assert_close(both(labels, cond), expected)
    with pytest.raises(ValueError, match="n_classes > 0"):
        ConditionEmbedding(0, 0, 8)
    with pytest.raises(ValueError, match="pass cond"):
        both(labels)


def test_projection_head_is_inner_product() -> None:
    head = ProjectionHead(4, 0, 6)
    features, labels = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 0])
    expected = (head.embed.label_embedding.weight[labels] * features).sum(1)
    torch.testing.assert_close(head(features, labels), expected)
    assert head.embed.label_embedding.weight.abs().max() < 1  # Xavier, not N(0, 1)
    assert ProjectionHead(0, 3, 6).embed.condition_linear.bias is None


def test_minibatch_std_images() -> None:
    x = torch.randn(8, 3, 5, 6, requires_grad=True)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 4, 5, 6)
    torch.testing.assert_close(out[:, :3], x)
    stat = out[:, 3]
    # groups are {0, 2, 4, 6} and {1, 3, 5, 7}; the statistic is constant within a sample's map
    expected_first = x[0::2].std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(stat[0], torch.full((5, 6), expected_first.item()), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stat[0::2], stat[0].expand(4, 5, 6))
    assert not torch.allclose(stat[0], stat[1])
    out.sum().backward()
    assert x.grad is not None


def test_minibatch_std_vectors_and_group_sizes() -> None:
    layer = MinibatchStdDev(group_size=4)
    assert layer(torch.randn(6, 10)).shape == (6, 11)  # group of 3: the largest divisor of 6 up to 4
    assert layer(torch.randn(5, 10)).shape == (5, 11)  # group of 1 (5 is prime): a constant feature
    single = layer(torch.randn(1, 10))
    assert single[0, -1] < 1e-3
    same = layer(torch.ones(4, 10))
    assert torch.all(same[:, -1] < 1e-3)  # identical samples: no spread
    with pytest.raises(ValueError, match="group_size"):
        MinibatchStdDev(group_size=0)


def test_add_spectral_norm_is_idempotent_and_normalises() -> None:
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 1), nn.Conv2d(3, 4, 3))
    add_spectral_norm_(model)
    add_spectral_norm_(model)
    for layer in (model[0], model[2], model[3]):
        assert len(layer.parametrizations.weight) == 1
    model.eval()
    for layer in (model[0], model[3]):
        sigma = torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2).item()
        assert 0.999 < sigma < 1.1


def test_refresh_after_reinit() -> None:
    torch.manual_seed(0)
    layer = add_spectral_norm_(nn.Linear(64, 64))
    assert isinstance(layer, nn.Linear)
    with torch.no_grad():
        weight_of(layer).copy_(
            torch.diag(torch.cat([torch.tensor([5.0]), torch.linspace(0.5, 2.5, 63)]))
        )  # new weight, new singular vectors
    layer.eval()
    stale = torch.linalg.matrix_norm(layer.weight, ord=2).item()
    refresh_spectral_norm_(layer)
    assert not layer.parametrizations.weight.training  # mode restored
    fresh = torch.linalg.matrix_norm(layer.weight, ord=2).item()
    assert abs(stale - 1.0) > 0.1
    assert abs(fresh - 1.0) < 0.02


def test_weight_of() -> None:
    plain = nn.Linear(2, 2)
    assert weight_of(plain) is plain.weight
    wrapped = add_spectral_norm_(nn.Linear(2, 2))
    assert weight_of(wrapped) is wrapped.parametrizations.weight.original
