import pytest

from ganforge.train import RunConfig

TINY = {"ngf": 8, "ndf": 8, "z_dim": 16}


@pytest.fixture
def tiny_config():
    """A DCGAN small enough that a few dozen steps take well under a second."""

    def make(**overrides):
        base = dict(model="dcgan", model_config=dict(TINY), data="digits", batch_size=32, steps=10,
                    sample_every=5, checkpoint_every=5, log_every=2, progress=False, threads=1)
        base.update(overrides)
        return RunConfig(**base)

    return make
