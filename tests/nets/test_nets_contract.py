"""The generator/discriminator contract, checked for every family, shape and kind of condition."""

from __future__ import annotations

import pytest
import torch
from nets_helpers import COND_DIM, CONDITIONS, N_CLASSES, SMALL, condition_inputs

from ganforge.data.spec import DataSpec
from ganforge.nets import build

IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 8), (3, 48, 64)]
CASES = [(family, shape, "image") for family in ("mlp", "dcgan") for shape in IMAGE_SHAPES] + [("mlp", (2,), "vector")]
BATCH = 3


def _ids(case: tuple[str, tuple[int, ...], str]) -> str:
    family, shape, _ = case
    return f"{family}-{'x'.join(map(str, shape))}"


# The D condition mode only matters for conditional specs.
CONDITION_MODES = [("none", "projection")] + [
    (condition, mode) for condition in ("labels", "vector", "both") for mode in ("projection", "concat")
]


@pytest.mark.parametrize(("condition", "mode"), CONDITION_MODES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_shapes(case: tuple[str, tuple[int, ...], str], condition: str, mode: str) -> None:
    family, shape, kind = case
    spec = DataSpec(shape, kind=kind, **CONDITIONS[condition])
    generator, discriminator = build(family, spec, condition=mode, **SMALL[family])
    labels, cond = condition_inputs(spec, BATCH)
    fake = generator(torch.randn(BATCH, generator.z_dim), labels, cond)
    assert fake.shape == (BATCH, *shape)
    if kind == "image":
        assert fake.min() >= -1 and fake.max() <= 1
    logits = discriminator(fake, labels, cond)
    assert logits.shape == (BATCH,)
    assert logits.dtype == torch.float32


def test_vector_output_is_linear() -> None:
    generator, _ = build("mlp", DataSpec((2,), kind="vector"), **SMALL["mlp"])
    with torch.no_grad():
        generator.output.bias.fill_(5.0)
    assert generator(torch.randn(8, generator.z_dim)).min() > 1  # not squashed into [-1, 1]


STEP_CASES = [
    ("mlp", (1, 8, 8), "none", "projection", {}),
    ("mlp", (2,), "both", "projection", {"minibatch_std": True, "spectral_norm": True}),
    ("mlp", (3, 8, 8), "labels", "concat", {}),
    ("dcgan", (3, 16, 16), "none", "projection", {}),
    ("dcgan", (3, 16, 16), "both", "projection", {"minibatch_std": True}),
    ("dcgan", (1, 16, 16), "vector", "concat", {"spectral_norm": True}),
]


@pytest.mark.parametrize(("family", "shape", "condition", "mode", "extra"), STEP_CASES)
def test_one_step_updates_every_parameter(
    family: str,
    shape: tuple[int, ...],
    condition: str,
    mode: str,
    extra: dict[str, bool],
) -> None:
    kind = "vector" if len(shape) == 1 else "image"
    spec = DataSpec(shape, kind=kind, **CONDITIONS[condition])
    generator, discriminator = build(family, spec, condition=mode, **SMALL[family], **extra)
    labels, cond = condition_inputs(spec, 8)
    real = torch.rand(8, *shape) * 2 - 1
    z = torch.randn(8, generator.z_dim)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits

    def step(model: torch.nn.Module, loss: torch.Tensor) -> None:
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        optimizer.zero_grad()
        loss.backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient for {name}"
        optimizer.step()
        for name, parameter in model.named_parameters():
            assert not torch.equal(before[name], parameter), f"{name} did not change"

    real_logits = discriminator(real, labels, cond)
    fake_logits = discriminator(generator(z, labels, cond).detach(), labels, cond)
    d_loss = loss_fn(real_logits, torch.ones(8)) + loss_fn(fake_logits, torch.zeros(8))
    step(discriminator, d_loss)
    g_loss = loss_fn(discriminator(generator(z, labels, cond), labels, cond), torch.ones(8))
    discriminator.zero_grad()
    step(generator, g_loss)


@pytest.mark.parametrize("mode", ["projection", "concat"])
@pytest.mark.parametrize("condition", ["labels", "vector"])
@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_condition_changes_outputs(family: str, condition: str, mode: str) -> None:
    spec = DataSpec((3, 16, 16), **CONDITIONS[condition])
    generator, discriminator = build(family, spec, condition=mode, **SMALL[family])
    generator.eval()
    discriminator.eval()
    z = torch.randn(1, generator.z_dim).repeat(6, 1)  # the same z six times
    if condition == "labels":
        first: dict[str, torch.Tensor] = {"labels": torch.arange(6)}
        second: dict[str, torch.Tensor] = {"labels": (torch.arange(6) + 1) % N_CLASSES}
    else:
        first, second = {"cond": torch.randn(6, COND_DIM)}, {"cond": torch.randn(6, COND_DIM)}
    with torch.no_grad():
        images = generator(z, **first)
        assert not torch.allclose(images[0], images[1])  # different conditions within one batch
        assert not torch.allclose(images, generator(z, **second))
        assert not torch.allclose(discriminator(images, **first), discriminator(images, **second))


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_condition_errors(family: str) -> None:
    conditional, _ = build(family, DataSpec((1, 8, 8), n_classes=3), **SMALL[family])
    unconditional, discriminator = build(family, DataSpec((1, 8, 8)), **SMALL[family])
    z = torch.randn(2, conditional.z_dim)
    with pytest.raises(ValueError, match="class-conditional.*pass labels"):
        conditional(z)
    with pytest.raises(ValueError, match="labels must be an integer"):
        conditional(z, torch.zeros(2))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        conditional(z, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="not class-conditional"):
        unconditional(z, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="no vector condition"):
        discriminator(torch.zeros(2, 1, 8, 8), cond=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"z must have shape \(B, "):
        unconditional(torch.randn(2, conditional.z_dim + 1))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\)"):
        discriminator(torch.zeros(2, 1, 8, 9))
    vector_model, _ = build(family, DataSpec((1, 8, 8), cond_dim=5), **SMALL[family])
    with pytest.raises(ValueError, match=r"pass cond, a \(B, 5\)"):
        vector_model(z)
    with pytest.raises(ValueError, match=r"cond must have shape \(2, 5\)"):
        vector_model(z, cond=torch.zeros(2, 4))


@pytest.mark.parametrize("extra", [{}, {"spectral_norm": True, "minibatch_std": True}])
@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_same_seed_same_weights(family: str, extra: dict[str, bool]) -> None:
    spec = DataSpec((3, 16, 16), n_classes=4)

    def weights(seed: int) -> list[dict[str, torch.Tensor]]:
        torch.manual_seed(seed)
        return [model.state_dict() for model in build(family, spec, **SMALL[family], **extra)]

    first, second, other = weights(0), weights(0), weights(1)
    for a, b, c in zip(first, second, other, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert not all(torch.equal(a[key], c[key]) for key in a)
