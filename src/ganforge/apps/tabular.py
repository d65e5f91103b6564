"""`TabularGAN`: synthetic tables that keep the statistics of a real one, optionally with differential privacy.

    import pandas as pd
    from ganforge import TabularGAN
    from ganforge.apps.tabular import DPConfig

    model = TabularGAN(epochs=300).fit(df, discrete_columns=["Status"])
    synthetic = model.sample(1000, seed=0)                       # same columns, dtypes and categories
    bad_only = model.sample(200, conditions={"Status": "bad"})
    model.save("models/credit"); model = TabularGAN.load("models/credit")   # JSON + safetensors, no pickle

    private = TabularGAN(dp=DPConfig(epsilon=5.0)).fit(df)      # DP-SGD critic; (ε, δ) kept with the model

How it works: `ganforge.data.tabular.TabularTransformer` encodes rows (mode-specific normalisation of
numeric columns, exact point masses such as the zeros of zero-inflated columns, missing-value
indicators, one-hot categories; identifiers are never learned); `ganforge.nets.tabular` is CTGAN's
residual generator and packed critic; `ganforge.train.tabular_step` trains them with WGAN-GP,
training-by-sampling and the conditional loss, inside ganforge's own `Trainer` (stats, doctor,
checkpoints, resume, progress bar).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.errors import ConfigError

MODEL_FILE = "tabular_gan.json"
WEIGHTS_FILE = "generator.safetensors"
FORMAT = 1
POOL_FACTORS = (3, 6, 12)  # sample(match_rates=True) keeps n rows of a pool this many times larger (the next if
# the categories cannot all be matched to within one row)
SELECT_CHUNK = 20_000  # ... chosen this many at a time
TARGET_SHARE = 0.05  # DP with declared target categories: this share of epsilon buys the target's frequencies


@dataclass
class DPConfig:
    """Differential privacy of a `TabularGAN` fit: the whole fit is (``epsilon``, ``delta``)-DP.

    The critic is trained with DP-SGD (per-sample gradient clipping to ``max_grad_norm``, Gaussian noise
    calibrated so that the planned number of steps spends the budget, Poisson sampling; the generator only
    sees the critic, so it is post-processing). Preprocessing statistics are either declared by you
    (``bounds`` {column: (low, high)} and ``categories`` {column: [values]}: public, free) or estimated with
    DP mechanisms from ``preprocessing_share`` of ε (and half of δ). ``delta`` defaults to 1 / n^1.1.
    Without ``steps`` given to `TabularGAN`, a DP fit runs at most ``max_steps``: with the budget fixed, every
    step adds noise to all of them, and per-sample gradients make each step ~10x dearer on a CPU.
    ``histograms`` buys each numeric column's shape, also from that share (for a column without bounds, noisy
    counts in fine public bins released with its range; with declared bounds, a Laplace histogram between
    them), so the generator's scalar is about uniform; without them a fully declared table spends nothing
    on preprocessing.
    ``moment_share`` of ε (and a quarter of δ) releases the mean and covariance of the encoded rows with the
    Gaussian mechanism (`ganforge.privacy.release_moments`), which the generator then matches as it does the
    real batch's without DP: the critic, noised by DP-SGD, passes on little of how columns relate. 0 turns
    it off, leaving the critic that share. The released moments are then denoised (`denoise_moments`,
    post-processing, free): one-hot blocks made consistent, and, with ``moment_threshold`` > 0, covariances
    between columns soft-thresholded at that many noise stds. Off by default: at 2 it cost TSTR AUC (credit
    0.734 → 0.622, colon 0.905 → 0.609 at ε = 5, one seed each) and did not lift colon's pair scores.
    ``noise_seed`` seeds every DP noise draw (preprocessing, target, moments, DP-SGD). By default a secret one
    is drawn from the operating system (`secrets`) and kept only in the run directory's ``config.json`` (a
    resumed fit needs the same noise, or it would release everything twice), never in the saved model:
    anyone who knows the seed can subtract the noise. Give one only for reproducible experiments.
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    preprocessing_share: float = 0.25
    max_steps: int = 600
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, list] = field(default_factory=dict)
    histograms: bool = True
    moment_share: float = 0.25
    moment_threshold: float = 0.0
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"epsilon must be a positive number (e.g. 1 or 5), got {self.epsilon!r}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ConfigError(f"delta must be in (0, 1), e.g. 1e-5; got {self.delta!r}")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be a positive number of steps, got {self.max_steps}")
        if self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be positive, got {self.max_grad_norm}")
        if not 0 < self.preprocessing_share < 1:
            raise ConfigError(f"preprocessing_share must be in (0, 1), got {self.preprocessing_share}")
        if not (math.isfinite(self.moment_threshold) and self.moment_threshold >= 0):
            raise ConfigError(f"moment_threshold is a number of noise stds >= 0 (0, off, by default), got "
                              f"{self.moment_threshold!r}")
        if not 0 <= self.moment_share < 1 or self.preprocessing_share + self.moment_share >= 0.95:
            raise ConfigError(f"moment_share must be in [0, 1) and leave the critic at least 5% of epsilon with "
                              f"preprocessing_share {self.preprocessing_share}; got {self.moment_share}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["bounds"] = {k: list(v) for k, v in self.bounds.items()}
        d.pop("noise_seed")  # secret: saved models and run records never hold it (see _dp_noise_seed)
        return d


HYPERPARAMETERS = ("epochs", "steps", "min_steps", "batch_size", "z_dim", "generator_dims", "discriminator_dims", "pac",
                   "dropout", "lr_g", "lr_d", "weight_decay", "n_critic", "gp_weight", "max_modes", "numeric_encoding",
                   "quantile_bins", "moment_weight", "target_share",
                   "seed", "device", "threads", "progress", "doctor", "log_every", "checkpoint_every")


class TabularGAN:
    """A conditional tabular GAN with CTGAN's architecture (and CTGAN's defaults where not said otherwise).

    Every hyperparameter is a public attribute of the same name. ``steps`` overrides ``epochs``; without it a
    fit runs ``epochs`` passes but at least ``min_steps`` steps. ``target_share`` is the share of training rows
    conditioned on ``fit``'s ``target`` column (when given and discrete), on top of its uniform share.

    Two defaults differ from CTGAN's, each measured on the three benchmark tables (docs/tabular.md):
    ``numeric_encoding="quantile"`` (each numeric column is one scalar through its empirical CDF, point masses
    apart; "gmm" is CTGAN's mode-specific normalisation) and ``moment_weight`` (1.0: the generator also
    matches the mean and covariance of the encoded real batch, which carries the columns' correlations and
    category rates; with DP, the real batch may only reach the generator through DP-SGD, so it matches the
    moments of the whole table released with ``DPConfig.moment_share`` of ε instead).
    """

    def __init__(self, *, epochs: float = 300, steps: int | None = None, min_steps: int = 3000, batch_size: int = 500,
                 z_dim: int = 128,
                 generator_dims: tuple[int, ...] = (256, 256), discriminator_dims: tuple[int, ...] = (256, 256),
                 pac: int = 10, dropout: float = 0.5, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 weight_decay: float = 1e-6, n_critic: int = 1, gp_weight: float = 10.0, max_modes: int = 10,
                 numeric_encoding: str = "quantile", quantile_bins: int = 1, moment_weight: float | None = None,
                 target_share: float = 0.5,
                 seed: int = 0, dp: DPConfig | None = None, device: str = "cpu", threads: int = 0,
                 progress: bool = True, doctor: bool = True, log_every: int = 50, checkpoint_every: int = 1000):
        self.epochs, self.steps, self.batch_size, self.z_dim = epochs, steps, batch_size, z_dim
        self.min_steps = min_steps
        self.generator_dims, self.discriminator_dims = tuple(generator_dims), tuple(discriminator_dims)
        self.pac, self.dropout, self.lr_g, self.lr_d = pac, dropout, lr_g, lr_d
        self.weight_decay, self.n_critic, self.gp_weight, self.max_modes = weight_decay, n_critic, gp_weight, max_modes
        self.seed, self.dp, self.device, self.threads = seed, dp, device, threads
        self.target_share = target_share
        self.numeric_encoding, self.quantile_bins = numeric_encoding, quantile_bins
        self.moment_weight = moment_weight
        self.progress, self.doctor = progress, doctor
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        if dp is not None and not isinstance(dp, DPConfig):
            raise ConfigError("dp must be a DPConfig(epsilon=..., delta=...)")
        if moment_weight is None:  # on by default; with DP, against moments released with DPConfig.moment_share
            moment_weight = self.moment_weight = 1.0 if dp is None or dp.moment_share > 0 else 0.0
        if dp is not None and moment_weight and not dp.moment_share:
            raise ConfigError("moment_weight with dp matches moments released with DPConfig.moment_share of epsilon, "
                              "and moment_share is 0: give moment_share > 0, or moment_weight=0")
        if moment_weight < 0:
            raise ConfigError(f"moment_weight must be 0 or positive, got {moment_weight!r}")
        from ganforge.data.tabular import NUMERIC_ENCODINGS

        if numeric_encoding not in NUMERIC_ENCODINGS:
            raise ConfigError(f"numeric_encoding must be one of {', '.join(NUMERIC_ENCODINGS)}, got "
                              f"{numeric_encoding!r}")
        if not 0 <= target_share <= 1:
            raise ConfigError(f"target_share must be in [0, 1] (the share of training rows conditioned on the "
                              f"target), got {target_share!r}")
        if batch_size < 1 or (steps is None and not epochs > 0) or (steps is not None and steps < 1):
            raise ConfigError("batch_size, and epochs or steps, must be positive")
        self.transformer = None
        self.target: Any = None
        self.generator = None
        self.privacy: dict[str, Any] | None = None
        self.condition_frequencies: list[list[float]] = []
        self.category_rates: list[list] | None = None  # [[column, rates incl. missing last], ...]; None with DP
        self.notes: list[str] = []
        self.run_dir: Path | None = None

    # --- fitting -------------------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        h = {k: getattr(self, k) for k in HYPERPARAMETERS}
        h["generator_dims"], h["discriminator_dims"] = list(self.generator_dims), list(self.discriminator_dims)
        h["dp"] = self.dp.to_dict() if self.dp is not None else None
        return h

    def fit(self, df: Any, discrete_columns: list[str] | None = None, *, target: Any = None,
            column_types: dict[str, str] | None = None, out: str | os.PathLike | None = None,
            resume: str | None = None) -> TabularGAN:
        """Learn ``df`` (a pandas DataFrame); returns self. ``out`` keeps the training run (stats, doctor,
        checkpoints) so ``resume="auto"`` can continue it; without it the run lives in a temporary folder.

        ``target`` names the column you will predict from the synthetic table. When it is discrete, training
        conditions ``target_share`` of the rows on it, and `sample` draws every row's target at its real
        frequency and generates the rest of the row for it: the target's rate is kept and its relation to the
        other columns is the one the generator learned explicitly (on ISLR's Default table, train-synthetic-
        test-real AUC 0.70 without, 0.89 with). A numeric target is accepted and ignored. With DP, the model
        is conditioned on the target alone, and the frequencies it is trained and sampled with are released
        ones (the noisy counts its categories were released with, or a Laplace histogram).
        """
        from ganforge.data.tabular import TabularTransformer

        import_pandas()
        check_frame(df)
        if target is not None and target not in df.columns:
            raise ConfigError(f"target {target!r} is not a column; columns are {', '.join(map(str, df.columns))}")
        dp = self.dp
        delta = None
        if dp is not None:
            delta = dp.delta if dp.delta is not None else 1.0 / len(df) ** 1.1
        transformer = TabularTransformer(column_types=column_types, discrete_columns=discrete_columns,
                                         max_modes=self.max_modes, numeric_encoding=self.numeric_encoding,
                                         quantile_bins=self.quantile_bins,
                                         seed=self.seed)
        self._noise_seed = None if dp is None else self._dp_noise_seed(dp, out, resume)
        if dp is None:
            transformer.fit(df)
        else:
            transformer.fit(df, bounds=dp.bounds, categories=dp.categories,
                            dp=(dp.epsilon * dp.preprocessing_share, delta / 2), dp_histograms=dp.histograms,
                            noise_seed=self._noise_seed)
        self.transformer = transformer
        self.notes = list(transformer.notes)
        discrete_target = target is not None and any(s.column == target for s in transformer.condition_spans())
        self.target = target if discrete_target else None
        self._target_ledger: list[dict] = []
        self._dp_target_p: np.ndarray | None = None
        if dp is not None and discrete_target:
            self._dp_target_p = self._dp_target_frequencies(df, target, dp)
        if target is not None and not discrete_target:
            self.notes.append(f"target {target!r} is not discrete" + (" (or none of its categories could be "
                              "released with DP)" if dp is not None else "") + ": sampling is not conditioned on it")
        for note in self.notes:
            print(f"tabular: {note}", file=sys.stderr)
        encoded = transformer.transform(df)
        # the real rate of every category (and of missing), for `sample` to match; a DP model keeps only the
        # noisy counts its categories were released with, and rates read off the released moments (`_moment_rates`)
        self.category_rates = None if dp is not None else [
            [column, list(map(float, np.bincount(code, minlength=len(transformer.category_values(column)) + 1)
                              / len(code)))]
            for column, code in transformer.category_codes(encoded).items()]
        rows = torch.from_numpy(encoded).float()
        if out is None:
            with tempfile.TemporaryDirectory(prefix="ganforge-tabular-") as tmp:
                self._train(rows, Path(tmp) / "run", None, delta)
            self.run_dir = None
        else:
            self._train(rows, Path(out), resume, delta)
            self.run_dir = Path(out)
        return self

    @staticmethod
    def _dp_noise_seed(dp: DPConfig, out: str | os.PathLike | None, resume: str | None) -> int:
        """The seed of all DP noise: the user's, else the one a resumed run was started with (its ``config.json``),
        else a fresh secret from the operating system."""
        if dp.noise_seed is not None:
            return int(dp.noise_seed)
        if out is not None and resume:
            from ganforge.train.rundir import RunDir

            record = RunDir(Path(out)).config_path
            if record.is_file():
                seed = json.loads(record.read_text()).get("dp_noise_seed")
                if seed is not None:
                    return int(seed)
        import secrets

        return secrets.randbits(63)

    def _dp_target_frequencies(self, df: Any, target: Any, dp: DPConfig) -> np.ndarray:
        """The target's category frequencies for a DP model: the noisy counts its categories were released with
        (post-processing, free), or for declared categories a Laplace histogram (sensitivity 1) from
        ``TARGET_SHARE`` of epsilon, taken from the critic's part. Only these reach the generator and `sample`."""
        info = next(c for c in self.transformer.columns if c.name == target)
        if info.noisy_counts is not None:
            counts = np.asarray(info.noisy_counts, dtype=float)
        else:
            epsilon = TARGET_SHARE * dp.epsilon
            codes = {v: i for i, v in enumerate(info.categories)}
            exact = np.bincount([codes[v] for v in df[target].dropna() if v in codes],
                                minlength=len(info.categories)).astype(float)
            rng = np.random.default_rng([self._noise_seed, 7])
            counts = exact + rng.laplace(scale=1.0 / epsilon, size=len(exact))
            self._target_ledger = [{"column": target, "what": "target frequencies", "epsilon": epsilon,
                                    "delta": 0.0, "mechanism": "Laplace histogram"}]
        counts = np.maximum(counts, 0.0) + 1e-3  # no category impossible
        return counts / counts.sum()

    def _train(self, rows: torch.Tensor, out: Path, resume: str | None, delta: float | None) -> None:
        from ganforge import __version__
        from ganforge.nets.tabular import Config, build
        from ganforge.train.config import RunConfig
        from ganforge.train.run import resume_checkpoint
        from ganforge.train.rundir import RunDir
        from ganforge.train.runtime import configure_threads, resolve_device
        from ganforge.train.tabular_step import DPSGD, Conditions, TabularStep, TabularStream
        from ganforge.train.trainer import Callback, StopTraining, Trainer

        dp = self.dp
        n = rows.shape[0]
        pac = 1 if dp is not None else self.pac  # a DP sample is one row: packs would group several people
        batch = self.batch_size if dp is not None else max(pac, self.batch_size // pac * pac)
        batch = min(batch, n // pac * pac) if dp is None else min(batch, n)
        if batch < pac:
            raise ConfigError(f"the table has {n} rows, fewer than one pack of {pac}: give more rows or pac=1")
        # CTGAN's 300 epochs are only ~900 steps on a 1,500-row table: too few to learn how columns relate (colon:
        # train-on-synthetic AUC 0.53 at 900 steps, 0.81 at 3,000), so small tables get at least min_steps
        steps = self.steps if self.steps is not None else \
            max(self.min_steps, math.ceil(self.epochs * n / batch / self.n_critic))
        if dp is not None and self.steps is None:
            steps = min(steps, dp.max_steps)
        config = RunConfig(model="tabular", data="dataframe", loss="wasserstein" if dp is None else "non_saturating",
                           lr_g=self.lr_g, lr_d=self.lr_d, betas=(0.5, 0.9), n_critic=self.n_critic,
                           gp_weight=self.gp_weight if dp is None else 0.0, steps=steps, batch_size=batch,
                           seed=self.seed, device=self.device, threads=self.threads, progress=self.progress,
                           log_every=self.log_every, checkpoint_every=self.checkpoint_every,
                           sample_every=max(steps, 1), doctor=self.doctor, report=False)
        config.validate()
        configure_threads(self.threads)
        device = resolve_device(self.device)
        transformer = self.transformer
        cond_spans = transformer.condition_spans()
        if dp is not None:  # DP: conditioned on the target only, at released frequencies (or not at all)
            cond_spans = [s for s in cond_spans if s.column == self.target]
        self._cond_spans = cond_spans
        stream = TabularStream(rows, cond_spans, batch, self.seed, device, poisson=dp is not None,
                               target=self._target_index(), target_share=self.target_share)
        if dp is None:
            self.condition_frequencies = [list(map(float, np.bincount(c, minlength=s.end - s.start) / n))
                                          for c, s in zip(stream.categories, cond_spans, strict=True)]
        else:
            self.condition_frequencies = [list(map(float, self._dp_target_p))] if cond_spans else []
        net_config = Config(z_dim=self.z_dim, generator_dims=list(self.generator_dims),
                            discriminator_dims=list(self.discriminator_dims), pac=pac, dropout=self.dropout)
        torch.manual_seed(self.seed)
        generator, discriminator = build(net_config, transformer.output_dim, stream.cond_dim)
        generator.to(device)
        discriminator.to(device)
        opt_g = torch.optim.Adam(generator.parameters(), lr=self.lr_g, betas=(0.5, 0.9), weight_decay=self.weight_decay)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=self.lr_d, betas=(0.5, 0.9),
                                 weight_decay=self.weight_decay)
        noise = torch.Generator(device=device).manual_seed(self.seed)
        privacy, moment_target = None, None
        if dp is not None:
            from opacus.accountants.utils import get_noise_multiplier

            from ganforge.privacy import denoise_moments, release_moments, row_norm_bound

            if self.moment_weight:  # released once, before training: the generator matches them (post-processing)
                moments = release_moments(rows, dp.epsilon * dp.moment_share, delta / 4,
                                          bound=row_norm_bound(transformer.spans),
                                          generator=torch.Generator().manual_seed(self._noise_seed ^ 11))
                spans = transformer.spans
                moments = denoise_moments(moments, [(sp.start, sp.end) for sp in spans],
                                          [sp.activation == "softmax" for sp in spans], dp.moment_threshold)
                self.category_rates = self._moment_rates(moments.mean.numpy())
                moment_target = (moments.mean.to(device), moments.covariance.to(device))
                self._target_ledger.append(moments.ledger_entry())
            critic_delta = delta / 4 if self.moment_weight else delta / 2
            budget = dp.epsilon * (1 - dp.preprocessing_share) - sum(e["epsilon"] for e in self._target_ledger)
            sigma = get_noise_multiplier(target_epsilon=budget, target_delta=critic_delta,
                                         sample_rate=stream.sample_rate, steps=steps * self.n_critic, accountant="rdp")
            privacy = DPSGD(discriminator, opt_d, noise_multiplier=sigma, max_grad_norm=dp.max_grad_norm,
                            sample_rate=stream.sample_rate, expected_batch_size=batch, delta=critic_delta,
                            generator=torch.Generator(device=device).manual_seed(self._noise_seed))
        fake_conditions = None
        if dp is not None and cond_spans:
            target_p = torch.as_tensor(self._dp_target_p, dtype=torch.float32, device=device)

            def fake_conditions(m: int) -> Conditions:
                categories = torch.multinomial(target_p, m, replacement=True, generator=noise).cpu().numpy()
                return stream.conditions(np.zeros(m, dtype=np.int64), categories)

        step = TabularStep(generator, discriminator, transformer.spans, cond_spans, opt_g, opt_d, noise=noise,
                           n_critic=self.n_critic, gp_weight=config.gp_weight,
                           moment_weight=self.moment_weight, moment_target=moment_target, dp=privacy,
                           fake_conditions=fake_conditions,
                           fake_batch=batch if dp is not None else None)
        run = RunDir(out)
        record = {"ganforge_version": __version__, "config": config.to_dict(), "kind": "tabular",
                  "spec": {"shape": [transformer.output_dim], "kind": "vector", "n_classes": 0, "cond_dim": 0,
                           "name": "table", "class_names": []},
                  "tabular": {"hyperparameters": self.hyperparameters(), "transformer": transformer.to_dict()},
                  "data_source": "dataframe", "total_steps": steps, "device": str(device)}
        if dp is not None:  # the run directory holds the private critic anyway; the saved model never has it
            record["dp_noise_seed"] = self._noise_seed
        checkpoint = resume_checkpoint(run, resume)  # verified, or an error saying what is missing
        if checkpoint is None:
            run.create(record)

        class Budget(Callback):
            """Stops the run once DP-SGD has spent its share of the budget (e.g. a resumed run given more steps)."""

            def on_log(self, trainer: Trainer, at: int, means: dict) -> None:
                if privacy is not None and privacy.epsilon() >= budget * (1 + 1e-6):
                    raise StopTraining(f"privacy budget spent: epsilon {privacy.epsilon():.3f} of {budget:.3f}")

        hooks: list[Callback] = [Budget()]
        if self.doctor:
            from ganforge.train.doctor_hook import DoctorCallback

            hooks.append(DoctorCallback(config, run.path, n_classes=0, total_steps=steps, is_image=False))

        def preview(path: Path) -> None:
            return None  # tables have no sample grid; sample() after fitting

        trainer = Trainer(step, stream, run, config, steps, preview=preview, callbacks=hooks)  # type: ignore[arg-type]
        if checkpoint is not None:
            trainer.restore(checkpoint)
        if self.progress:
            print(f"training TabularGAN on {n} rows x {len(transformer.columns)} columns ({transformer.output_dim} "
                  f"encoded), {steps} steps of {batch}" + (f", DP epsilon {dp.epsilon}" if dp else ""), file=sys.stderr)
        trainer.fit()
        self.generator = generator.eval()
        if dp is not None:
            ledger = list(transformer.privacy_ledger) + list(self._target_ledger) + [
                {"column": "*", "what": "critic training (DP-SGD)", "epsilon": privacy.epsilon(), "delta": critic_delta,
                 "mechanism": f"Gaussian, noise multiplier {sigma:.4g}, clip {dp.max_grad_norm}, sampling rate "
                              f"{stream.sample_rate:.4g}, {sum(h[2] for h in privacy.accountant.history)} steps, RDP"}]
            self.privacy = {"epsilon": float(sum(e["epsilon"] for e in ledger)),
                            "delta": float(sum(e.get("delta") or 0.0 for e in ledger)), "target_epsilon": dp.epsilon,
                            "target_delta": delta, "ledger": ledger}
        else:
            self.privacy = None

    # --- sampling ------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.generator is None or self.transformer is None:
            raise ConfigError("this TabularGAN is not fitted: call fit(df) or TabularGAN.load(dir)")

    @torch.no_grad()
    def sample(self, n: int, conditions: dict[str, Any] | None = None, seed: int | None = None,
               max_tries: int = 100, match_rates: bool = True) -> Any:
        """``n`` synthetic rows as a DataFrame with the training table's columns, dtypes and categories.

        ``conditions`` {column: value} fixes discrete columns: the generator is conditioned on the value, and
        rows that still do not match are drawn again (up to ``max_tries`` rounds). Without conditions, a model
        fitted with a discrete ``target`` conditions each row on a target value drawn at its real frequency;
        otherwise each row is conditioned on a random discrete column's value at its real frequency.

        ``match_rates`` (without conditions): the generator makes a pool of three times the rows (more if that
        is not enough), and the ``n`` kept are chosen so that every discrete column's categories, and missing
        values, come at their real rates (`select_matching`: a raking reweighting, then swaps), where a plain
        draw is off by the generator's own error plus sampling noise. A DP model matches the noisy counts its
        categories were released with (post-processing), and nothing for categories that were declared.
        """
        self._check_fitted()
        pd = import_pandas()
        if not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"n must be a positive number of rows, got {n!r}")
        wanted = self._check_conditions(conditions or {})
        rng = np.random.default_rng(self.seed if seed is None else seed)
        noise = torch.Generator().manual_seed(int(rng.integers(2**62)))
        frames, have = [], 0
        if match_rates and not wanted and self._rate_targets(None):
            while have < n:  # in chunks, so a large sample does not hold a pool three times its size
                k = min(n - have, SELECT_CHUNK)
                for factor in POOL_FACTORS:  # a larger pool when the generator is far off (e.g. barely trained)
                    rows = self._generate(factor * k, wanted, rng, noise, max_tries).cpu().numpy()
                    keep, off = self._select_rows(rows, k, rng)
                    if off <= 1:
                        break
                frames.append(self.transformer.inverse_transform(rows[rng.permutation(keep)],
                                                                 seed=int(rng.integers(2**31))))
                have += k
            return pd.concat(frames, ignore_index=True)
        for _ in range(max_tries):
            m = max(n - have, 64) if wanted else n
            rows = self._generate(m, wanted, rng, noise, max_tries)
            frame = self.transformer.inverse_transform(rows.cpu().numpy(), seed=int(rng.integers(2**31)))
            for column, value in wanted.items():
                frame = frame[frame[column] == value]
            frames.append(frame)
            have += len(frame)
            if have >= n:
                break
        result = pd.concat(frames, ignore_index=True).iloc[:n].reset_index(drop=True) if frames else None
        if result is None or len(result) < n:
            raise ConfigError(f"could only generate {0 if result is None else len(result)} of {n} rows matching "
                              f"{wanted} in {max_tries} rounds; the model rarely produces them")
        return result

    def _generate(self, m: int, wanted: dict[str, Any], rng: np.random.Generator, noise: torch.Generator,
                  max_tries: int) -> torch.Tensor:
        """``m`` encoded rows (hard one-hots): conditioned on ``wanted``, else on the target (allotted at its
        frequency, rows that miss it made again) or on random discrete columns at their frequencies."""
        from ganforge.nets.tabular import activate
        from ganforge.train.tabular_step import Conditions

        g = self.generator
        device = next(g.parameters()).device
        cond_spans = self._cond_spans
        offsets = np.cumsum([0] + [s.end - s.start for s in cond_spans])
        target = self._target_index()
        if cond_spans:
            columns = np.empty(m, dtype=np.int64)
            categories = np.empty(m, dtype=np.int64)
            forced = self._cond_index(wanted)
            if forced:  # condition on one of the fixed columns (each in turn)
                pick = rng.integers(len(forced), size=m)
                columns[:] = [forced[p][0] for p in pick]
                categories[:] = [forced[p][1] for p in pick]
            else:
                columns = rng.integers(len(cond_spans), size=m)
                if target is not None:
                    columns[:] = target
                for c, freq in enumerate(self.condition_frequencies):
                    where = columns == c
                    p = np.asarray(freq) / sum(freq)
                    categories[where] = _allocate(p, int(where.sum()), rng) if c == target else rng.choice(
                        len(freq), size=int(where.sum()), p=p)
            vector = torch.zeros(m, int(offsets[-1]))
            vector[np.arange(m), offsets[columns] + categories] = 1.0
            cond = Conditions(vector.to(device), None, None)
        else:
            cond = Conditions(None, None, None)
        z = torch.randn(m, g.z_dim, generator=noise).to(device)
        rows = activate(g(z, cond.vector), self.transformer.spans, hard=True, generator=noise)
        if cond_spans and not wanted and target is not None:
            rows = self._honour_target(rows, cond.vector, categories, noise, max_tries)
        return rows

    def _moment_rates(self, mean: np.ndarray) -> list[list]:
        """DP: category and missing rates read off the released mean of the encoded rows (a one-hot block's mean
        is its categories' frequencies; post-processing, free) for the discrete columns that have no noisy counts
        of their own (declared categories, booleans) other than the target, which has its own frequencies."""
        out = []
        for info in self.transformer.columns:
            if info.kind not in ("categorical", "boolean") or info.noisy_counts is not None or info.name == self.target:
                continue
            spans = {sp.role: sp for sp in self.transformer.spans if sp.column == info.name}
            if "category" not in spans:
                continue
            cat = spans["category"]
            p = np.clip(mean[cat.start:cat.end].astype(float), 0, None)
            p = p / p.sum() if p.sum() > 0 else np.full(len(p), 1 / len(p))
            missing = float(np.clip(mean[spans["missing"].start + 1], 0, 1)) if "missing" in spans else 0.0
            out.append([info.name, list(map(float, np.append(p * (1 - missing), missing)))])
        return out

    def _rate_targets(self, codes: dict[Any, np.ndarray] | None) -> list[tuple[Any, np.ndarray]]:
        """(column, rates over its codes, missing last) for every discrete column `sample` can match: the real
        rates kept at fit; with DP the released noisy counts (the missing share then left as generated, read
        from ``codes``), else the rates read off the released moments; the target at the frequencies it is
        allotted with. ``codes=None``: just which."""
        out: list[tuple[Any, np.ndarray]] = []
        target = self._target_index()
        for info in self.transformer.columns:
            if codes is not None and info.name not in codes:
                continue
            size = len(info.categories) + 1
            rates = None
            if target is not None and info.name == self.target:
                rates = np.append(np.asarray(self.condition_frequencies[target], dtype=float), 0.0)[:size]
            elif self.category_rates is not None and (self.dp is None or info.noisy_counts is None):
                # the fitted rates; with DP, those read off the released moments (noisy counts come first)
                rates = next((np.asarray(r, dtype=float) for c, r in self.category_rates if c == info.name), None)
            elif info.noisy_counts is not None and len(info.noisy_counts) == size - 1:
                present = np.maximum(np.asarray(info.noisy_counts, dtype=float), 0.0)
                share = float(np.mean(codes[info.name] == size - 1)) if codes is not None else 0.0
                rates = np.append(present / max(present.sum(), 1e-12) * (1 - share), share)
            if rates is not None and len(rates) == size:
                out.append((info.name, rates))
        return out

    def _select_rows(self, rows: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        codes = self.transformer.category_codes(rows)
        targets = self._rate_targets(codes)
        exact = next((i for i, (c, _) in enumerate(targets) if c == self.target), None) \
            if self._target_index() is not None else None
        table = np.stack([codes[c] for c, _ in targets], 1)
        keep = select_matching(table, [r for _, r in targets], n, rng, exact=exact)
        off = max(int(np.abs(np.bincount(table[keep, i], minlength=len(r)) - _largest_remainder(r, n)).max())
                  for i, (_, r) in enumerate(targets))
        return keep, off  # the selected rows, and the largest miss of a category's count

    def _check_conditions(self, conditions: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for column, value in conditions.items():
            info = {c.name: c for c in self.transformer.columns}.get(column)
            if info is None:
                raise ConfigError(f"condition on {column!r}: no such column; columns are "
                                  f"{', '.join(c.name for c in self.transformer.columns)}")
            if info.kind not in ("categorical", "boolean"):
                raise ConfigError(f"condition on {column!r}: only discrete (categorical or boolean) columns can be "
                                  f"conditioned on; {column} is {info.kind}")
            values = self.transformer.category_values(column)
            match = [v for v in values if v == value or str(v) == str(value)]
            if not match:
                raise ConfigError(f"condition {column}={value!r}: unknown value; {column} takes "
                                  f"{', '.join(map(repr, values[:20]))}{' ...' if len(values) > 20 else ''}")
            out[column] = match[0]
        return out

    def _honour_target(self, rows: torch.Tensor, vector: torch.Tensor, categories: np.ndarray,
                       noise: torch.Generator, max_tries: int) -> torch.Tensor:
        """Rows whose target category is not the one they were conditioned on are generated again with the same
        condition (up to ``max_tries`` rounds), so the target keeps its drawn, real rate; a row still off after
        that gets its asked-for category written in (rare once the generator has learned its condition)."""
        from ganforge.nets.tabular import activate

        span = self._cond_spans[self._target_index()]
        gap = next((s for s in self.transformer.spans if s.column == span.column and s.role == "missing"), None)
        wanted = torch.as_tensor(categories, device=rows.device)
        g = self.generator

        def wrong(rows: torch.Tensor) -> torch.Tensor:  # another category, or missing (a DP model may say so)
            bad = rows[:, span.start : span.end].argmax(1) != wanted
            return bad | (rows[:, gap.start + 1] > 0.5) if gap is not None else bad

        for _ in range(max_tries):
            off = torch.nonzero(wrong(rows)).flatten()
            if off.numel() == 0:
                return rows
            z = torch.randn(off.numel(), g.z_dim, generator=noise).to(rows.device)
            rows[off] = activate(g(z, vector[off]), self.transformer.spans, hard=True, generator=noise)
        rows[:, span.start : span.end] = torch.nn.functional.one_hot(wanted, span.end - span.start).to(rows.dtype)
        if gap is not None:
            rows[:, gap.start], rows[:, gap.start + 1] = 1.0, 0.0
        return rows

    def _target_index(self) -> int | None:
        return next((i for i, s in enumerate(self._cond_spans) if s.column == self.target), None) \
            if self.target is not None else None

    def _cond_index(self, wanted: dict[str, Any]) -> list[tuple[int, int]]:
        found = []
        for i, span in enumerate(self._cond_spans):
            if span.column in wanted:
                found.append((i, self.transformer.category_values(span.column).index(wanted[span.column])))
        return found

    # --- saving and loading --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``tabular_gan.json`` (hyperparameters, transformer, privacy ledger) and the generator's weights."""
        from safetensors.torch import save_file

        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        from ganforge import __version__

        model = {"format": FORMAT, "ganforge_version": __version__, "hyperparameters": self.hyperparameters(),
                 "transformer": self.transformer.to_dict(), "condition_frequencies": self.condition_frequencies,
                 "category_rates": self.category_rates,
                 "condition_columns": [s.column for s in self._cond_spans], "target": self.target,
                 "privacy": self.privacy,
                 "notes": self.notes}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.generator.state_dict().items()}
        tmp = folder / (WEIGHTS_FILE + ".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, folder / WEIGHTS_FILE)
        from ganforge.train.config import save_json

        save_json(folder / MODEL_FILE, model)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> TabularGAN:
        from safetensors.torch import load_file

        from ganforge.data.tabular import TabularTransformer
        from ganforge.nets.tabular import Config, build

        folder = Path(path)
        try:
            model = json.loads((folder / MODEL_FILE).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{folder} holds no {MODEL_FILE}: not a saved TabularGAN") from None
        except ValueError as e:
            raise ConfigError(f"{folder / MODEL_FILE} is not valid JSON ({e})") from None
        h = dict(model["hyperparameters"])
        h.setdefault("numeric_encoding", "gmm")  # saved before these existed: what the model was trained with
        h.setdefault("moment_weight", 0.0)
        dp = h.pop("dp", None)
        self = cls(**{k: v for k, v in h.items() if k in HYPERPARAMETERS},
                   dp=DPConfig(**{**dp, "bounds": {k: tuple(v) for k, v in dp["bounds"].items()}}) if dp else None)
        self.transformer = TabularTransformer.from_dict(model["transformer"])
        self.condition_frequencies = model["condition_frequencies"]
        self.category_rates = model.get("category_rates")  # absent in models saved before rate matching
        by_column = {s.column: s for s in self.transformer.condition_spans()}
        self._cond_spans = [by_column[c] for c in model["condition_columns"]]
        self.privacy, self.notes = model.get("privacy"), model.get("notes", [])
        self.target = model.get("target")
        cond_dim = sum(s.end - s.start for s in self._cond_spans)
        pac = 1 if dp else self.pac
        net_config = Config(z_dim=self.z_dim, generator_dims=list(self.generator_dims),
                            discriminator_dims=list(self.discriminator_dims), pac=pac)
        generator, _ = build(net_config, self.transformer.output_dim, cond_dim)
        generator.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        self.generator = generator.to(device).eval()
        return self


def _largest_remainder(p: np.ndarray, m: int) -> np.ndarray:
    """Counts summing to ``m`` in the proportions ``p`` (normalised), as exactly as whole numbers allow."""
    p = np.asarray(p, dtype=float)
    exact = p / p.sum() * m
    counts = np.floor(exact).astype(np.int64)
    short = m - int(counts.sum())
    if short:
        counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


def select_matching(codes: np.ndarray, rates: Sequence[np.ndarray], n: int, rng: np.random.Generator, *,
                    exact: int | None = None, rake_iterations: int = 25, max_swaps: int | None = None,
                    candidates: int = 128) -> np.ndarray:
    """Indices of ``n`` of the ``P`` pool rows whose discrete columns come closest to the given rates.

    ``codes`` (P, C) holds each pool row's code in each of C columns; column c takes values
    ``0 .. len(rates[c]) - 1`` and should appear at rate ``rates[c]``. Three steps:

    1. raking (iterative proportional fitting): weights on the pool rows so that the weighted pool has every
       column's rates at once; of all such reweightings this is the closest to the generator's own
       distribution in KL divergence, so the relations between columns are changed as little as possible;
    2. ``n`` rows drawn by systematic sampling with those inclusion probabilities (raking works on them
       directly, capped at 1, so a heavily weighted row is not lost to saturation), per category of column
       ``exact`` when given, whose counts are then exact;
    3. greedy swaps of a chosen row for one left in the pool (within the same category of ``exact``), the best
       of ``candidates`` x ``candidates`` likely pairs first, while a swap brings the counts closer to
       ``rates * n``. This removes the sampling noise that step 2 leaves (in a sample of 700 rows, ±2 points
       on a 50% category).
    """
    codes = np.asarray(codes, dtype=np.int64)
    pool, ncols = codes.shape
    if n > pool:
        raise ConfigError(f"cannot select {n} rows from a pool of {pool}")
    sizes = [len(r) for r in rates]
    rates = [np.asarray(r, dtype=float) / max(float(np.sum(r)), 1e-12) for r in rates]
    strata = codes[:, exact] if exact is not None else np.zeros(pool, dtype=np.int64)
    quota = _largest_remainder(rates[exact], n) if exact is not None else np.array([n])
    if any(int((strata == t).sum()) < q for t, q in enumerate(quota)):  # too few of a category: no exact column
        strata, quota, exact = np.zeros(pool, dtype=np.int64), np.array([n]), None
    # inclusion probabilities (at most 1, summing to each stratum's quota), raked to the rates
    inclusion = np.full(pool, n / pool)
    for _ in range(rake_iterations):
        for c in range(ncols):
            share = np.bincount(codes[:, c], weights=inclusion, minlength=sizes[c]) / inclusion.sum()
            ratio = np.where(share > 0, rates[c] / np.maximum(share, 1e-12), 1.0)
            inclusion = inclusion * np.clip(ratio, 1e-3, 1e3)[codes[:, c]]
            for t, q in enumerate(quota):
                members = strata == t
                inclusion[members] = _capped(inclusion[members], q)
    chosen = np.zeros(pool, dtype=bool)
    for t, q in enumerate(quota):  # systematic sampling in random order: exactly q rows, each with its probability
        if q == 0:
            continue
        members = rng.permutation(np.flatnonzero(strata == t))
        edges = np.cumsum(inclusion[members])
        points = (rng.random() + np.arange(q)) * (edges[-1] / q)
        chosen[members[np.minimum(np.searchsorted(edges, points), len(members) - 1)]] = True
        short = q - int(chosen[members].sum())  # float round-off: top up at random
        if short > 0:
            chosen[rng.choice(members[~chosen[members]], short, replace=False)] = True
    scored = [c for c in range(ncols) if c != exact]
    if not scored:
        return np.flatnonzero(chosen)
    offsets = np.cumsum([0] + sizes)[:-1]
    flat = codes[:, scored] + offsets[scored]  # (P, C') global code ids
    want = np.concatenate([_largest_remainder(rates[c], n) for c in range(ncols)])
    count = np.bincount(flat[chosen].ravel(), minlength=len(want))
    for _ in range(n if max_swaps is None else max_swaps):
        gap = count - want
        add = np.where(gap < 0, 1, -1)[flat]  # (P, C'): how much |count - want| falls in each column if added
        drop = np.where(gap > 0, 1, -1)[flat]  # ... if removed
        jitter = rng.random(pool)  # ties broken at random, not by pool order
        score_add, score_drop = add.sum(1) + jitter, drop.sum(1) + jitter
        best, swap = 0, None
        for t in range(len(quota)):
            outside = np.flatnonzero((~chosen) & (strata == t))
            inside = np.flatnonzero(chosen & (strata == t))
            if not len(outside) or not len(inside):
                continue
            j = outside[np.argsort(-score_add[outside])[:candidates]]
            i = inside[np.argsort(-score_drop[inside])[:candidates]]
            # the exact change of a swap: a column where both rows have the same code does not move
            same = flat[j][:, None, :] == flat[i][None, :, :]
            gain = np.where(same, 0, add[j][:, None, :] + drop[i][None, :, :]).sum(2)
            a, b = np.unravel_index(np.argmax(gain), gain.shape)
            if gain[a, b] > best:
                best, swap = gain[a, b], (i[b], j[a])
        if swap is None:
            break
        i, j = swap
        chosen[i], chosen[j] = False, True
        count[flat[i]] -= 1
        count[flat[j]] += 1
    return np.flatnonzero(chosen)


def _capped(weights: np.ndarray, total: float) -> np.ndarray:
    """``weights`` scaled to sum to ``total`` with none above 1 (the excess of capped ones spread on the rest)."""
    out = np.asarray(weights, dtype=float).copy()
    capped = np.zeros(len(out), dtype=bool)
    for _ in range(len(out) + 1):
        free = total - capped.sum()
        scale = free / max(out[~capped].sum(), 1e-300)
        out[~capped] *= scale
        over = (~capped) & (out > 1)
        if not over.any():
            break
        capped |= over
        out[capped] = 1.0
    return out


def _allocate(p: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` category indices in the proportions ``p`` as exactly as m allows (largest remainder), shuffled:
    the target's rate in a sample is then its real rate, not that plus multinomial noise (for a 50% class in
    1,200 independently drawn rows, one standard deviation is 1.4 points)."""
    return rng.permutation(np.repeat(np.arange(len(p)), _largest_remainder(p, m)))


def import_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError("TabularGAN needs pandas: pip install 'ganforge[tabular]'") from None
    return pd


def check_frame(df: Any) -> None:
    pd = import_pandas()
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"fit() takes a pandas DataFrame, got {type(df).__name__}")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ConfigError("the table is empty: it needs rows and columns")
    if df.shape[0] < 2:
        raise ConfigError("the table has a single row: a generator cannot learn a distribution from one example")
