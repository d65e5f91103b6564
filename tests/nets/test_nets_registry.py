"""The family registry: lookup, overrides and its error messages."""

from __future__ import annotations

import dataclasses

import pytest

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets import FAMILIES, Discriminator, Family, Generator, build, config_for, dcgan, mlp


def test_families_registered() -> None:
    assert set(FAMILIES) == {"mlp", "dcgan"}
    assert FAMILIES["mlp"] == Family(mlp.Config, mlp.build)
    assert FAMILIES["dcgan"].config_cls is dcgan.Config
    assert FAMILIES["dcgan"].build is dcgan.build


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_build_returns_contract_types(family: str) -> None:
    generator, discriminator = build(family, DataSpec((1, 28, 28)), z_dim=12, embed_dim=4)
    assert isinstance(generator, Generator)
    assert isinstance(discriminator, Discriminator)
    assert generator.z_dim == 12
    assert generator.config.z_dim == 12


def test_config_for_applies_overrides() -> None:
    config = config_for("dcgan", ngf=32, condition="concat")
    assert isinstance(config, dcgan.Config)
    assert (config.ngf, config.ndf, config.condition) == (32, 64, "concat")
    assert config_for("mlp") == mlp.Config()


def test_unknown_family_lists_supported() -> None:
    with pytest.raises(ConfigError, match=r"'resnet'.*dcgan, mlp"):
        build("resnet", DataSpec((3, 32, 32)))
    with pytest.raises(ConfigError, match="dcgan, mlp"):
        config_for("stylegan")


def test_unknown_override_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as error:
        build("dcgan", DataSpec((3, 32, 32)), ngf=16, nz=100)
    message = str(error.value)
    assert "nz" in message
    for field in dataclasses.fields(dcgan.Config):
        assert field.name in message


@pytest.mark.parametrize(
    ("family", "overrides", "expected"),
    [
        ("mlp", {"condition": "film"}, "projection"),
        ("dcgan", {"condition": "film"}, "concat"),
        ("dcgan", {"ngf": 0}, "ngf"),
        ("mlp", {"hidden_g": (64, -1)}, "hidden_g"),
        ("mlp", {"negative_slope": 1.5}, "negative_slope"),
    ],
)
def test_bad_values_are_config_errors(family: str, overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        config_for(family, **overrides)
