"""The training loop: family-agnostic, it runs a step object and owns everything around it.

The loop knows nothing of a particular GAN: it asks the step for its networks and
optimisers (to checkpoint them), feeds it ``n_critic`` batches per step, flushes the stats
stream, writes sample grids and checkpoints on schedule, and turns SIGINT/SIGTERM into a
checkpoint and a clean exit.

Under torchrun (`ganforge.train.distributed`) every rank runs this loop in step with the others;
only rank 0 writes files, runs the callbacks, probes and evaluations, and the ranks agree on
signals and on stops before acting on them.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ganforge.errors import CheckpointError
from ganforge.monitor import Collector
from ganforge.train.checkpoint import (
    checkpoint_name,
    load_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
    verify_checkpoint,
)
from ganforge.train.config import RunConfig
from ganforge.train.distributed import SINGLE, DistContext
from ganforge.train.gan_step import GANStep  # or any object with the same protocol (e.g. CycleGANStep)
from ganforge.train.rundir import RunDir
from ganforge.train.runtime import BatchStream


class StopTraining(Exception):
    """Raised by a callback to end training cleanly (a checkpoint is written first)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class Callback:
    """Hooks into the loop. Override what you need; any hook may raise `StopTraining`.

    ``on_log`` runs after each stats flush with the flushed means (the stats.jsonl line);
    ``on_eval`` after each evaluation with the ranking value; ``on_restore`` after a checkpoint
    was loaded (at resume, or a rollback); ``on_end`` once the loop has ended, however it ended.
    """

    def on_start(self, trainer: Trainer) -> None: ...

    def on_log(self, trainer: Trainer, step: int, means: dict[str, float]) -> None: ...

    def on_eval(self, trainer: Trainer, step: int, value: float) -> None: ...

    def on_restore(self, trainer: Trainer, step: int) -> None: ...

    def on_end(self, trainer: Trainer) -> None: ...


class Interrupted(Exception):
    """Training stopped on a signal after writing a checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"interrupted by signal {signum} at step {step}; checkpoint written to {checkpoint}")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    last_sample: Path | None
    last_checkpoint: Path | None
    seconds: float
    stats: dict[str, float]
    stopped: str | None = None  # why training ended before total_steps (a callback's StopTraining reason)


_PROGRESS_KEYS = {"Loss/D": "D", "Loss/G": "G", "D/real": "D(x)", "D/fake": "D(G(z))",
                  "D/acc_real": "acc_r", "D/acc_fake": "acc_f"}


class Trainer:
    """Runs ``step`` for ``total_steps`` steps, writing everything to ``run``."""

    def __init__(
        self,
        step: GANStep,
        stream: BatchStream,
        run: RunDir,
        config: RunConfig,
        total_steps: int,
        preview: Callable[[Path], None],
        score: Callable[[], float] | None = None,
        evaluate: Callable[[int], float] | None = None,
        probe: Callable[[], None] | None = None,
        callbacks: list[Callback] | None = None,
        distributed: DistContext | None = None,
    ):
        self.dist = distributed or SINGLE  # this process's rank; one process unless launched by torchrun
        self.step_fn = step
        self.stream = stream
        self.run = run
        self.config = config
        self.total_steps = total_steps
        self.preview = preview
        self.score = score
        self.evaluate = evaluate  # scores the generator at this step; its value ranks checkpoints instead of score()
        self.probe = probe  # reports cheap probes of the models (e.g. sample diversity) before each stats flush
        self.callbacks = list(callbacks or []) if self.dist.is_main else []  # callbacks live on rank 0
        self.step = 0
        self.elapsed_before = 0.0  # wall time of earlier sessions of this run
        self._signal: int | None = None
        self._rolled_back = False

    # --- state -----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step,
            "stream_position": self.stream.position,
            "optimizers": {k: o.state_dict() for k, o in self.step_fn.optimizers().items()},
            "noise_rng": self.step_fn.noise.get_state(),
            "noise_device": str(self.step_fn.noise.device.type),
            "torch_rng": torch.get_rng_state(),
            "step_settings": self.step_fn.settings() if hasattr(self.step_fn, "settings") else {},
            # what else a step carries between steps (e.g. CycleGAN's image pools)
            "step_extra": self.step_fn.extra_state() if hasattr(self.step_fn, "extra_state") else {},
            "elapsed": self.elapsed_before + (time.time() - self._t0 if hasattr(self, "_t0") else 0.0),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def save(self, score: float | None = None) -> Path:
        """Write a checkpoint (rank 0; every rank must call this, as it gathers the ranks' RNG states)."""
        if score is None and self.evaluate is None and self.score is not None and self.dist.is_main:
            score = float(self.score())
        rank_rng = self.dist.gather_rng(self.step_fn.noise)  # None in one process
        if not self.dist.is_main:
            return self.run.checkpoints / checkpoint_name(self.step)
        weights = {name: net.state_dict() for name, net in self.step_fn.networks().items()}
        state = self.state()
        if rank_rng is not None:
            state["rank_rng"] = rank_rng
        path = save_checkpoint(self.run.checkpoints, self.step, weights, state, score=score)
        prune_checkpoints(self.run.checkpoints, self.config.keep_checkpoints)
        return path

    def restore(self, path: str | Path) -> None:
        """Load weights, optimiser, RNG and data position from a checkpoint directory."""
        verify_checkpoint(path)
        for name, net in self.step_fn.networks().items():
            weights = load_weights(path, name)
            if weights is None:
                raise CheckpointError(f"checkpoint {path} has no weights for {name}")
            try:
                net.load_state_dict(weights)
            except RuntimeError as e:
                raise CheckpointError(
                    f"checkpoint {path} does not fit this run's {name} ({str(e).splitlines()[0]}); "
                    "was it written by a run with another model or data?"
                ) from None
        state = load_state(path)
        for name, opt in self.step_fn.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        if state.get("noise_device") == self.step_fn.noise.device.type:
            self.step_fn.noise.set_state(state["noise_rng"])
        else:
            print(f"warning: checkpoint was written on {state.get('noise_device')}; exact resume needs the same "
                  "device type, so the noise stream restarts", file=sys.stderr)
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.dist.restore_rng(state, self.step_fn.noise, getattr(self.config, "seed", 0),
                              getattr(self.config, "ddp_noise", "rank"))
        if state.get("step_settings") and hasattr(self.step_fn, "load_settings"):
            self.step_fn.load_settings(state["step_settings"])
        if state.get("step_extra") and hasattr(self.step_fn, "load_extra_state"):
            self.step_fn.load_extra_state(state["step_extra"])
        self.step = int(state["step"])
        self.stream.position = int(state["stream_position"])
        self.elapsed_before = float(state.get("elapsed", 0.0))
        if self.dist.is_main:
            self.run.truncate_stats(self.step)
        for cb in self.callbacks:
            cb.on_restore(self, self.step)

    # --- signals ---------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        if self._signal is not None:  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        self._signal = signum

    def _install_handlers(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return old

    def _notify(self, hook: str, *args: Any) -> None:
        """Run ``hook`` of every callback; under torchrun a `StopTraining` raised on rank 0 stops every rank."""
        if not self.dist.enabled:
            for cb in self.callbacks:
                getattr(cb, hook)(self, *args)
            return
        reason = None
        try:
            for cb in self.callbacks:
                getattr(cb, hook)(self, *args)
        except StopTraining as stop:
            reason = stop.reason
        reason = self.dist.broadcast_object(reason)
        if reason is not None:
            raise StopTraining(reason)

    # --- the loop --------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg = self.config
        self._t0 = time.time()
        last_sample: Path | None = None
        last_checkpoint: Path | None = None
        old_handlers = self._install_handlers()
        main = self.dist.is_main
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not cfg.progress or not main, unit="step",
                   dynamic_ncols=True, file=sys.stderr, mininterval=1.0)
        collector = Collector(self.run.stats_path if main else None, tensorboard_dir=self.run.tensorboard if main
                              else None, reduce=self.dist.reduce_stats if self.dist.enabled else None)
        collector._start -= self.elapsed_before
        self.bar = bar
        stopped: str | None = None
        try:
            with collector:
                for cb in self.callbacks:
                    cb.on_start(self)
                while self.step < self.total_steps:
                    self._signal = self.dist.agree_signal(self._signal)  # all ranks stop at the same step
                    if self._signal is not None:
                        last_checkpoint = self.save()
                        raise Interrupted(self._signal, self.step, last_checkpoint)
                    batches = [self.stream.next() for _ in range(self.step_fn.n_critic)]
                    logged = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == self.total_steps
                    self.step_fn.measure = logged
                    self.step_fn.iteration = self.step
                    self._schedule_lr()
                    self.step_fn(batches)
                    self.step += 1
                    bar.update(1)
                    done = self.step == self.total_steps
                    try:
                        if logged:
                            if self.probe is not None and main:
                                with torch.random.fork_rng(devices=[]):  # probes must not move the training RNG
                                    self.probe()
                            means = collector.flush(self.step)
                            bar.set_postfix({v: f"{means[k]:.3f}" for k, v in _PROGRESS_KEYS.items() if k in means},
                                            refresh=False)
                            self._notify("on_log", self.step, means)
                            if self._rolled_back:  # a callback went back to a checkpoint: carry on from there
                                self._rolled_back = False
                                continue
                        if (self.step % cfg.sample_every == 0 or done) and main:
                            last_sample = self.run.samples / f"step_{self.step:06d}.png"
                            self.preview(last_sample)
                        if self.evaluate is not None and (self.step % cfg.eval_every == 0 or done):
                            value = float("nan")  # evaluated on rank 0 only
                            if main:
                                with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
                                    value = self.evaluate(self.step)
                            last_checkpoint = self.save(score=value)
                            self._notify("on_eval", self.step, value)
                        elif self.step % cfg.checkpoint_every == 0 or done:
                            last_checkpoint = self.save()
                    except StopTraining as stop:
                        stopped = stop.reason
                        ckpt = self.run.latest()
                        if self.dist.broadcast_object(ckpt is None or ckpt.step != self.step):  # rank 0's view
                            last_checkpoint = self.save()
                        break
                if last_checkpoint is None:  # resumed at the end: nothing to do, but say where things are
                    ckpt = self.run.latest()
                    last_checkpoint = ckpt.path if ckpt else None
        finally:
            bar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            for cb in self.callbacks:
                cb.on_end(self)
        return TrainResult(
            run_dir=self.run.path,
            step=self.step,
            last_sample=last_sample,
            last_checkpoint=last_checkpoint,
            seconds=time.time() - self._t0,
            stats=dict(collector.last),
            stopped=stopped,
        )

    def lr_factor(self) -> float:
        """The learning-rate multiplier at this step: 1, or a linear decay to 0 over the last part of the run."""
        cfg = self.config
        if cfg.lr_decay != "linear":
            return 1.0
        start = int(cfg.lr_decay_start * self.total_steps)
        if self.step < start:
            return 1.0
        return max(0.0, 1.0 - (self.step - start) / max(1, self.total_steps - start))

    def _schedule_lr(self) -> None:
        """Set each optimiser group's lr to its ``base_lr`` times the schedule's factor. ``base_lr`` lives in the
        optimiser's state (so checkpoints keep it, and the doctor's remedies change it, not the schedule)."""
        factor = self.lr_factor()
        for opt in self.step_fn.optimizers().values():
            for group in opt.param_groups:
                group.setdefault("base_lr", group["lr"])
                group["lr"] = group["base_lr"] * factor  # factor 1 without decay (a resume may switch it off)

    def rollback(self, path: str | Path) -> None:
        """Go back to a checkpoint mid-run (the doctor's remedy): weights, optimisers, RNG, data position,
        stats after it dropped. Samples written after it stay on disk (they are evidence of what went wrong)."""
        self.restore(path)
        self._rolled_back = True
