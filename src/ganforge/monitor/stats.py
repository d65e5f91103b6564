"""Stats without plumbing: any code calls ``report("Loss/D", x)``; one collector writes them.

The collector averages every value reported under a name between two flushes and writes
one JSON object per flush to ``stats.jsonl`` (``{"step": int, "time": float, name: mean, ...}``),
plus TensorBoard scalars when ``tensorboard`` is installed. Tensor values are kept on their
device and summed there, so reporting from inside a training step costs no host sync; the
single transfer happens at flush time.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_active: list[Collector] = []


def report(name: str, value: Any) -> None:
    """Record a value (float, int or tensor of any shape; tensors are averaged) under ``name``.

    A no-op when no collector is active, so library code can report unconditionally.
    """
    if _active:
        _active[-1].add(name, value)


class Collector:
    """Collects reported values and writes their means to ``stats.jsonl`` (and TensorBoard).

    Use as a context manager to make it the target of :func:`report`.

    ``reduce(sums, counts) -> means`` replaces the local means at flush time: distributed training
    passes one that averages over every process (`ganforge.train.distributed.DistContext.reduce_stats`).
    """

    def __init__(self, path: str | os.PathLike | None = None, tensorboard_dir: str | os.PathLike | None = None,
                 reduce: Callable[[dict[str, Any], dict[str, int]], dict[str, float]] | None = None):
        self.path = Path(path) if path is not None else None
        self.reduce = reduce
        self._sums: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self._start = time.time()
        self._writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard is optional
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                self._writer = SummaryWriter(str(tensorboard_dir))

    def __enter__(self) -> Collector:
        _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.remove(self)
        self.close()

    def add(self, name: str, value: Any) -> None:
        if hasattr(value, "detach"):
            value = value.detach().float().mean()
        else:
            value = float(value)
        if name in self._sums:
            self._sums[name] = self._sums[name] + value
            self._counts[name] += 1
        else:
            self._sums[name] = value
            self._counts[name] = 1

    def pending(self) -> bool:
        return bool(self._sums)

    def flush(self, step: int) -> dict[str, float]:
        """Write the means of everything reported since the last flush; return them."""
        means: dict[str, float] = {}
        if self.reduce is not None:
            means = self.reduce(self._sums, self._counts)
        else:
            for name, total in self._sums.items():
                v = float(total) / self._counts[name]
                means[name] = v
        self._sums.clear()
        self._counts.clear()
        if not means:
            return means
        self.last.update(means)
        record = {"step": int(step), "time": round(time.time() - self._start, 4)}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in means.items()})
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for k, v in means.items():
                self._writer.add_scalar(k, v, step)
        return means

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file, skipping blank, undecodable and torn lines (a killed writer)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def to_json_safe(value: Any) -> Any:
    """Non-finite floats (at any depth) as the strings "nan", "inf", "-inf": JSON has no NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: to_json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_safe(v) for v in value]
    return value


def from_json_safe(value: Any) -> Any:
    """Inverse of :func:`to_json_safe`."""
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    return value


def read_stats(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of a ``stats.jsonl`` file (non-finite values back as floats), skipping a torn last line."""
    for rec in read_jsonl(path):
        yield {k: (float(v) if v in ("nan", "inf", "-inf") else v) for k, v in rec.items()}
