"""MLP GAN: any shape, layer widths, conditioning layouts, spectral norm and minibatch std."""

from __future__ import annotations

import pytest
import torch
from nets_helpers import SMALL
from torch import nn

from ganforge.data.spec import DataSpec
from ganforge.nets import build, mlp
from ganforge.nets.layers import MinibatchStdDev


def linear_widths(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def test_default_layout() -> None:
    generator, discriminator = build("mlp", DataSpec((1, 28, 28)))
    assert linear_widths(generator) == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    assert linear_widths(discriminator) == [(784, 512), (512, 256), (256, 1)]
    assert isinstance(generator.squash, nn.Tanh)
    assert all(m.negative_slope == 0.2 for m in generator.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.ReLU) for m in generator.modules())


@pytest.mark.parametrize(("shape", "kind"), [((5,), "vector"), ((1, 3, 5), "image"), ((3, 27, 27), "image")])
def test_any_shape(shape: tuple[int, ...], kind: str) -> None:
    generator, discriminator = build("mlp", DataSpec(shape, kind=kind), **SMALL["mlp"])
    fake = generator(torch.randn(3, generator.z_dim))
    assert fake.shape == (3, *shape)
    assert discriminator(fake).shape == (3,)
    assert isinstance(generator.squash, nn.Tanh if kind == "image" else nn.Identity)


def test_no_hidden_layers() -> None:
    generator, discriminator = build("mlp", DataSpec((2,), kind="vector", n_classes=3), hidden_g=(), hidden_d=[])
    labels = torch.tensor([0, 1, 2])
    assert discriminator(generator(torch.randn(3, 100), labels), labels).shape == (3,)


def test_conditional_layouts() -> None:
    spec = DataSpec((1, 8, 8), n_classes=10, cond_dim=6)
    generator, projection = build("mlp", spec, embed_dim=4, hidden_d=(32, 16))
    assert linear_widths(generator)[1] == (100 + 4, 256)  # z joined with the condition embedding
    assert projection.embed is None and projection.projection is not None
    assert projection.projection.embed.out_dim == 16  # phi(x): the last hidden layer
    _, concat = build("mlp", spec, embed_dim=4, hidden_d=(32, 16), condition="concat")
    assert concat.projection is None
    assert linear_widths(concat)[1] == (64 + 4, 32)  # flattened x joined with the embedding


def test_spectral_norm_constrains_every_linear() -> None:
    spec = DataSpec((2,), kind="vector", n_classes=3)
    _, discriminator = build("mlp", spec, spectral_norm=True, hidden_d=(64, 64))
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    assert len(layers) == 4 and all(hasattr(m, "parametrizations") for m in layers)
    with torch.no_grad():
        for layer in layers:
            layer.parametrizations.weight.original.mul_(10.0)  # as if the weights had grown in training
    x, labels = torch.randn(16, 2), torch.randint(0, 3, (16,))
    for _ in range(10):
        discriminator(x, labels)
    discriminator.eval()
    for layer in layers:
        assert 0.999 < torch.linalg.matrix_norm(layer.weight, ord=2).item() < 1.1, layer


def test_minibatch_std_before_last_linear() -> None:
    _, discriminator = build("mlp", DataSpec((2,), kind="vector"), hidden_d=(32, 16), minibatch_std=True)
    assert isinstance(discriminator.minibatch_std, MinibatchStdDev)
    assert discriminator.output.in_features == 16 + 1
    assert discriminator(torch.randn(8, 2)).shape == (8,)


def test_config_coerces_lists() -> None:
    config = mlp.Config(hidden_g=[64, 128], hidden_d=[32])  # type: ignore[arg-type]  # as from JSON
    assert config.hidden_g == (64, 128) and config.hidden_d == (32,)
