"""Training a GAN on table rows (CTGAN, Xu et al. 2019), optionally with differential privacy.

- `TabularStream`: batches of transformed rows and their conditions, a pure function of
  (seed, batch index) so a resumed run replays exactly. By default *training-by-sampling*: each
  row's condition is a category of a discrete column chosen uniformly, the category drawn with
  probability ∝ log(frequency + 1) (rare classes are seen often enough to be learned), and the real
  row drawn among those with that category. With a ``target`` column, a ``target_share`` of the rows
  are conditioned on it instead (what the user will predict gets the most training signal).
  With DP, batches are Poisson samples (each row kept with
  probability q, what the privacy accountant assumes) and each row's condition is its own category.
- `TabularStep`: the critic update(s), then the generator update: WGAN-GP with packing by default,
  plus the conditional cross-entropy that makes G honour its condition. With `DPSGD`, the critic is
  trained by DP-SGD through Opacus (per-sample clipping, Gaussian noise, an RDP accountant) and a
  logistic loss (the gradient penalty's double backward has no per-sample form).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.monitor import report
from ganforge.nets.tabular import TabularDiscriminator, TabularGenerator, activate
from ganforge.train.gan_step import _grad_norm


@dataclass
class Conditions:
    """The condition of each row of a batch: one-hot ``vector`` (B, cond_dim), and which (column, category)."""

    vector: Tensor | None
    column: Tensor | None  # (B,) index into the condition spans
    category: Tensor | None  # (B,) index within that span


class TabularStream:
    """Batches of rows (B, row_dim) with their `Conditions`; ``position`` counts batches."""

    def __init__(self, rows: Tensor, cond_spans: Sequence, batch_size: int, seed: int, device: torch.device,
                 *, poisson: bool = False, target: int | None = None, target_share: float = 0.0):
        n = rows.shape[0]
        if batch_size > n and not poisson:
            raise ConfigError(f"--batch-size {batch_size} is larger than the table ({n} rows); use at most {n}")
        self.rows = rows.to(device)
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.poisson = poisson
        self.sample_rate = batch_size / n
        self.position = 0
        self.cond_spans = list(cond_spans)
        if target is not None and not 0 <= target < len(self.cond_spans):
            raise ConfigError(f"target condition index {target} is not one of the {len(self.cond_spans)} spans")
        if not 0 <= target_share <= 1:
            raise ConfigError(f"target_share must be in [0, 1], got {target_share}")
        self.target, self.target_share = target, target_share
        self.offsets = np.cumsum([0] + [s.end - s.start for s in self.cond_spans])
        self.cond_dim = int(self.offsets[-1])
        rows_np = rows.cpu().numpy()
        self.categories = [rows_np[:, s.start : s.end].argmax(1) for s in self.cond_spans]  # (N,) per column
        self.log_freq, self.log_freq_cdf, self.by_category = [], [], []
        for s, cats in zip(self.cond_spans, self.categories, strict=True):
            counts = np.bincount(cats, minlength=s.end - s.start)
            p = np.log(counts + 1.0) * (counts > 0)
            self.log_freq.append(p / p.sum())
            cdf = np.cumsum(p)
            self.log_freq_cdf.append(cdf / cdf[-1])  # ends at exactly 1: u in [0, 1) never lands past the end
            self.by_category.append([np.flatnonzero(cats == k) for k in range(s.end - s.start)])

    def conditions(self, columns: np.ndarray, categories: np.ndarray) -> Conditions:
        vector = torch.zeros(len(columns), self.cond_dim)
        vector[np.arange(len(columns)), self.offsets[columns] + categories] = 1.0
        return Conditions(vector.to(self.device), torch.as_tensor(columns, device=self.device),
                          torch.as_tensor(categories, device=self.device))

    def next(self) -> tuple[Tensor, Conditions]:
        rng = np.random.default_rng([self.seed, self.position])
        self.position += 1
        n = self.rows.shape[0]
        if self.poisson:
            idx = np.flatnonzero(rng.random(n) < self.sample_rate)
        elif not self.cond_spans:
            idx = rng.choice(n, self.batch_size, replace=False)
        else:
            columns = rng.integers(len(self.cond_spans), size=self.batch_size)
            if self.target is not None and self.target_share > 0:  # the target column, on top of its uniform share
                columns[rng.random(self.batch_size) < self.target_share] = self.target
            # vectorised per column and per category (a Python loop of rng.choice per row cost ~30 ms a batch)
            categories = np.empty(self.batch_size, dtype=np.int64)
            idx = np.empty(self.batch_size, dtype=np.int64)
            for c in np.unique(columns):
                where = np.flatnonzero(columns == c)
                cdf = self.log_freq_cdf[c]
                categories[where] = np.minimum(np.searchsorted(cdf, rng.random(len(where)), side="right"),
                                               len(cdf) - 1)
                for k in np.unique(categories[where]):
                    rows = where[categories[where] == k]
                    members = self.by_category[c][k]
                    idx[rows] = members[rng.integers(len(members), size=len(rows))]
            return self.rows[torch.as_tensor(idx, device=self.device)], self.conditions(columns, categories)
        rows = self.rows[torch.as_tensor(idx, device=self.device)]
        if not self.cond_spans:
            return rows, Conditions(None, None, None)
        columns = rng.integers(len(self.cond_spans), size=len(idx))
        categories = np.array([self.categories[c][i] for c, i in zip(columns, idx, strict=True)], dtype=np.int64)
        return rows, self.conditions(columns, categories)


class DPSGD:
    """DP-SGD for the critic through Opacus: per-sample clipping to ``max_grad_norm``, Gaussian noise of std
    ``noise_multiplier * max_grad_norm``, and an RDP accountant fed the Poisson sampling rate."""

    def __init__(self, discriminator: nn.Module, optimizer: torch.optim.Optimizer, *, noise_multiplier: float,
                 max_grad_norm: float, sample_rate: float, expected_batch_size: int, delta: float,
                 generator: torch.Generator | None = None):
        try:
            from opacus import GradSampleModule
            from opacus.accountants import RDPAccountant
            from opacus.optimizers import DPOptimizer
        except ImportError:
            raise ConfigError("differential privacy needs Opacus: pip install 'ganforge[privacy]'") from None
        self.module = GradSampleModule(discriminator)
        self.optimizer = DPOptimizer(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                                     expected_batch_size=expected_batch_size, loss_reduction="mean",
                                     generator=generator)
        self.accountant = RDPAccountant()
        self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
        self.delta = delta
        self.noise_multiplier, self.max_grad_norm, self.sample_rate = noise_multiplier, max_grad_norm, sample_rate
        self.generator = generator  # the noise's own stream (secretly seeded), saved with the accountant

    def epsilon(self) -> float:
        return float(self.accountant.get_epsilon(self.delta)) if self.accountant.history else 0.0

    def state_dict(self) -> dict:
        state: dict = {"history": [list(h) for h in self.accountant.history]}
        if self.generator is not None:
            state["noise_rng"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.accountant.history = [tuple(h) for h in state.get("history", [])]
        if self.generator is not None and "noise_rng" in state:
            self.generator.set_state(state["noise_rng"])


class TabularStep:
    """Critic update(s) (``n_critic``), then a generator update, on batches of a `TabularStream`."""

    def __init__(self, generator: TabularGenerator, discriminator: TabularDiscriminator, spans: Sequence,
                 cond_spans: Sequence, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, *,
                 noise: torch.Generator, n_critic: int = 1, gp_weight: float = 10.0, tau: float = 0.2,
                 moment_weight: float = 0.0, moment_target: tuple[Tensor, Tensor] | None = None,
                 dp: DPSGD | None = None,
                 fake_conditions: Callable[[int], Conditions] | None = None, fake_batch: int | None = None):
        self.generator, self.discriminator = generator, discriminator
        self.spans, self.cond_spans = list(spans), list(cond_spans)
        self.opt_g, self.opt_d = opt_g, opt_d
        self.noise = noise
        self.n_critic = n_critic
        self.gp_weight = gp_weight
        self.tau = tau
        self.moment_weight = moment_weight
        # with DP, the generator matches released moments (mean, covariance), never the real batch's
        self.moment_target = moment_target
        if dp is not None and moment_weight and moment_target is None:
            raise ConfigError("moment_weight with DP needs moments released with DP (moment_target): the real "
                              "batch in the generator's update is not covered by DP-SGD")
        self.dp = dp
        # DP: fake rows get conditions drawn from released frequencies, a fixed number of them, so that neither
        # the real batch's categories nor its (Poisson) size reaches the generator or the fake half of the critic
        self.fake_conditions, self.fake_batch = fake_conditions, fake_batch
        if dp is not None and cond_spans and fake_conditions is None:
            raise ConfigError("a DP critic with conditions needs fake_conditions drawn from released frequencies")
        self.iteration = 0
        self.measure = True

    def _fake(self, cond: Conditions, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        z = torch.randn(n, self.generator.z_dim, generator=self.noise, device=device)
        raw = self.generator(z, cond.vector)
        return raw, activate(raw, self.spans, tau=self.tau, generator=self.noise)

    def _cond_loss(self, raw: Tensor, cond: Conditions) -> Tensor:
        """Cross-entropy of G's scores on each row's conditioned column against the asked-for category."""
        if cond.column is None:
            return raw.new_zeros(())
        total = raw.new_zeros(())
        for c, span in enumerate(self.cond_spans):
            rows = cond.column == c
            if rows.any():
                total = total + F.cross_entropy(raw[rows, span.start : span.end], cond.category[rows],
                                                reduction="sum")
        return total / raw.shape[0]

    @staticmethod
    def _moment_loss(real: Tensor | tuple[Tensor, Tensor], fake: Tensor) -> Tensor:
        """Squared distance between the batches' means plus between their covariance matrices (Frobenius) in the
        encoded space: the covariance of two columns' scalars is their correlation, of two one-hots their
        contingency table, of a mode one-hot and a category which mode each category uses. The critic sees
        these only through its features; matching them directly is table-GAN's "information loss" (Park et al.
        2018) taken to second order."""
        mean_f = fake.mean(0)
        cov_f = (fake - mean_f).T @ (fake - mean_f) / fake.shape[0]
        if isinstance(real, tuple):  # (mean, covariance) given, e.g. released with DP
            mean_r, cov_r = real
        else:
            mean_r = real.mean(0)
            cov_r = (real - mean_r).T @ (real - mean_r) / real.shape[0]
        return (mean_f - mean_r).pow(2).sum() + (cov_f - cov_r).pow(2).sum()

    def _gradient_penalty(self, real: Tensor, fake: Tensor, cond: Tensor | None) -> Tensor:
        """WGAN-GP on interpolates, one mixing weight and one gradient norm per pack (as CTGAN)."""
        d = self.discriminator
        pac = d.pac
        alpha = torch.rand(real.shape[0] // pac, 1, generator=self.noise, device=real.device).repeat_interleave(pac, 0)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(d.pack(mixed, cond)).sum(), mixed, create_graph=True)
        return (grad.reshape(-1, pac * real.shape[1]).norm(2, dim=1) - 1).pow(2).mean()

    def __call__(self, batches: Sequence[tuple[Tensor, Conditions]]) -> dict[str, Tensor]:
        G, D = self.generator, self.discriminator  # noqa: N806
        critic = self.dp.module if self.dp is not None else D
        opt_d = self.dp.optimizer if self.dp is not None else self.opt_d
        D.requires_grad_(True)
        for real, cond in batches:
            n = real.shape[0]
            fake_cond, m = cond, n
            if self.dp is not None:
                m = self.fake_batch or n
                fake_cond = self.fake_conditions(m) if self.fake_conditions is not None else Conditions(
                    None, None, None)
            _, fake = self._fake(fake_cond, m, real.device)
            if self.dp is None:
                real_scores = critic(D.pack(real, cond.vector))
                fake_scores = critic(D.pack(fake.detach(), cond.vector))
                loss_d = fake_scores.mean() - real_scores.mean()  # the Wasserstein critic
                if self.gp_weight:
                    gp = self._gradient_penalty(real, fake, cond.vector)
                    report("Loss/D/gp", gp.detach())
                    loss_d = loss_d + self.gp_weight * gp
            else:  # one forward over real and fake rows: every per-sample gradient is clipped, then noised
                scores = critic(D.pack(torch.cat([real, fake.detach()]), None if cond.vector is None
                                       else torch.cat([cond.vector, fake_cond.vector])))
                real_scores, fake_scores = scores[:n], scores[n:]
                loss_d = (F.softplus(-real_scores).sum() + F.softplus(fake_scores).sum()) / max(1, n + m)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if self.measure and self.dp is None:
                report("Grad/D", _grad_norm(D))
            opt_d.step()
        # generator, with fresh noise, on the last batch's conditions
        D.requires_grad_(False)
        if self.dp is not None:  # G's pass through D is not a DP-SGD step: no per-sample gradients
            self.dp.module.disable_hooks()
            cond, n = fake_cond, m  # the conditions G learns from are drawn, not the real batch's
        raw, fake = self._fake(cond, n, real.device)
        fake_g = D(D.pack(fake, cond.vector))
        loss_adv = -fake_g.mean() if self.dp is None else F.softplus(-fake_g).mean()
        loss_cond = self._cond_loss(raw, cond)
        loss_g = loss_adv + loss_cond
        if self.moment_weight:
            loss_moment = self._moment_loss(self.moment_target if self.moment_target is not None else real, fake)
            loss_g = loss_g + self.moment_weight * loss_moment
            report("Loss/G/moment", loss_moment.detach())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.measure:
            report("Grad/G", _grad_norm(G))
        self.opt_g.step()
        D.requires_grad_(True)
        if self.dp is not None:
            self.dp.module.enable_hooks()
        with torch.no_grad():
            real_scores, fake_scores = real_scores.detach(), fake_scores.detach()
            report("Loss/D", loss_d.detach())
            report("Loss/G", loss_g.detach())
            report("Loss/G/cond", loss_cond.detach())
            report("D/real", torch.sigmoid(real_scores))
            report("D/fake", torch.sigmoid(fake_scores))
            report("D/acc_real", (real_scores > 0).float())
            report("D/acc_fake", (fake_scores < 0).float())
            report("D/margin", real_scores.mean() - fake_scores.mean())
            if self.dp is not None:
                report("Privacy/epsilon", self.dp.epsilon())
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    # --- what the trainer saves and restores ---------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        return {"accountant": self.dp.state_dict()} if self.dp is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.dp is not None and "accountant" in state:
            self.dp.load_state_dict(state["accountant"])
