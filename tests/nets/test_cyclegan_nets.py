"""CycleGAN's networks: shapes for several sizes and channel counts, receptive fields, size checks."""

from __future__ import annotations

import pytest
import torch

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets import config_for_cyclegan
from ganforge.nets.cyclegan import (
    PatchDiscriminator,
    ResnetBlock,
    build,
    build_generator,
    default_d_layers,
    patch_output_size,
    patch_receptive_field,
)


@pytest.mark.parametrize("generator", ["resnet", "unet"])
@pytest.mark.parametrize("channels_a, channels_b, size", [(1, 1, 28), (1, 3, 32), (3, 3, 64), (4, 2, 16)])
def test_four_networks_map_between_domains(generator, channels_a, channels_b, size):
    config = config_for_cyclegan(generator=generator, ngf=4, ndf=4, n_blocks=1)
    nets = build(config, DataSpec((channels_a, size, size)), DataSpec((channels_b, size, size)))
    a = torch.rand(2, channels_a, size, size) * 2 - 1
    fake_b = nets["generator_ab"](a)
    assert fake_b.shape == (2, channels_b, size, size)
    assert fake_b.abs().max() <= 1  # tanh output, the data's range
    assert nets["generator_ba"](fake_b).shape == a.shape
    d_out = nets["discriminator_b"](fake_b)
    n = nets["discriminator_b"].n_layers
    assert d_out.shape == (2, 1, patch_output_size(size, n), patch_output_size(size, n))
    assert nets["discriminator_a"](a).shape == d_out.shape


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patch_receptive_field_matches_the_network(n_layers):
    """The closed form (16 / 34 / 70 px) against the gradient footprint of one central logit."""
    d = PatchDiscriminator(1, ndf=2, n_layers=n_layers, norm="none")
    size = 96
    x = torch.randn(1, 1, size, size, requires_grad=True)
    out = d(x)
    centre = out.shape[-1] // 2
    out[0, 0, centre, centre].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert rows.max() - rows.min() + 1 <= patch_receptive_field(n_layers)
    assert patch_receptive_field(n_layers) == {1: 16, 2: 34, 3: 70}[n_layers]
    # the footprint fills the field, up to the border pixels a stride skips
    assert rows.max() - rows.min() + 1 >= patch_receptive_field(n_layers) - 2 ** n_layers


def test_patch_depth_scales_with_the_image():
    assert default_d_layers(256, 256) == 3  # the reference's 70x70 PatchGAN
    assert default_d_layers(28, 28) == 1
    assert default_d_layers(64, 64) == 2


def test_resnet_blocks_follow_the_reference_by_size():
    def blocks(size):
        g = build_generator(config_for_cyclegan(ngf=2), 3, 3, size, size)
        return sum(isinstance(m, ResnetBlock) for m in g.modules())

    assert blocks(256) == 9 and blocks(128) == 6 and blocks(32) == 6


def test_instance_norm_by_default():
    g = build_generator(config_for_cyclegan(ngf=2), 1, 1, 16, 16)
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())


@pytest.mark.parametrize("settings, size, needle", [
    ({}, 30, "multiples of 4"),
    ({}, 4, "at least 8"),
    ({"generator": "unet", "unet_depth": 4}, 24, "multiples of 16"),
    ({"d_layers": 3}, 16, "at least 24"),
])
def test_sizes_a_network_cannot_take_are_refused(settings, size, needle):
    config = config_for_cyclegan(ngf=2, ndf=2, **settings)
    with pytest.raises(ConfigError, match=needle):
        build(config, DataSpec((1, size, size)), DataSpec((1, size, size)))


def test_domains_of_different_sizes_are_refused():
    with pytest.raises(ConfigError, match="differ in size"):
        build(config_for_cyclegan(ngf=2), DataSpec((1, 32, 32)), DataSpec((1, 28, 28)))


def test_unknown_settings_are_named():
    with pytest.raises(ConfigError, match="unknown cyclegan setting"):
        config_for_cyclegan(n_block=3)
    with pytest.raises(ConfigError, match="generator"):
        config_for_cyclegan(generator="transformer")
