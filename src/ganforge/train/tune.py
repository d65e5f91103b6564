"""Hyperparameter sweeps: many short training runs searched by Optuna, behind ``ganforge tune``.

Each trial is an ordinary `ganforge.train.run.train` run in ``OUT/trial_NNNN/`` (same data,
model and seed as the base configuration; only the searched settings change), so every tool
that reads a run directory works on a trial. A callback passes the run's objective to Optuna
as training goes, so that the pruner can stop hopeless trials early::

    from ganforge.train import RunConfig
    from ganforge.train.tune import parse_space, tune

    base = RunConfig(model="mlp", data="ring8", steps=300, log_every=50)
    result = tune(base, "runs/tune-ring8", n_trials=20, space=parse_space("lr_g=log:1e-5:1e-2,n_critic=int:1:5"))
    print(result.best.params, result.best.value)

The sweep directory holds everything: ``study.db`` (Optuna's SQLite storage, which makes a
sweep resumable: rerun the same command), ``summary.json``, ``summary.md`` and
``best_config.toml`` (loadable by ``ganforge train --config``), all rewritten after each trial.

This module imports neither torch nor Optuna until a sweep starts, so that building the
command-line parser stays cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError, DataNotFoundError, GanforgeError
from ganforge.train.config import RunConfig, layer_settings, save_json, settings_below_flags

STUDY_NAME = "ganforge-tune"
STUDY_FILE = "study.db"
DEFAULT_OBJECTIVE = "Probe/swd"  # reported by every run at each stats flush (ganforge.train.run, N_PROBE samples)
DEFAULT_TRIAL_STEPS = 500  # `ganforge tune` without --steps/--epochs: short trials, then train the best fully
KINDS = ("float", "log", "int", "choice")

# Settings a sweep may not search, and why. beta1/beta2 stand for the two halves of ``betas``.
NOT_TUNABLE = {
    "seed": "trials share the base seed so that they differ only by hyperparameters",
    "betas": "search beta1 and beta2 instead",
    "model_config": "network settings are set in the base configuration (--model-opt)",
    "eval_metrics": "it chooses what is measured, not how training goes",
    "best_metric": "it chooses what is measured, not how training goes",
    "eval_every": "it chooses what is measured, not how training goes",
    "eval_n": "it chooses what is measured, not how training goes",
    "preset": "it only records a name; search the settings themselves",
    "data": "trials must train on the same data to be compared",
    "image_size": "trials must train on the same data to be compared",
    "steps": "the run length is the sweep's budget: set it for all trials (--steps)",
    "epochs": "the run length is the sweep's budget: set it for all trials (--epochs)",
    **{name: "it does not change what is trained" for name in (
        "device", "threads", "progress", "report", "sample_every", "checkpoint_every", "log_every",
        "keep_checkpoints", "data_dir")},
}

# Base settings that may change when a sweep is continued: they do not change what a trial trains.
RESUMABLE_CHANGES = frozenset({"device", "threads", "progress", "report", "data_dir", "sample_every",
                               "checkpoint_every", "keep_checkpoints"})


# --- the search space ----------------------------------------------------------------------------------------
def _setting_type(name: str) -> type | None:
    """The Python type of a searchable setting (bool, int, float or str), or None when it is not searchable."""
    if name in ("beta1", "beta2"):
        return float
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    if name not in fields or name in NOT_TUNABLE:
        return None
    annotation = str(fields[name].type)  # a string: config.py uses postponed annotations
    for kind in (bool, int, float, str):
        if annotation.split("|")[0].strip() == kind.__name__:
            return kind
    return None


def tunable_settings() -> list[str]:
    """Names a search space may use: RunConfig fields that change training, plus beta1 and beta2."""
    names = [f.name for f in dataclasses.fields(RunConfig) if _setting_type(f.name) is not None]
    return sorted(names + ["beta1", "beta2"])


@dataclass(frozen=True)
class Param:
    """One dimension of the search space.

    ``name`` is a RunConfig field (``beta1``/``beta2`` set ``betas``); ``kind`` is ``float``
    (uniform in [low, high]), ``log`` (log-uniform, for learning rates), ``int`` (integers in
    [low, high]) or ``choice`` (one of ``choices``). Invalid dimensions raise ConfigError.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ConfigError(f"search parameter {self.name}: {problem}")

    def _problem(self) -> str | None:
        setting = _setting_type(self.name)
        if setting is None:
            if self.name in NOT_TUNABLE:
                return f"cannot be searched ({NOT_TUNABLE[self.name]})"
            return f"is not a setting; searchable: {', '.join(tunable_settings())}"
        if self.kind not in KINDS:
            return f"unknown kind {self.kind!r}; use one of {', '.join(KINDS)}"
        if self.kind == "choice":
            if not self.choices:
                return "choice needs at least one value, e.g. choice:a|b"
            if len(set(self.choices)) != len(self.choices):
                return f"repeated values in {list(self.choices)}"
            return None
        if setting in (bool, str):
            return f"is a {setting.__name__} setting: use choice:A|B"
        if self.low is None or self.high is None:
            return f"{self.kind} needs LOW:HIGH"
        if not self.low < self.high:
            return f"needs LOW < HIGH, got {self.low} and {self.high}"
        if self.kind == "log" and self.low <= 0:
            return f"log needs LOW > 0, got {self.low}"
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            return f"int needs whole bounds, got {self.low} and {self.high}"
        if self.kind in ("float", "log") and setting is int:
            return f"is an integer setting: use int:{int(self.low)}:{int(self.high)}"
        return None

    def text(self) -> str:
        """The entry as `parse_space` reads it (``parse_space(p.text()) == [p]``)."""
        if self.kind == "choice":
            return f"{self.name}=choice:" + "|".join(_choice_text(c) for c in self.choices or ())
        if self.kind == "int":
            return f"{self.name}=int:{int(self.low)}:{int(self.high)}"  # type: ignore[arg-type]
        return f"{self.name}={self.kind}:{float(self.low)!r}:{float(self.high)!r}"  # type: ignore[arg-type]


def _choice_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value) if isinstance(
        value, float) else str(value)


def _coerce(text: str, kind: type) -> Any:
    """A choice value read as the setting's type (``pack=choice:1|2`` gives ints, ``spectral_norm`` bools)."""
    if kind is bool:
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{text!r} is not true or false")
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    return text.strip()


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None


# entries are separated by commas or semicolons, but a comma inside a value (a DiffAugment policy
# "color,translation") is not a separator: only one followed by the next "name=" is
_SEPARATOR = re.compile(r"[;\n]|,(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


def parse_space(text: str) -> list[Param]:
    """Read a search space: ``name=kind:...`` entries separated by commas.

    ``lr_g=log:1e-5:1e-2,beta1=float:0:0.9,n_critic=int:1:5,loss=choice:non_saturating|hinge``.
    Choice values are read as the setting's type (``spectral_norm=choice:true|false``,
    ``pack=choice:1|2|4``); an empty choice is the empty string (``diffaugment=choice:|color,translation``).
    A ConfigError names the entry that is wrong and what would be right.
    """
    entries = [e.strip() for e in _SEPARATOR.split(text) if e.strip()]
    if not entries:
        raise ConfigError("--space is empty; give entries like lr_g=log:1e-5:1e-2,n_critic=int:1:5")
    space: list[Param] = []
    for entry in entries:
        try:
            name, _, spec = entry.partition("=")
            name, spec = name.strip(), spec.strip()
            if not _ or not spec:
                raise ValueError("expected NAME=KIND:..., e.g. lr_g=log:1e-5:1e-2")
            kind, _, rest = spec.partition(":")
            kind = kind.strip()
            setting = _setting_type(name)
            if kind == "choice":
                choices = tuple(_coerce(v, setting) for v in rest.split("|")) if setting else (rest,)
                param = Param(name, kind, choices=choices)
            elif kind in ("float", "log", "int"):
                bounds = rest.split(":")
                if len(bounds) != 2:
                    raise ValueError(f"{kind} needs LOW:HIGH, e.g. {name}={kind}:{'1:5' if kind == 'int' else '0:1'}")
                low, high = (_number(b.strip(), w) for b, w in zip(bounds, ("LOW", "HIGH"), strict=True))
                if kind == "int" and (low != int(low) or high != int(high)):
                    raise ValueError(f"int needs whole bounds, got {bounds[0]} and {bounds[1]}")
                if kind == "int":
                    low, high = int(low), int(high)
                param = Param(name, kind, low, high)
            else:
                raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        except (ValueError, ConfigError) as e:
            raise ConfigError(f"--space entry {entry!r}: {e}") from None
        if any(p.name == param.name for p in space):
            raise ConfigError(f"--space entry {entry!r}: {param.name} appears twice")
        space.append(param)
    return space


def format_space(space: list[Param]) -> str:
    """The text `parse_space` reads back to ``space``."""
    return ",".join(p.text() for p in space)


DEFAULT_SPACE: list[Param] = parse_space("lr_g=log:1e-5:1e-2,lr_d=log:1e-5:1e-2,beta1=float:0:0.9,n_critic=int:1:5")


def apply_params(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``base`` with a trial's settings (``beta1``/``beta2`` replace a half of ``betas``); not validated."""
    overrides = {k: v for k, v in params.items() if k not in ("beta1", "beta2")}
    if "beta1" in params or "beta2" in params:
        overrides["betas"] = (float(params.get("beta1", base.betas[0])), float(params.get("beta2", base.betas[1])))
    for name, value in overrides.items():
        if _setting_type(name) is float and isinstance(value, int) and not isinstance(value, bool):
            overrides[name] = float(value)
    return base.merged(overrides)


# --- the objective -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """What a trial is scored by: a stats key at each flush, a named evaluation score, or the ranking value."""

    source: str  # "stats" (stats.jsonl key), "eval" (a metrics.jsonl metric), "ranking" (run.py's eval ranking)
    name: str
    direction: str  # "minimize" | "maximize"

    def describe(self) -> str:
        if self.source == "ranking":
            return "the evaluation ranking value (the best metric, negated when higher is better)"
        return self.name


def resolve_objective(base: RunConfig, metric: str | None, direction: str | None) -> Objective:
    """The objective for ``base``: with ``eval_every`` the evaluation ranking value, else ``Probe/swd``.

    A ``metric`` with a ``/`` is a stats key (``Loss/G``, ``Probe/diversity``); any other name is
    an evaluation score as written in metrics.jsonl (``fd_identity``, ``precision``), which needs
    ``eval_every``. The default direction is minimize, or maximize for higher-is-better scores.
    """
    if direction not in (None, "minimize", "maximize"):
        raise ConfigError(f"--direction must be minimize or maximize, got {direction!r}")
    if metric is None:
        if base.eval_every > 0:
            if direction == "maximize":
                raise ConfigError("the evaluation ranking value is lower-is-better; to maximize a score, "
                                  "name it with --metric (e.g. --metric precision)")
            return Objective("ranking", "ranking", "minimize")
        return Objective("stats", DEFAULT_OBJECTIVE, direction or "minimize")
    if "/" in metric:
        return Objective("stats", metric, direction or "minimize")
    if base.eval_every <= 0:
        raise ConfigError(f"--metric {metric} is an evaluation score: add --eval-every N (and --eval-metrics) so "
                          "trials are evaluated, or name a stats key such as Probe/swd")
    from ganforge.train.run import HIGHER_IS_BETTER

    return Objective("eval", metric, direction or ("maximize" if metric.startswith(HIGHER_IS_BETTER) else "minimize"))


def _trial_monitor(trial: Any, objective: Objective, prune: bool) -> Any:
    """A training callback that reports the objective to ``trial`` and stops the run when it is pruned or diverges.

    Built here, not at module level, so that importing this module does not import torch.
    """
    from ganforge.train.trainer import Callback, StopTraining

    class TrialMonitor(Callback):
        def __init__(self) -> None:
            self.values: list[tuple[int, float]] = []
            self.outcome: str | None = None  # "pruned" | "diverged" | "missing"
            self.reason: str | None = None
            self.available: list[str] = []  # names seen, for an error naming a missing metric

        def on_log(self, trainer: Any, step: int, means: dict[str, float]) -> None:
            if objective.source != "stats" or trainer.step != step:  # an earlier hook rolled this step back
                return
            self.available = sorted(k for k in means if k not in ("step", "time"))
            if objective.name in means:
                self._observe(step, means[objective.name])

        def on_eval(self, trainer: Any, step: int, value: float) -> None:
            if objective.source == "ranking":
                self._observe(step, value)
            elif objective.source == "eval":
                from ganforge.metrics.protocol import read_scores

                records = read_scores(Path(trainer.run.path) / "metrics.jsonl")
                found = [r for r in records if r.get("metric") == objective.name and r.get("step") == step]
                if not found:
                    self.available = sorted({str(r.get("metric")) for r in records})
                    self.outcome = "missing"
                    self.reason = f"the evaluation wrote no {objective.name} score"
                    raise StopTraining(self.reason)
                self._observe(step, found[-1]["value"])

        def on_restore(self, trainer: Any, step: int) -> None:
            # a rollback (the doctor's remedy) redoes the steps after `step`: their values no longer hold
            self.values = [(s, v) for s, v in self.values if s <= step]

        def _observe(self, step: int, value: Any) -> None:
            value = float(value)  # metrics.jsonl writes non-finite values as strings
            trial.report(value, step)  # a NaN is reported too: Optuna's sampler ranks it worst
            if not math.isfinite(value):
                self.outcome = "diverged"
                self.reason = f"diverged: {objective.describe()} is {value} at step {step}"
                raise StopTraining(self.reason)
            self.values.append((step, value))
            if prune and trial.should_prune():
                pick = min if objective.direction == "minimize" else max
                best = pick(v for _, v in self.values)  # what the median pruner compares
                self.outcome = "pruned"
                self.reason = (f"pruned at step {step}: best {objective.describe()} so far {best:.4g}, "
                               "behind earlier trials")
                raise StopTraining(self.reason)

    return TrialMonitor()


# --- results -------------------------------------------------------------------------------------------------
@dataclass
class TrialRecord:
    """One trial as the summary lists it. ``value`` is set for complete trials only."""

    number: int
    state: str  # complete | pruned | fail | running | waiting
    params: dict[str, Any]
    value: float | None
    best_reported: float | None  # the best intermediate value reported (pruned trials have one too)
    run_dir: Path | None
    steps: int | None
    seconds: float | None
    reason: str | None
    interrupted: bool = False  # failed because its process ended; its settings were queued again

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_dir"] = self.run_dir.name if self.run_dir is not None else None  # relative to the sweep directory
        return d


@dataclass
class TuneResult:
    """What a sweep found: every trial, the best complete one and its full configuration."""

    out: Path
    objective: Objective
    space: list[Param]
    trials: list[TrialRecord]
    best: TrialRecord | None
    best_config: RunConfig | None
    study: Any  # the optuna.Study, for plots and further analysis

    @property
    def finished(self) -> int:
        """Trials that ended (complete, pruned or failed), not counting interrupted ones that ran again."""
        return sum(t.state in ("complete", "pruned", "fail") and not t.interrupted for t in self.trials)


# --- the sweep -----------------------------------------------------------------------------------------------
def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("ganforge tune needs Optuna: pip install 'ganforge[tune]' (or pip install optuna)") from None
    return optuna


def _identity(base: RunConfig, space: list[Param], objective: Objective) -> dict[str, Any]:
    """What a study is about; continuing it with anything else would mix incomparable trials."""
    config = {k: v for k, v in base.to_dict().items() if k not in RESUMABLE_CHANGES}
    space_text = format_space(sorted(space, key=lambda p: p.name))  # the order of the entries does not matter
    return json.loads(json.dumps({"base_config": config, "space": space_text,
                                  "objective": dataclasses.asdict(objective)}, default=list))


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    diffs = []
    old_cfg, new_cfg = stored.get("base_config", {}), wanted["base_config"]
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            diffs.append(f"{key}: study {old_cfg.get(key)!r}, now {new_cfg.get(key)!r}")
    if stored.get("space") != wanted["space"]:
        diffs.append(f"space: study {stored.get('space')!r}, now {wanted['space']!r}")
    if stored.get("objective") != wanted["objective"]:
        diffs.append(f"objective: study {stored.get('objective')}, now {wanted['objective']}")
    return diffs


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _recover_stale(study: Any, optuna: Any, out: Path) -> list[int]:
    """Fail the trials a killed process left RUNNING and queue their settings again; return their numbers.

    A trial's process is known from the pid/host it recorded when it started. One still alive on
    this machine means another ``ganforge tune`` is working in ``out``: refuse rather than race it.
    """
    host = socket.gethostname()
    retried = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            raise ConfigError(f"trial {t.number} in {out} is being run by process {pid}; one sweep at a time "
                              "may work in a directory (wait for it, or stop it and rerun)")
        _retry(study, t.number, t.params)
        retried.append(t.number)
    return retried


def _retry(study: Any, number: int, params: dict[str, Any]) -> None:
    """Mark trial ``number`` failed as interrupted and queue its settings to run again as a new trial."""
    from optuna.trial import TrialState

    interrupted = list(study.user_attrs.get("interrupted", []))
    study.set_user_attr("interrupted", sorted(set(interrupted) | {number}))
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    if params:  # a trial killed before its settings were drawn has none to repeat
        study.enqueue_trial(params, user_attrs={"retry_of": number})


def _suggest(trial: Any, space: list[Param]) -> dict[str, Any]:
    params = {}
    for p in space:
        if p.kind == "choice":
            params[p.name] = trial.suggest_categorical(p.name, list(p.choices or ()))
        elif p.kind == "int":
            params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high))  # type: ignore[arg-type]
        else:
            params[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.kind == "log")
    return params


def _default_pruner(base: RunConfig, n_trials: int, optuna: Any) -> Any:
    """Median pruning once a few trials have completed, never in the first quarter of a run.

    GAN losses and probes are noisy early on; a trial is only compared once it has trained a
    quarter of its steps, and only with at least 2 (up to 5) complete trials to compare with.
    """
    if base.steps is not None:
        total = base.steps
    else:
        from ganforge.data import load

        total = base.total_steps(len(load(base.data, split="train", data_dir=base.data_dir, size=base.image_size)))
    return optuna.pruners.MedianPruner(n_startup_trials=max(2, min(5, n_trials // 4)), n_warmup_steps=total // 4)


def _checkpoint_scores(run_dir: Path) -> list[tuple[int, float]]:
    """The quality scores the run stored with its checkpoints (meta.json "score"): the objective's fallback."""
    from ganforge.train.checkpoint import list_checkpoints

    return [(c.step, float(c.score)) for c in list_checkpoints(run_dir / "checkpoints") if c.score is not None]


def _run_trial(trial: Any, base: RunConfig, params: dict[str, Any], run_dir: Path, objective: Objective,
               prune: bool) -> tuple[str, float | None, str | None, int | None]:
    """Train one trial; return (state, value, reason, steps). Errors of the settings become a failed trial."""
    import torch

    from ganforge.train.run import train

    monitor = _trial_monitor(trial, objective, prune)
    try:
        config = apply_params(base, params).merged({"progress": False, "report": False})
        result = train(config, run_dir, callbacks=[monitor])
    except DataNotFoundError:
        raise  # no trial can run: stop the sweep (the caller records this trial first)
    except (GanforgeError, torch.cuda.OutOfMemoryError) as e:
        return "fail", None, f"{type(e).__name__}: {e}", None
    if monitor.outcome in ("pruned", "diverged"):
        return "pruned", None, monitor.reason, result.step
    values = monitor.values
    if not values and monitor.outcome is None and objective.source == "stats" and objective.name == DEFAULT_OBJECTIVE:
        values = _checkpoint_scores(run_dir)  # a run whose stats lack the probe: its checkpoint scores
        for step, value in values:
            if not math.isfinite(value):
                return "pruned", None, f"diverged: checkpoint score {value} at step {step}", result.step
    absent = monitor.outcome == "missing" or (objective.source == "stats" and monitor.available
                                              and objective.name not in monitor.available and not values)
    if absent:
        seen = ", ".join(monitor.available) or "none"
        raise _MissingMetric(f"--metric {objective.name} was never recorded by trial {trial.number} "
                             f"(names seen: {seen})", result.step)
    if not values:  # e.g. the doctor ended the run before the first flush or evaluation
        return "fail", None, f"the run ended at step {result.step} before reporting {objective.describe()}", result.step
    pick = min if objective.direction == "minimize" else max
    return "complete", pick(v for _, v in values), result.stopped, result.step


class _MissingMetric(ConfigError):
    """The objective never appeared in a run: the same will happen to every trial, so the sweep stops."""

    def __init__(self, message: str, steps: int | None):
        super().__init__(message)
        self.steps = steps


def tune(base: RunConfig, out: str | os.PathLike, *, n_trials: int, space: list[Param] | None = None,
         metric: str | None = None, direction: str | None = None, prune: bool = True, seed: int = 0,
         timeout: float | None = None, progress: bool = True, pruner: Any = None) -> TuneResult:
    """Search ``space`` around ``base`` with Optuna's TPE sampler until ``n_trials`` trials have finished.

    Every trial trains ``base`` with its sampled settings into ``out/trial_NNNN`` (base seed,
    progress and report off). Its objective (`resolve_objective`: ``Probe/swd`` at each stats
    flush, or with ``base.eval_every`` the evaluation ranking value) is reported to Optuna as
    training goes; the median pruner stops trials behind the others (``prune=False``: never).
    A finished trial's value is the **best** value it reported, matching the best checkpoint
    the run keeps. Trials whose settings cannot work (a ConfigError, out of memory) are failed,
    diverging ones (non-finite objective) pruned, each with its reason; the sweep goes on.

    The study lives in ``out/study.db``: calling again with the same arguments continues it
    (finished trials are kept; trials a killed process left running are failed and their
    settings run again), refusing a different base configuration, space or objective.
    ``timeout`` (seconds) stops starting new trials. ``seed`` seeds the sampler; ``pruner``
    replaces the default `optuna.pruners.MedianPruner`. Returns a `TuneResult`;
    ``out/summary.json``, ``summary.md`` and ``best_config.toml`` are rewritten after each trial.
    """
    optuna = _optuna()
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"--trials must be a positive number of trials, got {n_trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    space = list(DEFAULT_SPACE if space is None else space)
    if not space:
        raise ConfigError("the search space is empty; give at least one parameter (see --space)")
    base.validate()  # a bad base fails every trial: say so once, before any
    objective = resolve_objective(base, metric, direction)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    db = out / STUDY_FILE
    if not db.exists() and out.is_dir() and any(out.glob("trial_*")):
        raise ConfigError(f"--out {out} holds trial directories but no {STUDY_FILE}: it is not a sweep that can be "
                          "continued; choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours to print
    storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
    try:
        identity = _identity(base, space, objective)
        try:
            existing = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        except KeyError:
            existing = None
        if existing is not None:
            diffs = _differences(existing.user_attrs.get("identity", {}), identity)
            if diffs:
                raise ConfigError(f"{out} holds a sweep with other settings ({'; '.join(diffs)}); rerun it with "
                                  "the same settings to continue it, or choose another --out")
        n_before = len(existing.trials) if existing is not None else 0
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, direction=objective.direction, load_if_exists=True,
            # reseeded by the history's length, so a continued sweep does not redraw the first trials' settings
            sampler=optuna.samplers.TPESampler(seed=seed + n_before),
            pruner=pruner if pruner is not None else (
                _default_pruner(base, n_trials, optuna) if prune else optuna.pruners.NopPruner()),
        )
        if existing is None:
            study.set_user_attr("identity", identity)
        _recover_stale(study, optuna, out)
        result = _summarize(study, out, base, space, objective, n_trials)
        if progress and result.finished:
            print(f"tune: continuing the sweep in {out}: {result.finished} of {n_trials} trials finished",
                  file=sys.stderr)
        deadline = None if timeout is None else time.monotonic() + timeout
        result = _sweep(study, out, base, space, objective, n_trials, prune, deadline, progress, result)
    finally:
        optuna.logging.set_verbosity(verbosity)
        storage.engine.dispose()
    return result


def _sweep(study: Any, out: Path, base: RunConfig, space: list[Param], objective: Objective, n_trials: int,
           prune: bool, deadline: float | None, progress: bool, result: TuneResult) -> TuneResult:
    """Run trials until ``n_trials`` have finished (or the deadline passed), summarizing after each."""
    from tqdm.auto import tqdm

    from ganforge.train.trainer import Interrupted

    finished = result.finished
    bar = tqdm(total=n_trials, initial=min(finished, n_trials), disable=not progress, unit="trial",
               dynamic_ncols=True, file=sys.stderr)
    try:
        while finished < n_trials and (deadline is None or time.monotonic() < deadline):
            trial = study.ask()
            trial.set_user_attr("pid", os.getpid())  # tells a later run whether this trial's process is alive
            trial.set_user_attr("host", socket.gethostname())
            params = _suggest(trial, space)
            run_dir = out / f"trial_{trial.number:04d}"
            trial.set_user_attr("run_dir", run_dir.name)
            start = time.time()
            try:
                state, value, reason, steps = _run_trial(trial, base, params, run_dir, objective, prune)
            except (Interrupted, KeyboardInterrupt):
                _retry(study, trial.number, params)
                _summarize(study, out, base, space, objective, n_trials)
                raise
            except _MissingMetric as e:
                _finish(study, trial, "fail", None, str(e), e.steps, time.time() - start)
                _summarize(study, out, base, space, objective, n_trials)
                raise
            except BaseException as e:  # a bug or missing data: record the trial, then stop the sweep
                _finish(study, trial, "fail", None, f"{type(e).__name__}: {e}", None, time.time() - start)
                _summarize(study, out, base, space, objective, n_trials)
                raise
            seconds = time.time() - start
            _finish(study, trial, state, value, reason, steps, seconds)
            result = _summarize(study, out, base, space, objective, n_trials)
            finished += 1
            bar.update(1)
            if progress:
                shown = " ".join(f"{k}={_short(v)}" for k, v in params.items())
                best_so_far = next(t.best_reported for t in result.trials if t.number == trial.number)
                value_text = (_short(value) if value is not None else
                              f"({_short(best_so_far)})" if best_so_far is not None else "-")
                tqdm.write(f"trial {trial.number:>3} {state:<8} {value_text:>9}  "
                           f"{shown}  ({steps if steps is not None else '-'} steps, {seconds:.1f} s)"
                           + (f"  {reason}" if reason else ""), file=sys.stderr)
    finally:
        bar.close()
    return result


def _finish(study: Any, trial: Any, state: str, value: float | None, reason: str | None, steps: int | None,
            seconds: float) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("steps", steps)
    trial.set_user_attr("seconds", round(seconds, 3))
    if reason:
        trial.set_user_attr("reason", reason)
    if state == "complete":
        study.tell(trial, value)
    else:
        study.tell(trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- summaries -----------------------------------------------------------------------------------------------
def _records(study: Any, out: Path) -> list[TrialRecord]:
    interrupted = set(study.user_attrs.get("interrupted", []))
    retried_as = {t.user_attrs["retry_of"]: t.number for t in study.trials if "retry_of" in t.user_attrs}
    direction_min = study.direction.name == "MINIMIZE"
    records = []
    for t in study.get_trials(deepcopy=False):
        reason = t.user_attrs.get("reason")
        if t.number in interrupted:
            again = f"; its settings ran again as trial {retried_as[t.number]}" if t.number in retried_as else ""
            reason = f"interrupted: its process ended before the trial did{again}"
        elif t.state.name == "WAITING" and "retry_of" in t.user_attrs:
            reason = f"queued: the settings of trial {t.user_attrs['retry_of']}, to run next time"
        finite = [v for v in t.intermediate_values.values() if math.isfinite(v)]
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start is not None and t.datetime_complete is not None:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        name = t.user_attrs.get("run_dir")
        records.append(TrialRecord(
            number=t.number, state=t.state.name.lower(), params=dict(t.params),
            value=t.value if t.state.name == "COMPLETE" else None,
            best_reported=(min(finite) if direction_min else max(finite)) if finite else None,
            run_dir=out / name if name else None, steps=t.user_attrs.get("steps"), seconds=seconds, reason=reason,
            interrupted=t.number in interrupted))
    return records


def _summarize(study: Any, out: Path, base: RunConfig, space: list[Param], objective: Objective,
               n_trials: int) -> TuneResult:
    """Rewrite summary.json, summary.md and best_config.toml from the study; return the TuneResult."""
    records = _records(study, out)
    complete = [r for r in records if r.state == "complete"]
    sign = 1.0 if objective.direction == "minimize" else -1.0
    best = min(complete, key=lambda r: (sign * r.value, r.number)) if complete else None  # type: ignore[operator]
    best_config = apply_params(base, best.params) if best is not None else None
    result = TuneResult(out, objective, space, records, best, best_config, study)
    save_json(out / "summary.json", {
        "objective": {**dataclasses.asdict(objective), "description": objective.describe(),
                      "trial_value": "the best value a trial reported (its best checkpoint)"},
        "n_trials": n_trials,
        "finished": result.finished,
        "space": format_space(space),
        "base_config": base.to_dict(),
        "best": best.to_dict() if best is not None else None,
        "trials": [r.to_dict() for r in records],
    })
    _write_text(out / "summary.md", _markdown(result, n_trials, base))
    if best_config is not None and best is not None:
        header = (f"ganforge tune: the best of {len(complete)} complete trials in {out} (trial {best.number}, "
                  f"{objective.describe()} {best.value:.6g})\ntrain it: ganforge train --config "
                  f"{out / 'best_config.toml'} --out {out / 'best'}")
        _write_text(out / "best_config.toml", to_toml(best_config.to_dict(), header))
    return result


def _markdown(result: TuneResult, n_trials: int, base: RunConfig) -> str:
    obj = result.objective
    names = [p.name for p in result.space]
    order = {"complete": 0, "pruned": 1, "fail": 2, "running": 3, "waiting": 4}
    sign = 1.0 if obj.direction == "minimize" else -1.0

    def key(r: TrialRecord) -> tuple:
        v = r.value if r.value is not None else r.best_reported
        return order.get(r.state, 5), sign * v if v is not None else math.inf, r.number

    counts = {s: sum(r.state == s for r in result.trials) for s in ("complete", "pruned", "fail")}
    lines = [
        f"# Sweep {result.out}",
        "",
        f"Objective: {obj.direction} {obj.describe()}. A trial's value is the best value it reported during "
        "training (the run keeps that checkpoint as its best); pruned trials show their best so far in brackets.",
        "",
        f"{result.finished} of {n_trials} trials finished: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed. Base: {base.model} on {base.data}, "
        f"{f'{base.steps} steps' if base.steps is not None else f'{base.epochs} epochs'}, seed {base.seed}.",
        "",
        "| trial | state | value | " + " | ".join(names) + " | steps | seconds | note |",
        "|---|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for r in sorted(result.trials, key=key):
        value = (_short(r.value) if r.value is not None
                 else f"({_short(r.best_reported)})" if r.best_reported is not None else "")
        cells = [str(r.number), r.state, value, *(_short(r.params[n]) if n in r.params else "" for n in names),
                 "" if r.steps is None else str(r.steps), "" if r.seconds is None else f"{r.seconds:.1f}",
                 (r.reason or "").replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if result.best is None:
        lines.append("No trial has completed yet.")
    else:
        b = result.best
        lines += [f"## Best: trial {b.number}, {obj.describe()} {_short(b.value)}", ""]
        lines += [f"- `{k}` = {_short(v)}" for k, v in b.params.items()]
        lines += ["", f"Its run: `{b.run_dir}`. Its full configuration is `{result.out / 'best_config.toml'}`; "
                  f"train it (add `--steps N` to train longer than the sweep's trials):", "", "```",
                  f"ganforge train --config {result.out / 'best_config.toml'} --out {result.out / 'best'}", "```"]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    """Write atomically (temp file + rename), like `save_json`: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                         "inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def to_toml(settings: dict[str, Any], header: str = "") -> str:
    """Run settings as a TOML file for ``ganforge train --config`` (None values are left out: they are defaults)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


# --- command line --------------------------------------------------------------------------------------------
def add_tune_parser(subparsers: Any, add_train_flags: Callable[[argparse.ArgumentParser], None]
                    ) -> argparse.ArgumentParser:
    """Add ``ganforge tune``: the training flags (from ``add_train_flags``) plus the search's own; return it.

    The caller sets ``func`` (see `cmd_tune`), since only it knows how flags become settings.
    """
    p = subparsers.add_parser(
        "tune", help="search hyperparameters over short training runs (Optuna; pip install 'ganforge[tune]')",
        description="Train many short runs with searched settings (Optuna TPE sampler, median pruning) and write "
        "OUT/summary.md, summary.json and best_config.toml (for `ganforge train --config`). Training flags set the "
        "base every trial starts from. Rerun the same command to continue an interrupted sweep.")
    add_train_flags(p)
    for action in p._actions:  # the train flags' help speaks of one run; here --out holds the sweep
        if action.dest == "out":
            action.help = "sweep directory: study.db, trial_NNNN/ runs, summaries (default runs/tune-MODEL-DATA)"
    g = p.add_argument_group("the search")
    g.add_argument("--trials", type=int, default=20, help="finished trials to reach, counting earlier ones (20)")
    g.add_argument("--space", metavar="SPEC", help="settings to search, e.g. lr_g=log:1e-5:1e-2,beta1=float:0:0.9,"
                   "n_critic=int:1:5,loss=choice:non_saturating|hinge (default: lr_g, lr_d, beta1, n_critic)")
    g.add_argument("--metric", help="objective: a stats key (default Probe/swd) or, with --eval-every, an evaluation "
                   "score such as fd_identity (default: the evaluation's ranking value)")
    g.add_argument("--direction", choices=["minimize", "maximize"], help="default: minimize, or maximize for "
                   "higher-is-better scores (precision, recall, ...)")
    g.add_argument("--no-prune", dest="prune", action="store_false", help="run every trial to the end")
    g.add_argument("--timeout", type=float, metavar="SECONDS", help="start no new trial after this long")
    return p


def cmd_tune(args: argparse.Namespace, settings_from_args: Callable[[argparse.Namespace], dict[str, Any]]) -> int:
    """Run ``ganforge tune``: settings layered as for a new ``ganforge train`` run, then `tune`.

    ``settings_from_args(args)`` returns the settings the explicit flags set (cli's
    ``_explicit_settings``); they are layered over ``--config`` and ``--preset`` as in
    ``cmd_train``: defaults < preset < TOML < flags. The sweep's own defaults: ``--data`` is
    required (every trial trains on it), ring8/grid25 get the mlp model, and runs last
    ``DEFAULT_TRIAL_STEPS`` steps unless ``--steps``/``--epochs`` say otherwise.
    """
    from ganforge.train.trainer import Interrupted

    if getattr(args, "resume", None) is not None:
        raise ConfigError("ganforge tune continues a sweep by itself: rerun the same command with the same --out "
                          "(without --resume)")
    explicit = settings_from_args(args)
    settings = layer_settings(settings_below_flags(args.config, getattr(args, "preset", None)), explicit)
    if settings.get("data") in (None, "auto"):
        raise ConfigError("ganforge tune needs --data (every trial trains on it), e.g. --data ring8")
    if "model" not in settings and str(settings["data"]).lower() in ("ring8", "grid25"):
        settings["model"] = "mlp"  # 2-D points: DCGAN's convolutions do not apply
    if settings.get("steps") is None and settings.get("epochs") is None:
        settings["steps"] = DEFAULT_TRIAL_STEPS
    config = RunConfig().merged(settings)
    space = parse_space(args.space) if args.space else None
    name = Path(str(config.data)).stem if os.sep in str(config.data) else config.data
    out = Path(args.out or os.path.join("runs", f"tune-{config.model}-{name}"))
    try:
        result = tune(config, out, n_trials=args.trials, space=space, metric=args.metric, direction=args.direction,
                      prune=args.prune, seed=config.seed, timeout=args.timeout, progress=config.progress)
    except Interrupted as e:
        print(f"\nganforge tune: stopped during a trial (its settings will run again); rerun the same command "
              f"to continue the sweep in {out}", file=sys.stderr)
        return 128 + e.signum
    print(f"{result.finished} of {args.trials} trials finished; summary: {out / 'summary.md'}")
    if result.best is None:
        print("no trial completed; see the notes in the summary", file=sys.stderr)
        return 1
    shown = ", ".join(f"{k}={_short(v)}" for k, v in result.best.params.items())
    print(f"best: trial {result.best.number}, {result.objective.describe()} {_short(result.best.value)} ({shown})")
    print(f"train it: ganforge train --config {out / 'best_config.toml'} --out {out / 'best'}")
    return 0
