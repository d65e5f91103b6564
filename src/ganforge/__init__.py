"""ganforge: generative adversarial networks that train well by default and say why when they don't.

The top-level package stays light (no torch import) so that the CLI can set thread and
wait-policy environment variables before torch loads its OpenMP runtime.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any  # noqa: E402

__all__ = ["Augmenter", "TabularGAN", "TextToImage", "Translator", "VideoGenerator", "VideoPredictor", "__version__"]


def __getattr__(name: str) -> Any:
    """The application facades, imported on first use (``from ganforge import TabularGAN``)."""
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
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
