"""One training step of an (optionally conditional) GAN: D update(s), then G update.

Each phase computes its loss with the objective it was given (a `GANLoss`, see
`ganforge.losses`), calls backward and steps its own optimiser. Statistics go through
`ganforge.monitor.report` and stay on the device until the collector flushes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.losses import (
    GANLoss,
    decision_threshold,
    gradient_penalty,
    r1_penalty,
    real_probability,
    smooth_real_labels,
)
from ganforge.monitor import report
from ganforge.train.augment import diff_augment, parse_policy
from ganforge.train.d_stabilisers import annealed_std
from ganforge.train.ema import EMA

Batch = tuple[Tensor, Tensor | None]  # (images in [-1, 1], labels or None)


def report_d_stats(loss: GANLoss, real_logits: Tensor, fake_logits: Tensor, prefix: str = "D") -> None:
    """The discriminator's view the doctor reads, under ``prefix``: mean D(x) and D(G(z)) as probabilities,
    accuracy on real and on fake separately (at the loss's decision threshold), and the logit margin."""
    threshold = decision_threshold(loss)
    report(f"{prefix}/real", real_probability(loss, real_logits))
    report(f"{prefix}/fake", real_probability(loss, fake_logits))
    report(f"{prefix}/acc_real", (real_logits > threshold).float())
    report(f"{prefix}/acc_fake", (fake_logits < threshold).float())
    report(f"{prefix}/margin", real_logits.mean() - fake_logits.mean())


def _grad_norm(module: nn.Module) -> Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class GANStep:
    """D update(s) (``n_critic`` of them, one real batch each), then G update(s) (``g_steps``).

    The fake batch of the last D update is reused for the G update (as in the reference
    DCGAN recipe), so G runs forward once per step. D's parameters are frozen during the
    G phase, so no gradient is computed for weights that will not be stepped. Further G updates
    (``g_steps`` > 1, the DCGAN-TensorFlow recipe's "run g_optim twice so that d_loss does not
    go to zero") each draw fresh noise against the same D.

    Stabilisers that act on what D sees, all applied identically to real and generated data
    and in both phases (so G is trained through them): DiffAugment (``augment``), instance
    noise (``instance_noise``: Gaussian noise of std σ, constant, or annealed linearly to 0 over
    ``instance_noise_steps`` steps from ``instance_noise_start``; the trainer sets ``iteration``,
    and the schedule depends on step numbers only, so a resumed or extended run is unchanged), and
    packing (``pack``: PacGAN, D judges ``pack`` samples at once, concatenated along channels; D
    must be built for ``pack`` times the channels). One-sided label smoothing changes D's loss.
    The tunable ones (everything but ``pack``) may be changed during a run by the doctor's
    automatic remedies; `settings()` gives them to the checkpoint so a resumed run continues
    with them.

    The fast path and the distributed path (`ganforge.train.fast`, `ganforge.train.distributed`) set
    attributes after construction: ``g_train``/``d_train`` are what the phases call (the networks
    themselves by default; their DDP wrappers or compiled forms when set), ``d_penalty`` what the
    gradient penalties call (eager: they need a double backward), ``d_frozen`` what the G phase
    calls (under DDP the plain D: it is frozen there, so there is no gradient to synchronise),
    ``autocast_dtype`` the autocast precision of the forward passes (None: fp32),
    ``scaler_d``/``scaler_g`` fp16 GradScalers, and
    ``noise_shard`` = (rank, world size) to draw the global batch's noise and keep this rank's slice.
    ``generator`` and ``discriminator`` stay the plain networks: they are what is saved and sampled.
    With all of these at their defaults the step runs the plain fp32 code, bit for bit.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        noise: torch.Generator,
        n_critic: int = 1,
        g_steps: int = 1,
        gp_weight: float = 0.0,
        r1_weight: float = 0.0,
        ema: EMA | None = None,
        augment: str | tuple[str, ...] = (),
        instance_noise: float = 0.0,
        instance_noise_steps: int = 0,
        label_smoothing: float = 0.0,
        pack: int = 1,
    ):
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.opt_g = opt_g
        self.opt_d = opt_d
        self.noise = noise
        self.n_critic = n_critic
        if g_steps < 1:
            raise ConfigError(f"--g-steps must be >= 1, got {g_steps}")
        self.g_steps = g_steps
        self.gp_weight = gp_weight
        self.r1_weight = r1_weight
        self.ema = ema
        if pack < 1:
            raise ConfigError(f"--pack must be >= 1, got {pack}")
        self.pack = pack
        self.base_loss = loss
        self.augment = parse_policy(augment)
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = int(instance_noise_steps)
        self.instance_noise_start = 0
        self.label_smoothing = float(label_smoothing)
        self.iteration = 0  # the number of steps done before this one, set by the trainer
        self.measure = True  # the trainer turns the costlier statistics on only on logged steps
        # fast and distributed paths (see the class docstring); the defaults are the plain fp32 step
        self.g_train: nn.Module = generator
        self.d_train: nn.Module = discriminator
        self.d_penalty: nn.Module | None = None
        self.d_frozen: nn.Module | None = None
        self.autocast_device = "cuda"
        self.autocast_dtype: torch.dtype | None = None
        self.scaler_d: torch.amp.GradScaler | None = None
        self.scaler_g: torch.amp.GradScaler | None = None
        self.noise_shard: tuple[int, int] | None = None

    # --- stabilisers that may change during a run ------------------------------------------------------
    TUNABLE = ("augment", "instance_noise", "instance_noise_steps", "instance_noise_start", "label_smoothing",
               "r1_weight", "gp_weight")

    @property
    def label_smoothing(self) -> float:
        return self._label_smoothing

    @label_smoothing.setter
    def label_smoothing(self, value: float) -> None:
        self.loss = smooth_real_labels(self.base_loss, value)  # refuses losses without targets
        self._label_smoothing = float(value)

    def settings(self) -> dict:
        """The tunable stabilisers' current values (JSON-safe), for checkpoints and the doctor's log."""
        return {"augment": list(self.augment), "instance_noise": self.instance_noise,
                "instance_noise_steps": self.instance_noise_steps, "instance_noise_start": self.instance_noise_start,
                "label_smoothing": self.label_smoothing, "r1_weight": self.r1_weight, "gp_weight": self.gp_weight}

    def load_settings(self, settings: dict) -> None:
        unknown = set(settings) - set(self.TUNABLE)
        if unknown:
            raise ConfigError(f"unknown step setting(s) {', '.join(sorted(unknown))}")
        for key, value in settings.items():
            if key == "augment":
                value = parse_policy(value)
            elif key in ("instance_noise_steps", "instance_noise_start"):
                value = int(value)
            else:
                value = float(value)
            setattr(self, key, value)

    def noise_std(self) -> float:
        """The instance noise's std at this step."""
        return annealed_std(self.instance_noise, self.instance_noise_steps, self.instance_noise_start, self.iteration)

    def d_input(self, x: Tensor) -> Tensor:
        """What D sees of a batch: augmented, noised and packed as configured."""
        if self.augment:
            x = diff_augment(x, self.augment)
        sigma = self.noise_std()
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
        if self.pack > 1:
            b = x.shape[0]
            if b % self.pack:
                raise ConfigError(f"--pack {self.pack} needs a batch size divisible by it, got a batch of {b}")
            # (B, C, ...) -> (B/pack, pack*C, ...): consecutive samples side by side along channels
            x = x.reshape(b // self.pack, self.pack * x.shape[1], *x.shape[2:])
        return x

    def d_forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.d_train(self.d_input(x), labels)

    def _d_forward_penalty(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        module = self.d_train if self.d_penalty is None else self.d_penalty
        return module(self.d_input(x), labels)

    def _d_forward_g_phase(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        module = self.d_train if self.d_frozen is None else self.d_frozen
        return module(self.d_input(x), labels)

    def sample_z(self, n: int, device: torch.device) -> Tensor:
        if self.noise_shard is not None:  # every rank draws the global batch and keeps its own slice
            rank, world = self.noise_shard
            z = torch.randn(n * world, self.generator.z_dim, device=device, generator=self.noise)
            return z[rank * n : (rank + 1) * n]
        return torch.randn(n, self.generator.z_dim, device=device, generator=self.noise)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.autocast_device, dtype=self.autocast_dtype)

    def _full_precision(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.autocast_device, enabled=False)

    def _update(self, loss: Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                module: nn.Module, stat: str) -> None:
        """zero_grad, backward, gradient norm on measured steps, optimiser step (through the fp16 scaler)."""
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            if self.measure:
                report(stat, _grad_norm(module))
            opt.step()
            return
        scaler.scale(loss).backward()
        if self.measure:
            scaler.unscale_(opt)  # the norm of the true gradients, not of the scaled ones
            report(stat, _grad_norm(module))
        scaler.step(opt)  # skipped when the gradients overflowed
        scaler.update()

    def __call__(self, batches: Sequence[Batch]) -> dict[str, Tensor]:
        """Run the phases on ``n_critic`` real batches; return the step's losses (device tensors)."""
        G, D = self.generator, self.discriminator  # noqa: N806
        # 1. discriminator phase(s)
        D.requires_grad_(True)
        for real, labels in batches:
            z = self.sample_z(real.shape[0], real.device)
            with self._autocast():
                fake = self.g_train(z, labels)  # (B, *shape), graph kept for the G phase
                real_logits = self.d_forward(real, labels)
                fake_logits = self.d_forward(fake.detach(), labels)
            real_logits, fake_logits = real_logits.float(), fake_logits.float()  # no-ops in fp32
            loss_d = self.loss.discriminator(real_logits, fake_logits)
            if self.gp_weight or self.r1_weight:
                with self._full_precision():
                    if self.gp_weight:
                        gp = gradient_penalty(self._d_forward_penalty, real, fake.float(), labels=labels)
                        report("Loss/D/gp", gp)
                        loss_d = loss_d + self.gp_weight * gp
                    if self.r1_weight:
                        r1 = r1_penalty(self._d_forward_penalty, real, labels=labels)
                        report("Loss/D/r1", r1)
                        loss_d = loss_d + 0.5 * self.r1_weight * r1
            self._update(loss_d, self.opt_d, self.scaler_d, D, "Grad/D")
        # 2. generator phase, on the last fake batch, against the updated D
        D.requires_grad_(False)
        with self._autocast():
            fake_logits_g = self._d_forward_g_phase(fake, labels)
        loss_g = self.loss.generator(fake_logits_g.float())
        self._update(loss_g, self.opt_g, self.scaler_g, G, "Grad/G")
        if self.ema is not None:
            self.ema.update(G)
        for _ in range(self.g_steps - 1):  # further G updates on fresh noise, against the same D
            with self._autocast():
                fake_more = self.g_train(self.sample_z(fake.shape[0], fake.device), labels)
                loss_g = self.loss.generator(self._d_forward_g_phase(fake_more, labels).float())
            self._update(loss_g, self.opt_g, self.scaler_g, G, "Grad/G")
            if self.ema is not None:
                self.ema.update(G)
        # 3. statistics of the last D phase: D(x), D(G(z)) as probabilities, accuracy per side, margin
        with torch.no_grad():
            real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
            report("Loss/D", loss_d)
            report("Loss/G", loss_g)
            report_d_stats(self.base_loss, real_logits, fake_logits)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    # --- what the trainer saves and restores -------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            nets["generator_ema"] = self.ema.shadow
        return nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        """The fp16 gradient scalers' state (empty without them), so a resumed run keeps its loss scale."""
        scalers = {name: s.state_dict() for name, s in (("d", self.scaler_d), ("g", self.scaler_g)) if s is not None}
        return {"scalers": scalers} if scalers else {}

    def load_extra_state(self, state: dict) -> None:
        for name, scaler in (("d", self.scaler_d), ("g", self.scaler_g)):
            if scaler is not None and name in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][name])

    def sampling_generator(self) -> nn.Module:
        """The network to draw samples from: the EMA copy when there is one."""
        return self.ema.shadow if self.ema is not None else self.generator
