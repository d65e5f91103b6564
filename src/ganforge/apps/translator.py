"""`Translator`: unpaired image-to-image translation in both directions (CycleGAN), as one object.

    from ganforge.apps import Translator
    translator = Translator(steps=2000, batch_size=16).fit("horses/", "zebras/", out="runs/h2z")
    translator.apply("photos/", "as_zebras/", direction="a2b")      # a file or a folder
    translator.apply("zebra.png", "as_horse.png", direction="b2a")  # the other way is just as easy
    translator = Translator.load("runs/h2z")                          # later, from the run directory

Both directions are first-class: every method takes ``direction="a2b"`` or ``"b2a"``. Training goes
through ganforge's own loop (`ganforge.train.cycle_run`), so the run directory, stats, doctor,
checkpoints, resume and report are those of any ganforge run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ganforge.errors import ConfigError

# The reference CycleGAN's settings (Zhu et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix): LSGAN,
# Adam 2e-4 with beta1 0.5, batch 1, constant learning rate for the first half then linear decay to 0.
DEFAULTS: dict[str, Any] = {"model": "cyclegan", "loss": "lsgan", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999),
                            "batch_size": 1, "lr_decay": "linear", "lr_decay_start": 0.5, "cycle_weight": 10.0,
                            "identity_weight": 0.5, "pool_size": 50}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def check_direction(direction: str) -> str:
    d = str(direction).lower().replace("-", "").replace("_", "").replace("to", "2")
    if d not in ("a2b", "b2a"):
        raise ConfigError(f"--direction must be a2b or b2a, got {direction!r}")
    return d


class Translator:
    """A CycleGAN between domains A and B: `fit`, `translate` (tensors), `apply` (files), `evaluate`.

    Keyword arguments are `ganforge.train.RunConfig` settings (``steps``, ``batch_size``, ``seed``,
    ``cycle_weight``, ``identity_weight``, ``pool_size``, ``image_size``, ``device``, ...) over the
    reference defaults above; network settings go in ``model_config`` (``generator`` "resnet"|"unet",
    ``ngf``, ``ndf``, ``n_blocks``, ``d_layers``, ...; see `ganforge.nets.cyclegan.Config`).
    """

    def __init__(self, **settings: Any):
        from ganforge.train.config import RunConfig

        self.config = RunConfig().merged({**DEFAULTS, **settings, "model": "cyclegan"})
        self.generators: dict[str, torch.nn.Module] = {}
        self.run_dir: Path | None = None
        self.spec_a = self.spec_b = None
        self.checkpoint: Path | None = None

    # --- training and loading ------------------------------------------------------------------------------
    def fit(self, a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike, *, resume: str | None = None,
            callbacks: list | None = None) -> Translator:
        """Train on unpaired domains ``a`` and ``b`` (dataset names, image folders, .npy/.npz), writing run
        directory ``out``; returns self, ready to translate with the last checkpoint."""
        from ganforge.train.cycle_run import train_cyclegan

        self.config = self.config.merged({"data": os.fspath(a), "data_b": os.fspath(b)})
        result = train_cyclegan(self.config, out, resume=resume, callbacks=callbacks)
        self._load(result.run_dir, None, "cpu" if self.config.device == "auto" else self.config.device)
        return self

    @classmethod
    def load(cls, run_dir: str | os.PathLike, checkpoint: str | None = None, device: str = "cpu") -> Translator:
        """A translator from a run directory of `ganforge translate train` (``checkpoint``: latest, best, a path)."""
        self = cls.__new__(cls)
        self._load(run_dir, checkpoint, device)
        return self

    def _load(self, run_dir: str | os.PathLike, checkpoint: str | None, device: str) -> None:
        from ganforge.train.cycle_run import load_translator

        trained = load_translator(run_dir, checkpoint=checkpoint, device=device)
        self.config, self.generators = trained.config, trained.generators
        self.spec_a, self.spec_b, self.checkpoint = trained.spec_a, trained.spec_b, trained.checkpoint
        self.run_dir = Path(run_dir)

    def _generator(self, direction: str) -> torch.nn.Module:
        if not self.generators:
            raise ConfigError("this Translator is not trained: call fit(a, b, out=...) or Translator.load(run_dir)")
        return self.generators[check_direction(direction)]

    def channels(self, direction: str) -> tuple[int, int]:
        """(input channels, output channels) of a direction."""
        g = self._generator(direction)
        return g.in_channels, g.out_channels

    # --- tensors -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, images: Tensor | np.ndarray, direction: str = "a2b", batch_size: int = 32) -> Tensor:
        """Translate (N, C, H, W) images: uint8, or floats in [-1, 1]. Returns floats in [-1, 1] of the same
        H and W: images whose size the generator cannot take are reflection-padded to it and cropped back."""
        g = self._generator(direction)
        x = torch.as_tensor(images)
        if x.dim() == 3:
            x = x.unsqueeze(0)  # one image (C, H, W) -> (1, C, H, W)
        if x.dim() != 4:
            raise ConfigError(f"translate() takes images (N, C, H, W) or one (C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != g.in_channels:
            raise ConfigError(f"the {direction} generator takes {g.in_channels}-channel images, got {x.shape[1]} "
                              f"channels")
        x = (x.float() / 127.5 - 1) if x.dtype == torch.uint8 else x.float()
        h, w = x.shape[2:]
        m = g.multiple
        ph, pw = (-h) % m, (-w) % m
        ph, pw = ph + m * max(0, 2 - (h + ph) // m), pw + m * max(0, 2 - (w + pw) // m)  # at least 2 multiples
        device = next(g.parameters()).device
        out = []
        for i in range(0, x.shape[0], batch_size):
            part = x[i : i + batch_size].to(device)
            if ph or pw:
                mode = "reflect" if ph < h and pw < w else "replicate"
                part = F.pad(part, (0, pw, 0, ph), mode=mode)
            out.append(g(part)[:, :, :h, :w].cpu())
        return torch.cat(out) if out else torch.zeros(0, g.out_channels, h, w)

    # --- files ---------------------------------------------------------------------------------------------
    def apply(self, src: str | os.PathLike, dst: str | os.PathLike, direction: str = "a2b") -> list[Path]:
        """Translate an image file, a folder of images (recursively, keeping relative paths and file names),
        or a .npy array (N, C, H, W) / (N, H, W) / (C, H, W) of uint8 or floats in [0, 1]; returns what was written.

        Outputs keep each input's size, and its channel count where the domains have the same number of
        channels (a grayscale PNG given to an RGB model comes back grayscale; alpha is kept).
        """
        src, dst = Path(src), Path(dst)
        direction = check_direction(direction)
        self._generator(direction)
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(src).parts))
            if not files:
                raise ConfigError(f"--in {src}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            if dst.exists() and not dst.is_dir():
                raise ConfigError(f"--out {dst}: a folder input needs a folder output, but {dst} is a file")
            return [self._apply_image(f, dst / f.relative_to(src), direction) for f in files]
        if not src.is_file():
            raise ConfigError(f"--in {src}: no such file or folder")
        if src.suffix.lower() == ".npy":
            return [self._apply_array(src, dst, direction)]
        if src.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"--in {src}: unsupported file type {src.suffix!r}; give an image "
                              f"({', '.join(IMAGE_SUFFIXES)}), a .npy array, or a folder")
        if dst.is_dir() or str(dst).endswith(("/", os.sep)):
            dst = dst / src.name
        return [self._apply_image(src, dst, direction)]

    def _apply_image(self, src: Path, dst: Path, direction: str) -> Path:
        c_in, c_out = self.channels(direction)
        try:
            with Image.open(src) as opened:
                opened.load()
                image = opened
        except (OSError, SyntaxError) as e:
            raise ConfigError(f"cannot read image {src}: {e}") from None
        alpha = None
        if image.mode in ("LA", "RGBA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("LA" if image.mode == "LA" else "RGBA")
            alpha = image.getchannel("A")
        mode = "L" if image.mode in ("L", "LA", "1", "I", "I;16", "F") else "RGB"
        image = image.convert(mode)
        channels = 1 if mode == "L" else 3
        if channels != c_in:
            if {channels, c_in} != {1, 3}:
                raise ConfigError(f"{src} has {channels} channel(s) but the {direction} generator takes {c_in}")
            image = image.convert("L" if c_in == 1 else "RGB")  # luminance, or gray replicated to RGB
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
        y = self.translate(x.unsqueeze(0), direction)[0]  # (C_out, H, W) in [-1, 1]
        pixels = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        array = pixels[0].numpy() if c_out == 1 else pixels.permute(1, 2, 0).numpy()  # (H, W[, C])
        if c_out not in (1, 3):
            raise ConfigError(f"the {direction} generator makes {c_out}-channel images, which no image file holds; "
                              "give a .npy array instead")
        out = Image.fromarray(array, mode="L" if c_out == 1 else "RGB")
        if c_in == c_out and channels != c_out:  # same-channel domains: give back the input's channel count
            out = out.convert("L" if channels == 1 else "RGB")
        if alpha is not None and dst.suffix.lower() in (".png", ".webp", ".tif", ".tiff"):
            out.putalpha(alpha)
        dst.parent.mkdir(parents=True, exist_ok=True)
        out.save(dst)
        return dst

    def _apply_array(self, src: Path, dst: Path, direction: str) -> Path:
        c_in, _ = self.channels(direction)
        try:
            array = np.load(src, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read {src}: {e}") from None
        shape = array.shape
        if array.ndim == 2 or (array.ndim == 3 and c_in == 1 and shape[0] != 1):
            x = array.reshape(-1, 1, *shape[-2:])  # (H, W) or (N, H, W) -> (N, 1, H, W)
        elif array.ndim == 3:
            x = array[None]  # (C, H, W) -> (1, C, H, W)
        elif array.ndim == 4:
            x = array
        else:
            raise ConfigError(f"{src}: expected (N, C, H, W), (N, H, W), (C, H, W) or (H, W), got shape {shape}")
        if x.shape[1] != c_in:
            raise ConfigError(f"{src} holds {x.shape[1]}-channel images (shape {shape}) but the {direction} "
                              f"generator takes {c_in} channels")
        if array.dtype == np.uint8:
            images = torch.from_numpy(np.ascontiguousarray(x))
        elif np.issubdtype(array.dtype, np.floating):
            if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1):
                raise ConfigError(f"{src}: float images must be in [0, 1], found [{np.nanmin(x)}, {np.nanmax(x)}]")
            images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) * 2 - 1
        else:
            raise ConfigError(f"{src}: images must be uint8 or floats in [0, 1], got {array.dtype}")
        y = (self.translate(images, direction).clamp(-1, 1) + 1) / 2  # (N, C_out, H, W) in [0, 1]
        result = (y * 255).round().to(torch.uint8).numpy() if array.dtype == np.uint8 else y.numpy().astype(array.dtype)
        if result.shape[1] == x.shape[1]:
            result = result.reshape(shape)  # the input's own layout
        elif array.ndim == 3 and x.shape[0] == 1:
            result = result[0]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix.lower() != ".npy":
            raise ConfigError(f"--out {dst}: a .npy input is written to a .npy output")
        np.save(dst, result)
        return dst

    # --- evaluation ----------------------------------------------------------------------------------------
    def evaluate(self, a: Tensor, b: Tensor, **kwargs: Any) -> list:
        """`ganforge.metrics.translation.evaluate_translation` on this translator's two directions."""
        from ganforge.metrics.translation import evaluate_translation

        return evaluate_translation(lambda x: self.translate(x, "a2b"), lambda x: self.translate(x, "b2a"), a, b,
                                    **kwargs)
