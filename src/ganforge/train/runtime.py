"""Device and thread selection, and the deterministic batch stream."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ganforge.data.images import to_model_range
from ganforge.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA, then Apple MPS, then CPU; otherwise the device named, if it is there."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: Apple MPS is not available here; use --device cpu or auto")
    return device


def free_cores() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads: ``threads`` if > 0, else every core this process may use.

    The CLI also sets ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported: with libgomp's
    default active spin-wait, two threads on a busy two-core machine ran 3.5–11x slower
    than one (measured on our CI boxes); passive waiting removes that cliff.
    """
    n = threads if threads > 0 else free_cores()
    torch.set_num_threads(n)
    return n


class BatchStream:
    """Shuffled batches whose order is a pure function of (seed, batch index).

    Epoch ``e`` is a permutation drawn from a generator seeded with ``(seed, e)``; the last,
    incomplete batch of an epoch is dropped so every batch has the same size. Because the
    position is just a counter, resuming at batch ``k`` replays exactly what a straight run
    would have seen.

    ``shard=(rank, world_size)`` (distributed training): ``batch_size`` is the global batch and this
    process gets the ``rank``-th of ``world_size`` equal, disjoint slices of it, cut from the same
    permutation every process draws, so K processes together see what one process would. The
    position counts global batches, so a checkpoint resumes on any number of processes.
    ``memory_format`` (e.g. ``torch.channels_last``) is the layout the batches are returned in.
    """

    def __init__(self, images: Tensor, labels: Tensor | None, batch_size: int, seed: int, device: torch.device,
                 *, shard: tuple[int, int] = (0, 1), memory_format: torch.memory_format | None = None):
        n = images.shape[0]
        rank, world = shard
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"BatchStream shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}")
        if batch_size % world:
            raise ConfigError(
                f"--batch-size {batch_size} is the global batch and must be divisible by the number of processes "
                f"({world}); use e.g. --batch-size {max(world, batch_size // world * world)}"
            )
        if batch_size > n:
            raise ConfigError(
                f"--batch-size {batch_size} is larger than the dataset ({n} examples); use at most {n}"
            )
        self.images = images.to(device)  # uint8 images stay uint8 (4x less memory), converted per batch
        self.labels = labels.to(device) if labels is not None else None
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = n // batch_size
        self.shard = (rank, world)
        self.local_batch = batch_size // world
        self.memory_format = memory_format
        self.position = 0
        self._epoch = -1
        self._perm: Tensor | None = None

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.images.shape[0], generator=g).to(self.images.device)
            self._epoch = epoch
        assert self._perm is not None
        return self._perm

    def next(self) -> tuple[Tensor, Tensor | None]:
        epoch, i = divmod(self.position, self.per_epoch)
        idx = self._permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        if self.shard[1] > 1:
            idx = idx[self.shard[0] * self.local_batch : (self.shard[0] + 1) * self.local_batch]
        self.position += 1
        x = to_model_range(self.images[idx])  # uint8 → [-1, 1]
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        y = self.labels[idx] if self.labels is not None else None
        return x, y
