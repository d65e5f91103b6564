"""Several processes, one run: DistributedDataParallel through ``torchrun``.

    torchrun --nproc-per-node 2 -m ganforge train --data mnist --batch-size 128 --out runs/ddp
    torchrun --nnodes 2 --node-rank R --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m ganforge train ...

`setup` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR/PORT), initialises the process group (gloo on CPU, NCCL on CUDA, one GPU per local
rank) and returns a `DistContext`; in a plain ``python`` process it returns the single-process
context, whose methods do nothing, so the training code has one path for both. What holds:

* ``batch_size`` is the global batch: each rank trains on its disjoint slice of the same
  permutation (`BatchStream` ``shard``), so K processes see what one process would.
* G and D are wrapped in DDP (gradients averaged over ranks after every backward). D's forward in
  the G phase calls the plain network: D is frozen there, so there is nothing to synchronise.
  R1 and WGAN-GP work (their inner ``autograd.grad`` touches only D's input; the parameters'
  gradients are reduced once, in the outer backward). ``broadcast_buffers`` is off: BatchNorm
  running statistics stay per rank (only rank 0's are saved and used for samples), and
  spectral-norm vectors are identical on every rank by construction (same weights, same start).
* Only rank 0 writes: the run directory, stats, samples, checkpoints, doctor log and report.
  Stats are averaged over ranks at every flush, so stats.jsonl describes the global batch.
  The doctor and user callbacks run on rank 0; a stop they decide (``StopTraining``) and a
  signal any rank receives are agreed by all ranks before anyone acts on them.
* Checkpoints hold the plain networks' state dicts (no ``module.`` prefix) and every rank's RNG
  state: they resume with the same number of processes exactly, and with another number of
  processes (or in one process, or in `ganforge sample/eval`) as they are.
* Noise: rank r's generator is seeded from (seed, r) (rank 0 with ``seed`` itself), so a
  K-process run is reproducible but draws other z than a 1-process run; it matches one only in
  distribution. ``ddp_noise = "global"`` makes every rank draw the global batch's z and keep its
  slice: the K-process run then follows the 1-process run with the same global batch up to
  floating-point reduction order (for models without BatchNorm, or with SyncBatchNorm).
* One run per launch: `ganforge.train.train` destroys the group it created when it returns;
  forming a new group in the same worker afterwards hung once in testing, so resume by
  launching torchrun again.
"""

from __future__ import annotations

import atexit
import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.train.fast import Performance, convert_sync_batchnorm, notice

SINGLE_FAMILIES = ("cyclegan", "video_predict", "video_generate", "text2image")


def launched() -> bool:
    """True when this process is one of several started by torchrun (WORLD_SIZE > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams: ``seed`` itself for rank 0, a hash of (seed, rank) otherwise."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, 0x6A6E]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class DistContext:
    """This process's place in the run: rank, world size and the collectives training needs.

    The default instance is a single process: every collective returns its input.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None
    device: torch.device | None = None
    owns_group: bool = False  # ganforge initialised the process group (kept until exit, see setup)
    control_group: Any = None  # a gloo group for CPU-side agreement (the default group on CPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    # --- collectives (identity in one process) ----------------------------------------------------------
    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, group=self.control_group)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj, group=self.control_group)
        return out

    def agree_signal(self, signum: int | None) -> int | None:
        """The signal any rank has received (the largest number), or None: all ranks stop at the same step."""
        if not self.enabled:
            return signum
        flag = torch.tensor([signum or 0], dtype=torch.int64)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=self.control_group)
        return int(flag.item()) or None

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank if setup failed on any (else the others would wait at the first collective)."""
        if not self.enabled:
            if error is not None:
                raise error
            return
        messages = self.all_gather_object(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if failed:
            rank, message = failed[0]
            raise ConfigError(f"rank {rank} failed to set up the run: {message}")

    def reduce_stats(self, sums: dict[str, Any], counts: dict[str, int]) -> dict[str, float]:
        """Means over every rank of the values reported since the last flush (names gathered, sums all-reduced).

        Names reported on some ranks only (rank 0's probes) are averaged over the ranks that have them.
        """
        names = sorted(set().union(*self.all_gather_object(sorted(sums))))
        if not names:
            return {}
        device = self.device if self.backend == "nccl" else torch.device("cpu")
        values = []
        for name in names:
            v = sums.get(name, 0.0)
            values.append(v.detach().to(device, torch.float64).reshape(()) if torch.is_tensor(v)
                          else torch.tensor(float(v), dtype=torch.float64, device=device))
        totals = torch.stack(values + [torch.tensor(float(counts.get(n, 0)), dtype=torch.float64, device=device)
                                       for n in names])
        group = None if self.backend == "nccl" else self.control_group
        torch.distributed.all_reduce(totals, group=group)
        totals_list = totals.tolist()  # the one host transfer of the flush
        n = len(names)
        return {name: totals_list[i] / totals_list[n + i] for i, name in enumerate(names) if totals_list[n + i] > 0}

    # --- RNG state across ranks --------------------------------------------------------------------------
    def gather_rng(self, noise: torch.Generator) -> list[dict[str, Any]] | None:
        """Every rank's noise and torch RNG states (for rank 0's checkpoint); None in one process."""
        if not self.enabled:
            return None
        states = {"noise_rng": noise.get_state(), "torch_rng": torch.get_rng_state()}
        if self.device is not None and self.device.type == "cuda":
            states["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return self.all_gather_object(states)

    def restore_rng(self, state: dict[str, Any], noise: torch.Generator, seed: int, noise_mode: str = "rank") -> None:
        """After `Trainer.restore` applied the stored (rank 0) states: give each rank its own.

        Same number of processes: each rank's saved states (an exact resume). Another number: rank 0
        keeps the stored states, the others reseed from (seed, rank, step) (reproducible, not the
        continuation of any earlier rank); with ``noise_mode="global"`` every rank keeps rank 0's noise.
        """
        if not self.enabled:
            return
        ranks = state.get("rank_rng")
        same_device = state.get("noise_device") == noise.device.type
        if ranks is not None and len(ranks) == self.world_size:
            mine = ranks[self.rank]
            if same_device:
                noise.set_state(mine["noise_rng"])
            torch.set_rng_state(mine["torch_rng"])
            if "cuda_rng" in mine and self.device is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda_rng"], self.device)
            return
        step = int(state.get("step", 0))
        if self.is_main:
            saved = len(ranks) if ranks is not None else 1
            notice(f"resuming a checkpoint of {saved} process(es) on {self.world_size}: ranks > 0 draw new random "
                   "streams (reproducible, but not the continuation of the original run)")
        if self.rank > 0:
            fresh = rank_seed(seed + 1_000_003 * step, self.rank)
            if noise_mode != "global":
                noise.manual_seed(fresh)
            torch.manual_seed(fresh)  # seeds the CUDA generators too

    # --- models ------------------------------------------------------------------------------------------
    def wrap_step(self, step: Any, perf: Performance | None = None) -> None:
        """Wrap the step's G and D in DDP (and convert BatchNorm to SyncBatchNorm when ``perf`` says so).

        Call before `ganforge.train.fast.apply_to_step`, so compiled forms wrap the DDP modules.
        """
        if not self.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: N817

        if perf is not None and perf.sync_batchnorm:
            # converts in place below the top module and keeps the Parameter objects, so optimisers,
            # EMA and checkpoints (same state_dict keys) are unaffected
            step.generator = convert_sync_batchnorm(step.generator)
            step.discriminator = convert_sync_batchnorm(step.discriminator)
        device_ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        kwargs: dict[str, Any] = dict(device_ids=device_ids, find_unused_parameters=False)
        # no buffer broadcast before each forward (see the module docstring); buffers still sync at construction
        if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:  # torch >= 2.13
            kwargs["forward_sync_buffers"] = False
        else:
            kwargs["broadcast_buffers"] = False
        step.g_train = DDP(step.generator, **kwargs)
        step.d_train = DDP(step.discriminator, **kwargs)
        step.d_frozen = step.discriminator  # the G phase: D is frozen, DDP would have nothing to reduce

    def threads(self, requested: int) -> int:
        """Torch threads per process: ``requested``, or this machine's cores shared by its processes."""
        if requested > 0:
            return requested
        from ganforge.train.runtime import free_cores

        return max(1, free_cores() // max(1, self.local_world_size))

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier(group=self.control_group)

    def close(self) -> None:
        """End of a run: drop this run's control group. A process group ganforge formed is kept for the next
        run in the same process and destroyed at exit (see `setup`); one the caller formed is theirs."""
        if self.control_group is not None and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group(self.control_group)
        self.control_group = None


SINGLE = DistContext()
_OWN_GROUP: str | None = None  # the backend of the process group ganforge formed in this process, if any


def _destroy_own_group() -> None:
    global _OWN_GROUP
    if _OWN_GROUP is not None and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _OWN_GROUP = None


def require_single_process_family(model: str) -> None:
    """Refuse a torchrun launch of a family that trains in one process only."""
    if launched() and model in SINGLE_FAMILIES:
        raise ConfigError(f"--model {model} trains in one process; distributed training (torchrun) is for "
                          "the noise-to-image GANs (dcgan, mlp)")


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ConfigError(f"launched with WORLD_SIZE={os.environ.get('WORLD_SIZE')} but {name} is not set; "
                              "start distributed runs with torchrun --nproc-per-node K -m ganforge train ...")
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def _device_for(name: str, local_rank: int) -> torch.device:
    """The device of local rank ``local_rank``: its own GPU on CUDA machines, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"--device {name}: distributed training runs on CUDA (NCCL) or CPU (gloo), "
                          f"not {device.type}; use --device cpu or cuda")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu (gloo) or auto")
    if device.index is not None and device.index != local_rank:
        raise ConfigError(f"--device {name}: under torchrun each process uses the GPU of its local rank "
                          f"(cuda:{local_rank} here); give --device cuda")
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                          "use --nproc-per-node at most the number of GPUs")
    return torch.device("cuda", local_rank)


def setup(config: Any, timeout_s: float | None = None) -> DistContext:
    """The distributed context of this process: SINGLE in a plain process, else an initialised process group.

    Raises ConfigError when launched with WORLD_SIZE > 1 and the group cannot be formed (the
    backend is missing, the rendezvous fails) or the config cannot be split over the processes.
    """
    if not launched():
        return SINGLE
    world = _env_int("WORLD_SIZE")
    rank = _env_int("RANK")
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    require_single_process_family(config.model)
    if config.batch_size % world:
        raise ConfigError(f"--batch-size {config.batch_size} is the global batch and must be divisible by the "
                          f"{world} processes; use e.g. --batch-size {max(world, config.batch_size // world * world)}")
    local_batch = config.batch_size // world
    if config.pack > 1 and local_batch % config.pack:
        raise ConfigError(f"--pack {config.pack} needs each process's batch ({local_batch}) divisible by it")
    if config.auto_remedy:
        raise ConfigError("--auto-remedy rolls the run back mid-training, which distributed runs do not support; "
                          "drop it (the doctor still reports, and --stop-at-equilibrium works)")
    device = _device_for(config.device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not torch.distributed.is_available():
        raise ConfigError("this torch build has no torch.distributed; distributed training is not possible here")
    if backend == "nccl" and not torch.distributed.is_nccl_available():
        raise ConfigError("CUDA training over several processes needs NCCL, which this torch build lacks; "
                          "use --device cpu (gloo)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    global _OWN_GROUP
    if _OWN_GROUP is not None and _OWN_GROUP != backend and torch.distributed.is_initialized():
        _destroy_own_group()  # an earlier run in this process used the other device type: form a new group
    owns = _OWN_GROUP is not None and torch.distributed.is_initialized()
    # Formed once per process and reused by later runs: destroying the group at the end of train() and forming
    # it again for the next call under torchrun hung the second rendezvous in 1 of 4 tries here.
    if not torch.distributed.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise ConfigError(f"launched with WORLD_SIZE={world} but {var} is not set; start distributed runs "
                                  "with torchrun (torchrun --nproc-per-node K -m ganforge train ...)")
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["timeout"] = datetime.timedelta(seconds=timeout_s)
        if device.type == "cuda":
            kwargs["device_id"] = device
        try:
            torch.distributed.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                                 **kwargs)
        except Exception as e:  # noqa: BLE001 - every failure here means the same to the user
            raise ConfigError(
                f"could not initialise torch.distributed (backend {backend}, rank {rank} of {world}, "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}): {str(e).splitlines()[0]}. "
                "Check that every node can reach MASTER_ADDR:MASTER_PORT and runs the same command"
            ) from None
        owns = True
        _OWN_GROUP = backend
        atexit.register(_destroy_own_group)
    elif not owns:  # the caller's script formed the group: use it as it is, and leave it to them to destroy
        backend = torch.distributed.get_backend()
    control = torch.distributed.new_group(backend="gloo") if backend == "nccl" else None
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                       backend=backend, device=device, owns_group=owns, control_group=control)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain network inside a DDP wrapper or a compiled module."""
    while True:
        inner = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
        if inner is None or not isinstance(inner, nn.Module):
            return module
        module = inner
