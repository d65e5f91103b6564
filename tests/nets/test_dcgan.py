"""DCGAN: size rules, exactness against pytorch/examples at 64x64, init, spectral norm, minibatch std."""

from __future__ import annotations

import pytest
import torch
from nets_helpers import SMALL
from torch import nn

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets import build, dcgan
from ganforge.nets.layers import MinibatchStdDev, ProjectionHead

NZ, NGF, NDF, NC = 100, 64, 64, 3


def reference_generator() -> nn.Sequential:
    """pytorch/examples dcgan/main.py Generator.main, verbatim."""
    return nn.Sequential(
        nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(NGF * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NGF * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NGF * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NGF),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def reference_discriminator() -> nn.Sequential:
    """pytorch/examples dcgan/main.py Discriminator.main, verbatim (with its final Sigmoid)."""
    return nn.Sequential(
        nn.Conv2d(NC, NDF, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NDF * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NDF * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NDF * 8),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False),
        nn.Sigmoid(),
    )


def weights_init(m: nn.Module) -> None:
    """pytorch/examples dcgan/main.py weights_init, verbatim."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_matches_pytorch_examples_at_64() -> None:
    torch.manual_seed(0)
    reference_g = reference_generator()
    reference_g.apply(weights_init)
    reference_d = reference_discriminator()
    reference_d.apply(weights_init)
    torch.manual_seed(0)
    generator, discriminator = build("dcgan", DataSpec((3, 64, 64)))

    assert n_parameters(generator) == n_parameters(reference_g) == 3_576_704
    assert n_parameters(discriminator) == n_parameters(reference_d) == 2_765_568
    for ours, theirs in ((generator, reference_g), (discriminator, reference_d)):
        ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
        assert list(ours_state) == [f"main.{key}" for key in theirs_state]  # checkpoints load as they are
        for key, value in theirs_state.items():
            assert torch.equal(ours_state[f"main.{key}"], value), key  # same seed, same weights

    z = torch.randn(4, NZ)
    images = generator(z)
    torch.testing.assert_close(images, reference_g(z.view(4, NZ, 1, 1)))
    torch.testing.assert_close(torch.sigmoid(discriminator(images)), reference_d(images).view(-1))


@pytest.mark.parametrize(
    ("height", "width", "k", "base"),
    [
        (64, 64, 4, (4, 4)),
        (28, 28, 2, (7, 7)),
        (32, 32, 3, (4, 4)),
        (8, 8, 1, (4, 4)),
        (30, 30, 1, (15, 15)),
        (48, 64, 3, (6, 8)),
        (256, 256, 6, (4, 4)),
        (10, 256, 1, (5, 128)),
    ],
)
def test_stages(height: int, width: int, k: int, base: tuple[int, int]) -> None:
    assert dcgan.stages(height, width) == (k, base)
    generator, discriminator = build("dcgan", DataSpec((1, height, width)), ngf=4, ndf=4, max_mult=2)
    first = generator.main[0]
    assert first.kernel_size == base
    assert discriminator.main[-1].kernel_size == base
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in generator.modules()) == k + 1
    assert sum(isinstance(m, nn.Conv2d) for m in discriminator.modules()) == k + 1
    assert generator(torch.randn(2, 100)).shape == (2, 1, height, width)


@pytest.mark.parametrize(("height", "width"), [(27, 27), (9, 9), (300, 300), (6, 6), (64, 27), (8, 512)])
def test_unsupported_sizes_refused(height: int, width: int) -> None:
    with pytest.raises(ConfigError, match=r"between 8 and 256.*2\^k.*'mlp'") as error:
        build("dcgan", DataSpec((3, height, width)))
    assert f"got {height}x{width}" in str(error.value)


def test_vector_spec_refused() -> None:
    with pytest.raises(ConfigError, match="use the 'mlp' family for vector data"):
        build("dcgan", DataSpec((2,), kind="vector"))


def test_channel_widths_follow_max_mult() -> None:
    generator, discriminator = build("dcgan", DataSpec((3, 256, 256)), ngf=4, ndf=4)
    g_widths = [m.out_channels for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_widths = [m.out_channels for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert g_widths == [32, 32, 32, 16, 8, 4, 3]  # multipliers capped at max_mult=8
    assert d_widths == [4, 8, 16, 32, 32, 32, 1]
    assert dcgan.multipliers(4, 8) == [8, 4, 2, 1]
    assert dcgan.multipliers(4, 2) == [2, 2, 2, 1]


def test_dcgan_init() -> None:
    torch.manual_seed(0)
    generator, discriminator = build("dcgan", DataSpec((3, 64, 64)))
    conv_weights = torch.cat(
        [
            m.weight.flatten()
            for model in (generator, discriminator)
            for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
        ]
    )
    norm_weights = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(conv_weights.std().item() - 0.02) < 1e-3
    assert abs(conv_weights.mean().item()) < 1e-3
    assert abs(norm_weights.mean().item() - 1.0) < 5e-3
    assert all(m.bias.abs().sum() == 0 for m in generator.modules() if isinstance(m, nn.BatchNorm2d))


def test_conditional_layers() -> None:
    spec = DataSpec((3, 32, 32), n_classes=10)
    generator, discriminator = build("dcgan", spec, ngf=8, ndf=8, embed_dim=5)
    assert generator.main[0].in_channels == 100 + 5  # z and the label embedding, as a 1x1 map
    assert isinstance(discriminator.projection, ProjectionHead)
    assert discriminator.projection.embed.out_dim == 32  # phi(x): the 32 maps before the final conv
    _, concat = build("dcgan", spec, ngf=8, ndf=8, embed_dim=5, condition="concat")
    assert concat.projection is None
    assert concat.main[0].in_channels == 3 + 5  # embedding broadcast as extra input channels


def test_projection_logit_is_unconditional_plus_inner_product() -> None:
    spec = DataSpec((3, 16, 16), n_classes=4)
    _, discriminator = build("dcgan", spec, **SMALL["dcgan"])
    discriminator.eval()
    x, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 3])
    with torch.no_grad():
        features = discriminator.main[:-1](x)  # (B, F, 4, 4)
        unconditional = discriminator.main[-1](features).view(3)
        embedding = discriminator.projection.embed.label_embedding.weight[labels]  # (B, F)
        expected = unconditional + (embedding * features.sum(dim=(2, 3))).sum(1)
        torch.testing.assert_close(discriminator(x, labels), expected)


def test_spectral_norm_drops_batch_norm_and_constrains() -> None:
    spec = DataSpec((3, 32, 32), n_classes=10)
    _, discriminator = build("dcgan", spec, ngf=8, ndf=8, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules())
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Embedding))]
    assert len(layers) == 5 and all(hasattr(m, "parametrizations") for m in layers)
    x, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for _ in range(10):  # train mode: one power iteration per forward
        discriminator(x, labels)
    discriminator.eval()
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2)
        assert 0.999 < sigma.item() < 1.1, layer  # power iteration only underestimates sigma
        original = layer.parametrizations.weight.original.flatten(1)
        assert abs(torch.linalg.matrix_norm(original, ord=2).item() - 1.0) > 0.2  # the constraint acts


def test_minibatch_std_before_final_conv() -> None:
    _, discriminator = build("dcgan", DataSpec((3, 32, 32), n_classes=2), ngf=8, ndf=8, minibatch_std=True)
    assert isinstance(discriminator.main[-2], MinibatchStdDev)
    assert discriminator.main[-1].in_channels == 32 + 1
    assert discriminator.projection.embed.out_dim == 32 + 1
    assert discriminator(torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 0, 1, 0, 1])).shape == (6,)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_extra_layers_add_depth_at_half_resolution(spectral_norm: bool) -> None:
    spec = DataSpec((3, 28, 28))
    plain_g, plain_d = build("dcgan", spec, ngf=8, ndf=8, spectral_norm=spectral_norm, minibatch_std=True)
    generator, discriminator = build("dcgan", spec, ngf=8, ndf=8, extra_layers=2, spectral_norm=spectral_norm,
                                     minibatch_std=True)
    g_convs = [m for m in generator.main if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    d_convs = [m for m in discriminator.main if isinstance(m, nn.Conv2d)]
    # G: 1x1 -> 7x7 (16), 7 -> 14 (8), two 3x3 stride-1 (8), 14 -> 28 (3); D: 28 -> 14 (8), two 3x3 (8), 14 -> 7 (16)
    assert [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in g_convs] == [
        (16, 7, 1), (8, 4, 2), (8, 3, 1), (8, 3, 1), (3, 4, 2)]
    assert [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in d_convs] == [
        (8, 4, 2), (8, 3, 1), (8, 3, 1), (16, 4, 2), (1, 7, 1)]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(generator) - count(plain_g) == 2 * (8 * 8 * 9 + 2 * 8)  # two convs and their BatchNorms
    bias_or_bn = 8 if spectral_norm else 2 * 8  # SN drops D's BatchNorm; the conv gets a bias instead
    assert count(discriminator) - count(plain_d) == 2 * (8 * 8 * 9 + bias_or_bn)
    z = torch.randn(4, generator.z_dim)
    assert generator(z).shape == (4, 3, 28, 28) and discriminator(generator(z)).shape == (4,)
    assert len([m for m in discriminator.modules() if isinstance(m, nn.BatchNorm2d)]) == (0 if spectral_norm else 3)
    with pytest.raises(ConfigError, match="extra_layers"):
        build("dcgan", spec, extra_layers=-1)
