"""Video metrics: frame-prediction errors as the Moving MNIST literature reports them, sharpness, and
digit scores of generated clips.

Prediction (``prediction_errors``), on clips with pixels in [0, 1]:

- ``mse``: squared error **summed over the frame** (64x64 = 4096 pixels), averaged over frames and
  clips: the "MSE per frame" of Srivastava et al. 2015, PredRNN and OpenSTL (all-zeros predictions
  score 172 on the fixed Moving MNIST test set; copying the last context frame 279);
- ``mae``: absolute error summed over the frame, the same way;
- ``psnr``: 10 log10(1 / per-pixel MSE) per frame, averaged; ``ssim``: scikit-image's SSIM per frame
  (data range 1), averaged;
- ``sharpness``: Mathieu et al. 2016's sharpness difference, 10 log10(1 / mean |g(Y) - g(Ŷ)|) with
  g = |∂x| + |∂y| (higher: edges where the truth has them);
- ``gradient_ratio``: mean g(Ŷ) / mean g(Y): 1 for predictions as sharp as the truth, below 1 for
  blurry ones (what an MSE-only model produces).

Each metric also comes per future time step (``per_step``), since errors grow with the horizon.

Generation (``digit_scores``): a digit judge reads each frame (the digit cropped around its centre of
mass and resized to 28x28): ``recognisable`` = share of frames the judge is confident about (top
probability >= 0.9), ``identity_consistency`` = share of frames whose digit equals the clip's
majority digit. Real clips give the reference values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from ganforge.errors import ConfigError

PREDICTION_METRICS = ("mse", "mae", "psnr", "ssim", "sharpness", "gradient_ratio")
CONFIDENT = 0.9


def as_unit_clips(clips: torch.Tensor | np.ndarray, what: str = "clips") -> torch.Tensor:
    """float32 (N, T, C, H, W) in [0, 1] from uint8 clips or floats in [0, 1]."""
    x = torch.as_tensor(clips)
    if x.dim() != 5:
        raise ConfigError(f"{what} must be (N, T, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    x = x.float()
    if x.numel() and (float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6):
        raise ConfigError(f"{what}: floats must lie in [0, 1] (got {float(x.min()):.3g}..{float(x.max()):.3g}); "
                          "map model outputs in [-1, 1] with (x + 1) / 2")
    return x


def image_gradients(x: torch.Tensor) -> torch.Tensor:
    """g = |∂y| + |∂x| on (..., H, W), by forward differences on the (H-1, W-1) overlap."""
    dy = (x[..., 1:, :-1] - x[..., :-1, :-1]).abs()
    dx = (x[..., :-1, 1:] - x[..., :-1, :-1]).abs()
    return dy + dx


def _ssim_frames(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SSIM of each (C, H, W) frame pair: (M,) from (M, C, H, W)."""
    out = np.empty(len(pred))
    for i, (p, t) in enumerate(zip(pred, target, strict=True)):
        if p.shape[0] == 1:
            out[i] = structural_similarity(t[0], p[0], data_range=1.0)
        else:
            out[i] = structural_similarity(t, p, data_range=1.0, channel_axis=0)
    return out


def prediction_errors(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, *,
                      ssim: bool = True) -> dict[str, Any]:
    """Per-frame errors of predicted clips against the truth, both (N, T, C, H, W) in [0, 1] (or uint8).

    Returns ``{metric: mean value}`` plus ``per_step`` = ``{metric: [value at future step 1..T]}``.
    """
    p, t = as_unit_clips(pred, "predicted clips"), as_unit_clips(target, "true clips")
    if p.shape != t.shape:
        raise ConfigError(f"predicted clips {tuple(p.shape)} and true clips {tuple(t.shape)} differ in shape")
    diff = p - t
    per: dict[str, torch.Tensor] = {
        "mse": diff.pow(2).sum(dim=(2, 3, 4)),  # (N, T)
        "mae": diff.abs().sum(dim=(2, 3, 4)),
    }
    pixel_mse = diff.pow(2).mean(dim=(2, 3, 4)).clamp_min(1e-10)
    per["psnr"] = 10 * torch.log10(1.0 / pixel_mse)
    gp, gt = image_gradients(p), image_gradients(t)
    per["sharpness"] = 10 * torch.log10(1.0 / (gp - gt).abs().mean(dim=(2, 3, 4)).clamp_min(1e-10))
    result: dict[str, Any] = {}
    if ssim:
        flat = _ssim_frames(p.flatten(0, 1).numpy(), t.flatten(0, 1).numpy())
        per["ssim"] = torch.from_numpy(flat).view(p.shape[0], p.shape[1])
    for name, values in per.items():
        result[name] = float(values.double().mean())
    # a ratio of means over everything (a per-frame ratio is undefined on empty frames)
    result["gradient_ratio"] = float(gp.double().mean() / gt.double().mean().clamp_min(1e-12))
    result["per_step"] = {name: [float(v) for v in values.double().mean(dim=0)] for name, values in per.items()}
    result["per_step"]["gradient_ratio"] = [
        float(a / max(b, 1e-12)) for a, b in zip(gp.double().mean(dim=(0, 2, 3, 4)), gt.double().mean(dim=(0, 2, 3, 4)),
                                                 strict=True)
    ]
    result["n_clips"], result["n_frames"] = int(p.shape[0]), int(p.shape[1])
    return result


def baseline_predictions(context: torch.Tensor, n_frames: int, kind: str) -> torch.Tensor:
    """Trivial predictions in the context's dtype: ``"zeros"`` (black frames) or ``"last"`` (copy the
    last context frame). The floor any model must beat."""
    last = context[:, -1:]
    if kind == "zeros":
        return torch.zeros_like(last).expand(-1, n_frames, -1, -1, -1).clone()
    if kind == "last":
        return last.expand(-1, n_frames, -1, -1, -1).clone()
    raise ConfigError(f"unknown baseline {kind!r}; use zeros or last")


# --- generated clips: digits ------------------------------------------------------------------------------
def crop_digits(frames: torch.Tensor, crop: int = 28, out: int = 28) -> torch.Tensor:
    """Crop each (1, H, W) frame in [0, 1] around its centre of mass to ``crop`` x ``crop`` (zero padding
    at the borders), resized to ``out`` x ``out``: single-digit frames as an MNIST judge sees digits."""
    if frames.dim() != 4 or frames.shape[1] != 1:
        raise ConfigError(f"digit frames must be (M, 1, H, W), got {tuple(frames.shape)}")
    m, _, h, w = frames.shape
    mass = frames[:, 0].clamp_min(0)
    total = mass.sum(dim=(1, 2)).clamp_min(1e-8)
    ys = torch.arange(h, dtype=frames.dtype)
    xs = torch.arange(w, dtype=frames.dtype)
    cy = ((mass.sum(dim=2) * ys).sum(dim=1) / total).round().long()
    cx = ((mass.sum(dim=1) * xs).sum(dim=1) / total).round().long()
    half = crop // 2
    padded = F.pad(frames, (half, half, half, half))
    out_frames = torch.stack([padded[i, :, cy[i]: cy[i] + crop, cx[i]: cx[i] + crop] for i in range(m)])
    if out != crop:
        out_frames = F.interpolate(out_frames, size=(out, out), mode="bilinear", align_corners=False)
    return out_frames


def digit_scores(clips: torch.Tensor | np.ndarray, judge: Any, crop: int | None = None) -> dict[str, Any]:
    """Judge-based scores of single-digit clips (N, T, 1, H, W) in [0, 1]/uint8 (see module docstring).

    ``judge`` has ``probabilities(images)`` for (M, 1, 28, 28) in [-1, 1] (``ganforge.metrics.judge.Judge``).
    ``crop``: the window around the digit, default 28 * H / 64 (a Moving MNIST digit's size at H).
    """
    x = as_unit_clips(clips, "generated clips")
    n, t, c, h, w = x.shape
    if c != 1:
        raise ConfigError(f"digit scores need grayscale clips (C = 1), got C = {c}")
    crop = crop or max(8, round(28 * h / 64))
    probs = np.asarray(judge.probabilities(crop_digits(x.flatten(0, 1), crop=crop) * 2 - 1))
    top = probs.max(axis=1).reshape(n, t)
    digit = probs.argmax(axis=1).reshape(n, t)
    majority = np.array([np.bincount(row, minlength=probs.shape[1]).argmax() for row in digit])
    consistent = (digit == majority[:, None]).mean(axis=1)
    return {
        "recognisable": float((top >= CONFIDENT).mean()),
        "identity_consistency": float(consistent.mean()),
        "digit_histogram": np.bincount(majority, minlength=probs.shape[1]).tolist(),
        "n_clips": int(n), "n_frames": int(t),
    }
