"""Evaluate a trained run (or a file of samples) and record the scores in ``metrics.jsonl``.

The glue between a run directory and ``ganforge.metrics``: rebuild the generator from a
checkpoint, draw samples from their own seeded noise (never the training random stream, so
scores do not depend on when evaluation happened), pick the real reference, score, and
append every value with its protocol, checkpoint and step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganforge.errors import ConfigError
from ganforge.metrics.evaluate import evaluate, make_extractor
from ganforge.metrics.protocol import Score, append_scores


def load_reference(dataset: str, split: str, n: int, seed: int, data_dir: str | None = None
                   ) -> tuple[Tensor, Tensor | None, str, str]:
    """Up to ``n`` real samples of ``dataset`` (a seeded subset), their labels, the split used, and the kind.

    Falls back to the training split for data that has no test split (image folders, arrays).
    """
    from ganforge.data import load, to_model_range

    try:
        data = load(dataset, split=split, data_dir=data_dir)
    except ConfigError:
        if split != "test":
            raise
        data = load(dataset, split="train", data_dir=data_dir)
        split = "train"
    g = torch.Generator().manual_seed(seed + 12345)
    idx = torch.randperm(len(data), generator=g)[: min(n, len(data))]
    real = to_model_range(data.images[idx])
    labels = data.labels[idx] if data.labels is not None else None
    return real, labels, split, data.spec.kind


def _dataset_key(name: str) -> str:
    from ganforge.data import canonical_name

    return canonical_name(Path(name).name if os.sep in name else name)


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    metrics: list[str] | None = None,
    n: int = 10_000,
    checkpoint: str | None = None,
    seed: int = 0,
    split: str = "test",
    extractor: str | tuple[Any, Any] = "auto",
    device: str = "cpu",
    progress: bool = True,
    write: bool = True,
    generator_override: Any = None,
    step: int | None = None,
) -> list[Score]:
    """Score a run's generator; append the scores to ``RUN_DIR/metrics.jsonl`` when ``write``.

    ``checkpoint``: None/"latest"/"last", "best", a step number, or a checkpoint directory.
    ``generator_override`` (with ``step``) scores an in-memory generator instead, for evaluation
    during training.
    """
    from ganforge.train.checkpoint import checkpoint_name
    from ganforge.train.run import TrainedRun, load_run
    from ganforge.train.rundir import RunDir

    if n <= 1:
        raise ConfigError(f"--n must be at least 2 samples, got {n}")
    rundir = RunDir(run_dir)
    if generator_override is not None:
        from ganforge.data.spec import DataSpec
        from ganforge.train.config import RunConfig

        record = rundir.read_config()
        run = TrainedRun(generator_override, DataSpec.from_dict(record["spec"]),
                         RunConfig.from_dict(record["config"]), rundir.checkpoints / checkpoint_name(step or 0), False)
        ckpt_step = step
    else:
        if checkpoint == "last":
            checkpoint = "latest"
        run = load_run(run_dir, checkpoint=checkpoint, device=device)
        ckpt_step = int(run.checkpoint.name.split("_")[-1]) if run.checkpoint.name.startswith("step_") else None
    dataset = _dataset_key(run.config.data)
    real, real_labels, used_split, kind = load_reference(run.config.data, split, n, seed, run.config.data_dir)
    fake_labels = None
    if run.spec.n_classes:
        if real_labels is None:
            raise ConfigError("a conditional run needs labelled reference data")
        fake_labels = real_labels[torch.arange(n) % len(real_labels)]  # the real label distribution
    fake = run.sample(n, labels=fake_labels, seed=seed).cpu()
    scores = evaluate(fake, real, dataset=dataset, reference=f"{dataset}:{used_split}", metrics=metrics,
                      fake_labels=fake_labels, real_labels=real_labels, kind=kind, extractor=extractor, seed=seed,
                      data_dir=run.config.data_dir, device=device, progress=progress)
    try:
        rel = str(run.checkpoint.relative_to(rundir.path))
    except ValueError:
        rel = str(run.checkpoint)
    for s in scores:
        s.checkpoint, s.step = rel, ckpt_step
    if write:
        append_scores(rundir.path / "metrics.jsonl", scores)
    return scores


def load_samples(path: str | os.PathLike) -> tuple[Tensor, Tensor | None]:
    """Samples from ``ganforge sample`` output (.npz with x[, y], or .npy), as floats (images in [-1, 1])."""
    import numpy as np

    from ganforge.data import to_model_range

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--fake {p}: no such file")
    try:
        arrays = np.load(p, allow_pickle=False)
    except Exception as e:
        raise ConfigError(f"--fake {p}: not a readable .npy/.npz file ({e})") from None
    if isinstance(arrays, np.ndarray):
        x, y = arrays, None
    else:
        if "x" not in arrays:
            found = ", ".join(arrays.files)
            raise ConfigError(f"--fake {p}: expected an array 'x' (and optionally 'y'), found {found}")
        x, y = arrays["x"], (arrays["y"] if "y" in arrays.files else None)
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = to_model_range(t)
    return t, (torch.from_numpy(np.asarray(y)).long() if y is not None else None)


def evaluate_files(real: str, fake: str, *, metrics: list[str] | None = None, n: int = 10_000, seed: int = 0,
                   split: str = "test", extractor: str = "auto", data_dir: str | None = None, device: str = "cpu",
                   progress: bool = True) -> list[Score]:
    """Score a file of samples against a named dataset (or any loadable path), without a run directory."""
    fake_x, fake_y = load_samples(fake)
    fake_x = fake_x[:n]
    fake_y = fake_y[:n] if fake_y is not None else None
    dataset = _dataset_key(real)
    real_x, real_y, used_split, kind = load_reference(real, split, n, seed, data_dir)
    ext = make_extractor(dataset, kind, extractor, data_dir=data_dir, device=device, progress=progress)
    return evaluate(fake_x, real_x, dataset=dataset, reference=f"{dataset}:{used_split}", metrics=metrics,
                    fake_labels=fake_y, real_labels=real_y, kind=kind, extractor=ext, seed=seed,
                    data_dir=data_dir, device=device, progress=progress)
