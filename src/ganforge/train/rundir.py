"""The run directory: the one place a run writes to and every tool reads from.

    RUN_DIR/config.json     everything needed to rebuild the run (RunConfig + data spec)
    RUN_DIR/stats.jsonl     one JSON object per logged step
    RUN_DIR/samples/        step_NNNNNN.png grids from one fixed noise batch
    RUN_DIR/checkpoints/    step_NNNNNN/ (see ganforge.train.checkpoint)
    RUN_DIR/tensorboard/    TensorBoard events, when tensorboard is installed
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ganforge.errors import CheckpointError, ConfigError, GanforgeError
from ganforge.train.checkpoint import (
    CheckpointInfo,
    best_checkpoint,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    verify_checkpoint,
)
from ganforge.train.config import save_json

CONFIG_FILE = "config.json"


class RunDir:
    """Paths of one run directory, and the rules for creating or re-opening one."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config_path = property(lambda self: self.path / CONFIG_FILE)
    stats_path = property(lambda self: self.path / "stats.jsonl")
    samples = property(lambda self: self.path / "samples")
    checkpoints = property(lambda self: self.path / "checkpoints")
    tensorboard = property(lambda self: self.path / "tensorboard")

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> dict[str, Any]:
        if not self.is_run():
            raise GanforgeError(
                f"{self.path} is not a ganforge run directory (no {CONFIG_FILE}); "
                "give the --out directory of a `ganforge train` run"
            )
        try:
            return json.loads(self.config_path.read_text())
        except ValueError as e:
            raise GanforgeError(f"{self.config_path} is not valid JSON ({e}); the run directory is damaged") from None

    def create(self, config: dict[str, Any]) -> None:
        """Start a new run here; refuse a directory that already holds anything."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} is a file, not a directory")
        if self.path.is_dir() and any(self.path.iterdir()):
            if self.is_run():
                raise ConfigError(
                    f"--out {self.path} already holds a run; continue it with --resume auto, "
                    "or choose another --out"
                )
            raise ConfigError(
                f"--out {self.path} is not empty and is not a ganforge run; choose a new or empty directory "
                "(nothing there was changed)"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        save_json(self.config_path, config)

    def checkpoint_path(self, which: str | os.PathLike | None = None) -> Path:
        """The verified checkpoint ``which`` names: None or ``"latest"`` (newest), ``"best"`` (best score), a step
        number (``4000`` or ``"4000"``: ``checkpoints/step_004000``), or a checkpoint directory; CheckpointError
        when there is none yet or it is damaged."""
        if isinstance(which, int) or (isinstance(which, str) and which.isdigit()):
            which = self.checkpoints / checkpoint_name(int(which))
        if which in (None, "latest", "best"):
            info = best_checkpoint(self.checkpoints) if which == "best" else self.latest()
            if info is None:
                raise CheckpointError(f"{self.path} has no checkpoint yet; train it first (checkpoints/ is empty)")
            path = info.path
        else:
            path = Path(str(which))
        verify_checkpoint(path)
        return path

    def latest(self) -> CheckpointInfo | None:
        return latest_checkpoint(self.checkpoints)

    def checkpoint_list(self) -> list[CheckpointInfo]:
        return list_checkpoints(self.checkpoints)

    def truncate_stats(self, step: int) -> None:
        """Drop stats logged after ``step`` (they belong to the part of the run being redone)."""
        if not self.stats_path.exists():
            return
        kept = []
        with open(self.stats_path, encoding="utf-8") as f:
            for line in f:
                try:
                    if json.loads(line)["step"] <= step:
                        kept.append(line if line.endswith("\n") else line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line from a killed process
        tmp = self.stats_path.with_name("stats.jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, self.stats_path)
