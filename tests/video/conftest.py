import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ganforge.data.video import moving_mnist, write_clips


@pytest.fixture(scope="session")
def small_digits():
    """scikit-learn's 8x8 digits enlarged to 16x16, uint8 (N, 16, 16): MNIST stand-ins that ship with sklearn."""
    d = load_digits()
    x = torch.from_numpy((d.images / 16 * 255).astype(np.uint8))
    x = torch.nn.functional.interpolate(x[:, None].float(), scale_factor=2, mode="nearest")[:, 0]
    return x.to(torch.uint8), torch.from_numpy(d.target)


@pytest.fixture(scope="session")
def clip_file(tmp_path_factory, small_digits):
    """64 bouncing-digit clips of 8 frames at 32x32, one digit each, as a .npy file."""
    clips = moving_mnist(small_digits[0], 64, n_frames=8, size=32, n_digits=1, seed=0)
    path = tmp_path_factory.mktemp("clips") / "clips.npy"
    write_clips(clips, path)
    return path

