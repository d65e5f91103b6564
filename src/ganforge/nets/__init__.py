"""Network families: each turns a DataSpec and a config into a (generator, discriminator) pair.

>>> generator, discriminator = build("dcgan", DataSpec((3, 64, 64)), ngf=32)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.nets import cyclegan, dcgan, mlp
from ganforge.nets.base import Discriminator, Generator

NetConfig = mlp.Config | dcgan.Config


class Family(NamedTuple):
    """A network family: its config dataclass and the function building (generator, discriminator)."""

    config_cls: type[Any]
    build: Callable[[Any, DataSpec], tuple[Generator, Discriminator]]


FAMILIES: dict[str, Family] = {
    "mlp": Family(mlp.Config, mlp.build),
    "dcgan": Family(dcgan.Config, dcgan.build),
}


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown network family {name!r}; supported: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def config_for(family: str, **overrides: Any) -> NetConfig:
    """The config of ``family`` with ``overrides`` applied; ConfigError on an unknown family or key."""
    config_cls = _family(family).config_cls
    valid = [field.name for field in dataclasses.fields(config_cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown {family} setting(s) {', '.join(unknown)}; valid settings: {', '.join(valid)}")
    return config_cls(**overrides)


def config_for_cyclegan(**overrides: Any) -> cyclegan.Config:
    """CycleGAN's network config with ``overrides``; ConfigError naming unknown keys (its networks map
    images to images, so they are built by ``ganforge.nets.cyclegan.build``, not through FAMILIES)."""
    valid = [field.name for field in dataclasses.fields(cyclegan.Config)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown cyclegan setting(s) {', '.join(unknown)}; valid settings: {', '.join(valid)}")
    return cyclegan.Config(**overrides)


def build(family: str, spec: DataSpec, **overrides: Any) -> tuple[Generator, Discriminator]:
    """Build (generator, discriminator) of ``family`` for ``spec``, with config ``overrides``."""
    return _family(family).build(config_for(family, **overrides), spec)


__all__ = ["FAMILIES", "Discriminator", "Family", "Generator", "NetConfig", "build", "config_for",
           "config_for_cyclegan"]
