"""Every score with the protocol that produced it, one JSON line each in ``metrics.jsonl``.

A Fréchet distance is only comparable with another computed by the same extractor (and
weights), on the same number of samples, against the same reference split, with the same
resize and seed. ``Protocol`` holds exactly those; ``metrics.jsonl`` stores it beside every
value, and tables group scores by protocol instead of mixing them silently.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ganforge import __version__


@dataclass(frozen=True)
class Protocol:
    """How a score was measured: enough to reproduce it, and to refuse comparing unlike scores."""

    extractor: str  # e.g. "mnist_cnn", "inception_v3_tf_fidhelper", "identity" (raw 2-D points)
    extractor_hash: str  # sha256 of the extractor's weights ("" when it has none)
    n_real: int
    n_fake: int
    reference: str  # dataset and split the real samples come from, e.g. "mnist:test"
    resize: str  # "none" or e.g. "bilinear 32x32->28x28"
    seed: int
    ganforge_version: str = __version__

    def key(self) -> tuple:
        """What must match for two scores to be compared (the version may differ)."""
        return (self.extractor, self.extractor_hash, self.n_real, self.n_fake, self.reference, self.resize, self.seed)

    def describe(self) -> str:
        h = f" {self.extractor_hash[:12]}" if self.extractor_hash else ""
        return (f"{self.extractor}{h}, {self.n_fake} fake vs {self.n_real} real from {self.reference}, "
                f"resize {self.resize}, seed {self.seed}")


@dataclass
class Score:
    """One measured value, with where it came from."""

    metric: str  # honest names: "fd_mnist_cnn", never plain "FID" unless it is Inception's
    value: float
    protocol: Protocol
    checkpoint: str | None = None
    step: int | None = None
    extra: dict[str, Any] | None = None  # e.g. a KID's std over subsets, a class histogram

    def to_record(self) -> dict[str, Any]:
        record = {"metric": self.metric, "value": self.value, "checkpoint": self.checkpoint, "step": self.step,
                  "protocol": asdict(self.protocol), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if self.extra:
            record["extra"] = self.extra
        return record


def _strict(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings, as stats.jsonl does."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def append_scores(path: str | os.PathLike, scores: list[Score]) -> None:
    """Append scores to a ``metrics.jsonl`` (one object per line; flushed and fsynced)."""
    with open(path, "a", encoding="utf-8") as f:
        for score in scores:
            f.write(json.dumps(_strict(score.to_record()), default=float, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_scores(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a torn last line from a killed writer is skipped)."""
    p = Path(path)
    if not p.exists():
        return []
    records = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def format_table(scores: list[Score]) -> str:
    """A plain-text table, one block per protocol, so unlike scores are never side by side unlabelled."""
    groups: dict[tuple, list[Score]] = {}
    for s in scores:
        groups.setdefault(s.protocol.key(), []).append(s)
    lines = []
    for i, group in enumerate(groups.values()):
        if len(groups) > 1:
            lines.append(f"protocol {i + 1} of {len(groups)} (scores below are comparable only with each other):")
        lines.append(f"  {group[0].protocol.describe()}")
        width = max(len(s.metric) for s in group)
        for s in group:
            extra = ""
            if s.extra and "std" in s.extra:
                extra = f" ± {s.extra['std']:.4g}"
            lines.append(f"  {s.metric:<{width}}  {s.value:.6g}{extra}")
    return "\n".join(lines)
