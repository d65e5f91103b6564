"""Discriminator stabilisers shared by the training steps that are not `GANStep`: instance noise and R1.

`DiscriminatorStabilisers` is a mixin for a step with one or more discriminators (the video steps). It
gives the step

- instance noise (Sønderby et al. 2017; Arjovsky & Bottou 2017): Gaussian noise of std σ added to
  everything a discriminator sees, real and generated, in both phases (so the generator is trained
  through it). Constant, or annealed linearly to 0 over ``instance_noise_steps`` steps from
  ``instance_noise_start``; the schedule depends on step numbers only, so a resumed run is unchanged;
- the R1 penalty (Mescheder et al. 2018): γ/2 · E‖∇D(x)‖² on real inputs (noised as D sees them);
- ``settings()`` / ``load_settings()``: the tunable values, which the trainer keeps in checkpoints and
  the doctor's ``--auto-remedy`` changes during a run (it reads ``TUNABLE`` to know what a step has).

`GANStep` keeps its own, larger set (DiffAugment, label smoothing, WGAN-GP, packing) and the same
instance-noise schedule.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ganforge.errors import ConfigError
from ganforge.losses import r1_penalty
from ganforge.monitor import report


def annealed_std(sigma: float, steps: int, start: int, iteration: int) -> float:
    """Instance noise std at ``iteration``: ``sigma`` from ``start``, linearly to 0 over ``steps`` (0: constant)."""
    if sigma <= 0:
        return 0.0
    if steps <= 0:
        return sigma
    done = (iteration - start) / steps
    return sigma * min(1.0, max(0.0, 1.0 - done))


class DiscriminatorStabilisers:
    """Instance noise and R1 for a step; call `_init_stabilisers` from ``__init__``."""

    TUNABLE: tuple[str, ...] = ("instance_noise", "instance_noise_steps", "instance_noise_start", "r1_weight")
    _INTEGER = ("instance_noise_steps", "instance_noise_start")

    iteration: int  # the number of steps done before this one, set by the trainer

    def _init_stabilisers(self, instance_noise: float = 0.0, instance_noise_steps: int = 0,
                          r1_weight: float = 0.0) -> None:
        if instance_noise < 0:
            raise ConfigError(f"--instance-noise is a standard deviation >= 0, got {instance_noise}")
        if instance_noise_steps < 0:
            raise ConfigError(f"--instance-noise-steps must be >= 0, got {instance_noise_steps}")
        if r1_weight < 0:
            raise ConfigError(f"--r1-weight must be >= 0, got {r1_weight}")
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = int(instance_noise_steps)
        self.instance_noise_start = 0
        self.r1_weight = float(r1_weight)

    def settings(self) -> dict:
        """The tunable stabilisers' current values (JSON-safe), for checkpoints and the doctor's log."""
        return {key: getattr(self, key) for key in self.TUNABLE}

    def load_settings(self, settings: dict) -> None:
        """Set tunable values (from a checkpoint or the doctor); unknown names are an error."""
        unknown = set(settings) - set(self.TUNABLE)
        if unknown:
            raise ConfigError(f"unknown step setting(s) {', '.join(sorted(unknown))} for {type(self).__name__} "
                              f"(it has {', '.join(self.TUNABLE)})")
        for key, value in settings.items():
            setattr(self, key, int(value) if key in self._INTEGER else float(value))

    def noise_std(self) -> float:
        """The instance noise's std at this step."""
        return annealed_std(self.instance_noise, self.instance_noise_steps, self.instance_noise_start, self.iteration)

    def noised(self, x: Tensor) -> Tensor:
        """``x`` as a discriminator sees it: with this step's instance noise (unchanged without)."""
        sigma = self.noise_std()
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def r1_term(self, discriminator: Callable[[Tensor], Tensor], real: Tensor, stat: str = "Loss/D/r1") -> Tensor:
        """γ/2 · R1 of ``discriminator`` on ``real`` (reported under ``stat``); 0 when γ = 0."""
        if not self.r1_weight:
            return real.new_zeros(())
        r1 = r1_penalty(lambda x: discriminator(self.noised(x)), real)
        report(stat, r1.detach())
        return 0.5 * self.r1_weight * r1
