"""Video facades: `VideoPredictor` (future frames from a context) and `VideoGenerator` (MoCoGAN clips).

Thin layers over `ganforge.train.video_run`: ``fit`` trains an ordinary ganforge run (stats, doctor,
checkpoints, ``resume="auto"``, report) and ``load`` reopens one; no training loop of their own.

>>> predictor = VideoPredictor(steps=2000).fit("moving_mnist")          # doctest: +SKIP
>>> future = predictor.predict(clips[:, :10], n_frames=10)               # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.images import to_model_range
from ganforge.data.video import ClipLayout, _as_uint8_clips, array_to_clips, clips_to_layout
from ganforge.errors import ConfigError
from ganforge.train.config import RunConfig
from ganforge.train.video_run import TrainedVideo, evaluate_video, load_video_run, load_video_test_set

ClipsLike = np.ndarray | torch.Tensor
TRAINING_CLIPS = "training_clips.npy"  # where an array given to fit() is kept, inside the run directory


def _as_clips(clips: ClipsLike) -> torch.Tensor:
    array = clips.detach().cpu().numpy() if isinstance(clips, torch.Tensor) else np.asarray(clips)
    if array.ndim == 4:
        array = array[:, :, None]  # (N, T, H, W) -> (N, T, 1, H, W)
    data, layout = array_to_clips(array, "training clips")
    if not layout.batched:
        raise ConfigError(f"training clips must be a batch (N, T, C, H, W) or (N, T, H, W), got {array.shape}")
    return data


def _run_dir(out: str | os.PathLike | None, kind: str) -> Path:
    if out is not None:
        return Path(out)
    return Path(tempfile.mkdtemp(prefix=f"ganforge-{kind}-{time.strftime('%Y%m%d-%H%M%S')}-"))


class _VideoModel:
    model = ""

    def __init__(self, *, steps: int = 2000, batch_size: int = 8, seed: int = 0, device: str = "auto",
                 out: str | os.PathLike | None = None, progress: bool = True, data_dir: str | None = None,
                 image_size: int | None = None, **settings: Any):
        known = {f for f in RunConfig.__dataclass_fields__}
        run_settings = {k: v for k, v in settings.items() if k in known}
        model_config = {k: v for k, v in settings.items() if k not in known}
        self.settings = dict(steps=steps, batch_size=batch_size, seed=seed, device=device, progress=progress,
                             data_dir=data_dir, image_size=image_size, **run_settings)
        self.model_config = model_config
        self.out = out
        self.trained: TrainedVideo | None = None
        RunConfig(model=self.model, **self.settings, model_config=model_config).validate()  # fail early

    def fit(self, clips: str | os.PathLike | ClipsLike, resume: str | None = None):
        """Train on ``clips``: ``"moving_mnist"``, a clip file/folder, or an array (N, T, C, H, W) / (N, T, H, W)
        uint8 or floats in [0, 1]. Returns self; the run directory is ``self.run_dir``."""
        from ganforge.train.video_run import train_video

        out = _run_dir(self.out, self.model)
        arrays = None
        if isinstance(clips, str | os.PathLike):
            data = str(clips)
        else:
            arrays = _as_clips(clips)
            data = str(out / TRAINING_CLIPS)  # written there when the run is created
        config = RunConfig(model=self.model, data=data, **self.settings, model_config=self.model_config)
        train_video(config, out, resume=resume, clips=arrays)
        self.run_dir = out
        self.trained = load_video_run(out, device=self.settings["device"] if self.settings["device"] != "auto"
                                      else "cpu")
        return self

    @classmethod
    def load(cls, run_dir: str | os.PathLike, checkpoint: str = "latest", device: str = "cpu"):
        trained = load_video_run(run_dir, checkpoint=checkpoint, device=device)
        if trained.config.model != cls.model:
            other = "VideoGenerator" if cls.model == "video_predict" else "VideoPredictor"
            raise ConfigError(f"{run_dir} holds a {trained.config.model} run; open it with {other}.load")
        self = cls.__new__(cls)
        self.settings, self.model_config, self.out = {}, trained.config.model_config, run_dir
        self.trained, self.run_dir = trained, Path(run_dir)
        return self

    def _need(self) -> TrainedVideo:
        if self.trained is None:
            raise ConfigError("fit() or load() the model first")
        return self.trained

    def evaluate(self, n: int = 2000, test: str | None = None) -> dict[str, float]:
        """Scores on held-out clips (the fixed Moving MNIST test set, or ``test``): metric -> value."""
        trained = self._need()
        scores = evaluate_video(trained.config, trained, load_video_test_set(trained.config, n=n, test=test),
                                device=trained.device)
        return {s.metric: s.value for s in scores}


class VideoPredictor(_VideoModel):
    """Adversarial future-frame prediction (Mathieu et al. 2016): ``fit(clips)``, ``predict(context, n)``.

    Settings: ``context_frames`` (10), ``future_frames`` (10), ``adv_weight`` (0.05; 0 = MSE + GDL only),
    ``gdl_weight`` (1), any RunConfig field (``lr_g``, ``loss``, ...), and network sizes of
    `ganforge.nets.video.PredictorConfig` (``width``, ``hidden``, ``levels``, ``ndf``).
    """

    model = "video_predict"

    def predict(self, context: ClipsLike, n_frames: int | None = None) -> np.ndarray:
        """The next ``n_frames`` after each clip's last ``context_frames`` frames.

        ``context``: one clip (T, H, W) or (T, C, H, W), or a batch (N, T, C, H, W); uint8 or floats in [0, 1].
        Returns the predicted frames in the same layout and dtype.
        """
        self._need()
        array = context.detach().cpu().numpy() if isinstance(context, torch.Tensor) else np.asarray(context)
        clips, layout = array_to_clips(array, "context")
        predicted = self.predict_clips(clips, n_frames)
        return clips_to_layout(_as_uint8_clips(predicted, "predictions"), layout)

    def predict_clips(self, clips: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
        """uint8 (N, T, C, H, W) clips -> predicted frames (N, n_frames, C, H, W) as floats in [-1, 1]."""
        trained = self._need()
        k = trained.config.context_frames
        c, h, w = trained.frame_shape
        if clips.shape[1] < k:
            raise ConfigError(f"the clips have {clips.shape[1]} frames, fewer than the {k} context frames this "
                              "model reads; give longer clips")
        if tuple(clips.shape[2:]) != (c, h, w):
            raise ConfigError(f"frames of {clips.shape[2]}x{clips.shape[3]}x{clips.shape[4]} (C x H x W) do not "
                              f"fit this model, trained on {c}x{h}x{w}; resize them first")
        if n_frames is not None and n_frames < 1:
            raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
        return trained.predict(to_model_range(clips[:, -k:]), n_frames)


class VideoGenerator(_VideoModel):
    """Unconditional short clips with MoCoGAN (content and motion latents, image + video discriminators).

    Settings: ``clip_frames`` (16), any RunConfig field, and `ganforge.nets.video.GeneratorConfig` fields
    (``content_dim``, ``motion_dim``, ``ngf``, ``ndf``, ``image_frames``).
    """

    model = "video_generate"

    def sample(self, n: int, seed: int = 0, frames: int | None = None) -> np.ndarray:
        """``n`` clips as uint8 (n, T, C, H, W)."""
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        return _as_uint8_clips(self._need().sample(n, seed=seed, frames=frames), "generated clips")


__all__ = ["ClipLayout", "VideoGenerator", "VideoPredictor"]
