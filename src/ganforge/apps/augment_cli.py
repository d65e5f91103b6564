"""``ganforge augment``: does a class-conditional GAN help a classifier trained on few labels? One command, one table.

    ganforge augment --data fashion_mnist --labels-per-class 60 --out runs/aug [--seed 0] [--steps 1500]
                     [--ratios 0.5,1,2] [--min-confidence 0.9] [--data-dir DIR]

Writes into --out: ``subset.json`` (the labelled images' indices into the training split), ``gan/`` (the GAN's
ganforge run: samples, stats, checkpoints, report.html; ``--resume auto`` continues it), ``labelled.npz``,
``synthetic.npz`` (``x`` uint8 (N, H, W) or (N, C, H, W), ``y`` int64; plus ``x_filtered``/``y_filtered`` with
--min-confidence), ``results.json`` and ``results.md`` (test accuracy of the classifier in every arm).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.errors import ConfigError

SUBSET_FILE = "subset.json"
SYNTHETIC_FILE = "synthetic.npz"
DEFAULT_STEPS = 1500


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _ratios(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,1,2, got {text!r}") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"ratios must be positive numbers such as 0.5,1,2, got {text!r}")
    return sorted(set(values))


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {value}")
    return value


def add_augment_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "augment", help="GAN data augmentation for few-label classification: the whole experiment",
        description="Draw a stratified labelled subset of a dataset's training split, fit a class-conditional GAN "
        "on it (DiffAugment, spectral norm, EMA), and train the same small classifier in every arm: real only; real "
        "+ classic augmentation; real + synthetic at each --ratios; real + judge-filtered synthetic "
        "(--min-confidence); real + classic + synthetic; synthetic only. Prints test accuracies and keeps the "
        "evidence (subset.json, synthetic.npz, results.json/.md, the GAN run) in --out.")
    p.add_argument("--data", default="fashion_mnist", help="a labelled image dataset: name (fashion_mnist, mnist, "
                   "digits) or .npz/image folder with a test split (default fashion_mnist)")
    p.add_argument("--labels-per-class", type=_positive_int, default=60, help="labelled images per class (60)")
    p.add_argument("--out", required=True, help="the experiment's directory")
    p.add_argument("--seed", type=int, default=0, help="subset, GAN and classifier seed (default 0)")
    p.add_argument("--steps", type=_positive_int, default=DEFAULT_STEPS,
                   help=f"GAN training steps (default {DEFAULT_STEPS})")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="GAN batch size (default 64)")
    p.add_argument("--width", type=_positive_int, default=32, help="DCGAN channels ngf = ndf (default 32)")
    p.add_argument("--ratios", type=_ratios, default=[0.5, 1.0, 2.0],
                   help="synthetic images per real labelled image, one arm each (default 0.5,1,2)")
    p.add_argument("--min-confidence", type=_probability,
                   help="add an arm whose synthetic images a judge (trained on the labelled subset) assigns to "
                   "their class with at least this probability")
    p.add_argument("--classifier-steps", type=_positive_int, default=1000,
                   help="classifier training steps per arm, cosine learning rate, every labelled image (default 1000)")
    p.add_argument("--data-dir", help="folder to look for the dataset in first")
    p.add_argument("--resume", metavar="auto", choices=["auto"], help="continue an interrupted experiment in --out")
    p.add_argument("--device", default="cpu", help="device of the GAN (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default 0: automatic)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_augment)
    return p


def _load_labelled(name: str, split: str, data_dir: str | None):
    from ganforge.data import load

    data = load(name, split, data_dir)
    if data.labels is None:
        raise ConfigError(f"--data {name} has no labels; augmentation for classification needs a labelled dataset "
                          "(a .npz with y_train/y_test, or an image folder with one sub-folder per class)")
    return data


def cmd_augment(args: argparse.Namespace) -> int:
    from ganforge.apps.augment import (
        Augmenter,
        ClassifierRecipe,
        Subset,
        default_arms,
        run_arms,
        select_subset,
        synthetic_sets,
    )

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    subset_path = out / SUBSET_FILE
    if args.resume is None and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; choose a new directory, or continue an interrupted experiment "
                          "with --resume auto")
    train = _load_labelled(args.data, "train", args.data_dir)
    test = _load_labelled(args.data, "test", args.data_dir)
    dataset = train.spec.name or str(args.data)
    y_all = train.labels.numpy()
    if args.resume is not None and subset_path.exists():
        subset = Subset.load(subset_path)
        if (subset.dataset, subset.labels_per_class, subset.seed) != (dataset, args.labels_per_class, args.seed):
            raise ConfigError(f"--resume: {subset_path} is for {subset.dataset}, {subset.labels_per_class} per class, "
                              f"seed {subset.seed}; give the same --data, --labels-per-class and --seed")
        indices = np.asarray(subset.indices, dtype=np.int64)
    else:
        indices = select_subset(y_all, args.labels_per_class, args.seed)
        out.mkdir(parents=True, exist_ok=True)
        Subset(dataset=dataset, labels_per_class=args.labels_per_class, seed=args.seed,
               indices=indices.tolist()).save(subset_path)
    x, y = train.images.numpy()[indices], y_all[indices]
    progress = not args.no_progress
    print(f"augment: {len(y)} labelled {dataset} images ({args.labels_per_class} per class, seed {args.seed}); "
          f"subset in {subset_path}", file=sys.stderr)

    started = time.time()
    gan_exists = (out / "gan" / "config.json").exists()
    augmenter = Augmenter(steps=args.steps, batch_size=args.batch_size, seed=args.seed, width=args.width,
                          device=args.device, threads=args.threads, progress=progress, out=out)
    augmenter.fit(x, y, resume="auto" if args.resume is not None and gan_exists else None)
    gan_seconds = time.time() - started

    arms = default_arms(args.ratios, args.min_confidence)
    sets = synthetic_sets(augmenter, arms, args.labels_per_class, args.seed, args.min_confidence)
    arrays = {"x": sets["plain"][0], "y": sets["plain"][1]}
    if "filtered" in sets:
        arrays.update(x_filtered=sets["filtered"][0], y_filtered=sets["filtered"][1])
    np.savez_compressed(out / SYNTHETIC_FILE, **arrays)

    # classic augmentation: shifts of a fourteenth of the side (2 px at 28x28, 1 px at 8x8), flips only where a
    # mirrored image keeps its class (clothes, not digits)
    recipe = ClassifierRecipe(max_steps=args.classifier_steps, flip=dataset == "fashion_mnist",
                              max_shift=max(1, round(min(x.shape[-2:]) / 14)))
    rows = run_arms(arms, x, y, test.images.numpy(), test.labels.numpy(), sets, recipe=recipe, seed=args.seed,
                    progress=progress)
    results = {
        "dataset": dataset, "labels_per_class": args.labels_per_class, "seed": args.seed, "n_test": len(test),
        "gan": {**augmenter.settings(), "run_dir": str(augmenter.run_dir), "seconds": round(gan_seconds, 1)},
        "classifier": recipe.describe(), "min_confidence": args.min_confidence, "ratios": args.ratios,
        "arms": rows, "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    from ganforge.train.config import save_json

    save_json(out / "results.json", results)
    table = format_results(rows)
    (out / "results.md").write_text(
        f"# ganforge augment: {dataset}, {args.labels_per_class} labelled per class, seed {args.seed}\n\n"
        f"Test accuracy on {len(test)} test images. GAN: {args.steps} steps (run in `gan/`). "
        f"Classifier: {recipe.describe()}.\n\n{table}\n", encoding="utf-8")
    print(table)
    print(f"results: {out / 'results.json'}, {out / 'results.md'}; synthetic set: {out / SYNTHETIC_FILE}",
          file=sys.stderr)
    return 0


def format_results(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: arm, test accuracy, images trained on, early-stopping step."""
    lines = ["| arm | test accuracy | real / synthetic images | classifier step |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['arm']} | {row['test_accuracy']:.2%} | {row['n_real']} / {row['n_synthetic']} | "
                     f"{row['steps']} |")
    return "\n".join(lines)

