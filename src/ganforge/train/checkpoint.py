"""Checkpoints: weights as safetensors, training state loaded with ``weights_only=True``.

Layout of one checkpoint (a directory, written atomically: built under a temporary name,
then renamed, so a kill mid-write leaves either the old set or the new one, never half)::

    checkpoints/step_000100/
        generator.safetensors       discriminator.safetensors   [generator_ema.safetensors]
        training_state.pt           optimiser states, RNG states, step, data position
        meta.json                   step, score, and the sha256 of every file above

``meta.json`` is written last; a checkpoint without it, or whose files do not match their
hashes, is reported as corrupt instead of being loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ganforge.errors import CheckpointError
from ganforge.files import sha256_file

_STEP_DIR = re.compile(r"^step_(\d{6,})$")
STATE_FILE = "training_state.pt"
META_FILE = "meta.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    score: float | None


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    weights: dict[str, dict[str, torch.Tensor]],
    state: dict[str, Any],
    score: float | None = None,
) -> Path:
    """Write ``weights`` (name → state_dict) and ``state`` under ``root/step_NNNNNN`` atomically."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files: dict[str, str] = {}
    for name, state_dict in weights.items():
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        fname = f"{name}.safetensors"
        save_file(tensors, str(tmp / fname))
        files[fname] = sha256_file(tmp / fname)
    torch.save(state, tmp / STATE_FILE)
    files[STATE_FILE] = sha256_file(tmp / STATE_FILE)
    meta = {"step": int(step), "score": score, "files": files, "format": 1}
    with open(tmp / META_FILE, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. an interrupt right after a scheduled save)
        old = root / f".old-{checkpoint_name(step)}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    return final


def list_checkpoints(root: str | os.PathLike) -> list[CheckpointInfo]:
    """Complete checkpoints under ``root`` (those with a ``meta.json``), oldest first."""
    root = Path(root)
    found: list[CheckpointInfo] = []
    if not root.is_dir():
        return found
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if not m or not p.is_dir():
            continue
        score = None
        try:
            meta = json.loads((p / META_FILE).read_text())
            score = meta.get("score")
        except (OSError, ValueError):
            pass  # listed anyway: loading it will say what is wrong
        found.append(CheckpointInfo(p, int(m.group(1)), score))
    return sorted(found, key=lambda c: c.step)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} is incomplete (no {META_FILE}; it was probably interrupted while being written). "
            "Delete it, or resume from an earlier checkpoint with --resume PATH."
        ) from None
    except ValueError:
        raise CheckpointError(
            f"checkpoint {path} has a corrupt {META_FILE}; delete it or pick another checkpoint"
        ) from None
    if not isinstance(meta, dict) or "files" not in meta or "step" not in meta:
        raise CheckpointError(f"checkpoint {path}: {META_FILE} is not a ganforge checkpoint description")
    return meta


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check every file against its recorded sha256; return the meta data or raise CheckpointError."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    meta = read_meta(path)
    for fname, digest in meta["files"].items():
        f = path / fname
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is missing {fname}; delete it or pick another checkpoint")
        if sha256_file(f) != digest:
            raise CheckpointError(
                f"checkpoint {path} is corrupt or truncated ({fname} does not match its recorded sha256). "
                "Delete it to fall back to an earlier one, or pass --resume PATH."
            )
    return meta


def load_weights(path: str | os.PathLike, name: str) -> dict[str, torch.Tensor] | None:
    """Load one network's weights from a verified checkpoint; None when the file is not there."""
    f = Path(path) / f"{name}.safetensors"
    if not f.is_file():
        return None
    try:
        return load_file(str(f))
    except Exception as e:  # safetensors raises several error types for damaged files
        raise CheckpointError(f"cannot read {f}: {e}") from None


def load_sampling_weights(path: str | os.PathLike, generator: torch.nn.Module) -> bool:
    """Load the generator a run samples from into ``generator``: its EMA copy when the checkpoint kept one,
    else the trained generator. Returns whether the EMA weights were used."""
    weights = load_weights(path, "generator_ema")
    uses_ema = weights is not None
    if weights is None:
        weights = load_weights(path, "generator")
    if weights is None:
        raise CheckpointError(f"checkpoint {path} holds no generator weights")
    generator.load_state_dict(weights)
    return uses_ema


def warm_start(source: str | os.PathLike, generator: torch.nn.Module) -> Path:
    """Load the trained generator of ``source`` into ``generator``; returns the checkpoint used.

    ``source`` is a run directory (its latest checkpoint) or one checkpoint directory. The trained weights,
    not the EMA copy: training goes on from them. The checkpoint is verified against its hashes first.
    """
    from ganforge.errors import ConfigError

    src = Path(source)
    if (src / "checkpoints").is_dir():
        info = latest_checkpoint(src / "checkpoints")
        if info is None:
            raise ConfigError(f"--init-from {src}: that run has no checkpoint yet; train it first")
        path = info.path
    elif (src / META_FILE).is_file():
        path = src
    else:
        raise ConfigError(f"--init-from {src}: not a run directory (no checkpoints/) nor a checkpoint "
                          f"(no {META_FILE}); give a run directory or e.g. RUN/checkpoints/step_001000")
    verify_checkpoint(path)
    weights = load_weights(path, "generator")
    if weights is None:
        raise CheckpointError(f"--init-from {path}: the checkpoint holds no generator weights")
    try:
        generator.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ConfigError(f"--init-from {path}: its generator does not fit this run's ({detail}); use the same "
                          "model settings (--model, --model-config, image size) as the run it comes from") from None
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load the training state; ``weights_only=True`` so a tampered file cannot run code."""
    f = Path(path) / STATE_FILE
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {f}: {e}") from None


def prune_checkpoints(root: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and the best-scored one (lowest score)."""
    found = list_checkpoints(root)
    keep = {c.path for c in found[-keep_last:]}
    scored = [c for c in found if c.score is not None]
    if scored:
        keep.add(min(scored, key=lambda c: (c.score, -c.step)).path)
    removed = []
    for c in found:
        if c.path not in keep:
            shutil.rmtree(c.path, ignore_errors=True)
            removed.append(c.path)
    return removed


def latest_checkpoint(root: str | os.PathLike) -> CheckpointInfo | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def best_checkpoint(root: str | os.PathLike) -> CheckpointInfo | None:
    scored = [c for c in list_checkpoints(root) if c.score is not None]
    return min(scored, key=lambda c: (c.score, -c.step)) if scored else None
