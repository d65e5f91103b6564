"""User-facing facades over the library's parts: each adds an API, never a training loop of its own."""

from __future__ import annotations

from typing import Any

__all__ = ["Augmenter", "TabularGAN", "TextToImage", "Translator", "VideoGenerator", "VideoPredictor"]


def __getattr__(name: str) -> Any:  # imported on first use: `import ganforge.apps` stays light
    if name == "TabularGAN":
        from ganforge.apps.tabular import TabularGAN

        return TabularGAN
    if name == "Translator":
        from ganforge.apps.translator import Translator

        return Translator
    if name in ("VideoPredictor", "VideoGenerator"):
        from ganforge.apps import video

        return getattr(video, name)
    if name == "TextToImage":
        from ganforge.apps.text2image import TextToImage

        return TextToImage
    if name == "Augmenter":
        from ganforge.apps.augment import Augmenter

        return Augmenter
    raise AttributeError(f"module 'ganforge.apps' has no attribute {name!r}")
