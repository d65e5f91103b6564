"""The GAN doctor: reads the training statistics stream and says, live, what is wrong and what to do.

The trainer feeds every ``stats.jsonl`` record to :meth:`Doctor.observe` (and every
``metrics.jsonl`` score to :meth:`Doctor.observe_metric`); ``ganforge doctor RUN_DIR`` replays a
finished run through :func:`diagnose`. Each problem is a :class:`Finding`: what is wrong, since
when, the numbers behind it and the ganforge flags that address it.

How a finding lives. Every detector judges each logged record: *hit* (the symptom is there),
*miss*, or *no evidence* (a key it needs is missing: the record is skipped, never counted as
either). An episode begins when the detector's persistence rule holds (below); its ``step`` is
the first hit in that window (the first evidence), and it stays open, ``last_step`` following the
latest hit, until ``clear_records`` evaluations in a row are misses. A later recurrence is a new
episode, so :meth:`Doctor.history` holds one finding per episode. Records before the warm-up
(``warmup_steps``, capped at a fifth of ``total_steps`` for short runs) feed the early references
(first Probe/swd, first Grad/G) but are judged only by the divergence detector.

The detectors, with the default thresholds of :class:`DoctorConfig` (calibrated on DCGAN runs on
our machines: non-saturating loss on MNIST and 8x8/16x16/32x32 digits, whose healthy
discriminators sit at 0.85-0.998 accuracy with Loss/D 0.19-1.0 and Grad/D spikes up to 13x
their median, and an MLP GAN on ring8):

``divergence`` (error)
    any non-finite value under Loss/, Grad/, D/ or Probe/; a Loss/* value above
    ``explode_factor`` (100) times the running median of its own magnitude, or a Grad/* value
    above ``grad_explode_factor`` (1000) times its running median (gradient norms are measured
    on a single step, not averaged over the 50: healthy runs spike to 13x; the medians use at
    least ``explode_floor``, 1, and need 3 earlier values); or ``|Loss/*|`` above
    ``loss_abs_max`` (1e4) except with the Wasserstein loss, whose scale is free. Fires on the
    first such record, warm-up included.
``discriminator_wins`` (warning; error once open for ``escalate_records`` evaluations)
    D separates both sides (D/acc_real and D/acc_fake >= ``acc_high``, 0.97) *and* is saturated:
    Loss/D <= ``d_loss_low`` (0.1; D(x) ~ 0.95 on average), or D(G(z)) <= 1 - ``prob_saturated``
    (0.04) with D(x) >= 0.86 (one-sided label smoothing caps D(x) near 0.9), or the median of the
    last 3 Grad/G <= ``grad_vanish`` (0.05) times its early median (vanishing generator
    gradients). Accuracy alone is not enough: healthy DCGANs on MNIST log 0.99 accuracy for
    hundreds of steps at Loss/D 0.2-0.4. LSGAN has its decision threshold at 0.5, so it uses
    D/margin >= 0.9 (targets 0 and 1) with Loss/D <= ``d_loss_low`` / 2; Wasserstein critics have
    no saturation, so only vanishing Grad/G counts there. Persistence: ``persist`` (5) hits within
    the last ``window`` (8) evaluations, the current one a hit.
``discriminator_not_learning`` (warning)
    D no better than chance: balanced accuracy (acc_real + acc_fake) / 2 at most ``chance_acc``
    (0.1) above 0.5, D/real - D/fake <= ``chance_prob`` (0.05) and D/margin <= ``chance_margin``
    (0.25 logits; 0.1 for LSGAN) -- balanced accuracy because a chance-level D with a biased
    output logs acc_real 1.0 / acc_fake 0.0, as one of our digits runs did; one-sided because a
    frozen D that G has learned to exploit is worse than chance -- *while quality is stalled*:
    Probe/swd, over at least ``stall_records`` (8) probes, still >= ``stalled_ratio`` (0.8) of its
    early value, or the primary fd/kid metric >= 0.8 of its first evaluation, or Probe/diversity
    < ``low_diversity`` (0.5); and neither swd nor fd has improved by the ``improved_ratio``
    factor. With no quality evidence at all it does not fire: the same D statistics with improving
    quality are the healthy equilibrium. When the run logs Probe/swd_floor, the SWD between two
    real sets of the probe's size (what a perfect generator still scores), the stall is judged on
    the part above it, (swd - floor) / (early - floor): on 2-D mixtures the first probes already
    sit near the floor (grid25: 0.40-0.48 early against 0.20-0.30), and three good grid25 runs
    were flagged at 0.80-0.86x the raw early value, 0.5-0.75x above the floor. Persistence as for
    discriminator_wins.
``oscillation`` (warning)
    over the last ``osc_window`` (20) logs after warm-up, ``osc_signals`` (2) series -- all of
    them when fewer are logged -- swing widely *and* repeatedly (one noisy series alone is not
    the coupled swing of D and G). Widely: Loss/G with (p90 - p10) / |median| >=
    ``osc_loss_amplitude`` (0.8; not for hinge/Wasserstein, whose Loss/G crosses zero), the
    balanced accuracy with p90 - p10 >= ``osc_acc_amplitude`` (0.3; logistic and hinge losses),
    Probe/swd with (p90 - p10) / median >= ``osc_swd_amplitude`` (0.5). Repeatedly: at least
    ``osc_crossings`` (4) crossings between the bands a quarter-amplitude above and below the
    median (two full swings; a trend or a single jump gives one). Not while Probe/swd trends
    down (last third of the window <= 0.8 x the first third). Healthy 50-step means are far
    calmer: over any 20 logs of our DCGAN and ring8 runs, Loss/G moved at most 0.37 of its
    median and the balanced accuracy at most 0.13. Persistence: 3 hits in the last 4
    evaluations; ``step`` is the extreme the first swing started from.
``mode_collapse`` (warning; error when severe, i.e. diversity below ``severe_diversity`` (0.25), but not
    before step ``early_collapse_steps`` (2000) while the best diversity is still below ``diversity_reached``)
    Probe/diversity below ``collapse_diversity`` (0.4) or, once it has reached
    ``diversity_reached`` (0.7), below ``collapse_keep`` (0.6) x its best 3-record median (best
    capped at 1), unless it is rising (> 1.2x the previous three); persistence as above. From
    metrics (an evaluation of thousands of samples needs no persistence over logs: the finding
    opens at the evaluation that shows it): classes_covered_* below
    ``classes_fraction`` (0.8) x the class count (the judge histogram's length, else
    ``n_classes``, else 10), and likewise modes_visited*/stacked_modes_* against their n_modes,
    on two evaluations in a row without recovering, or just fallen there from a good value; or
    coverage_*/recall_* below ``coverage_drop`` (0.6) x their best. Severe (error): diversity <
    ``severe_diversity`` (0.25) or under half the classes/modes covered.
``healthy_equilibrium`` (info) -- what ``--stop-at-equilibrium`` stops on
    Begins when, for ``eq_persist`` (3) consecutive logs after warm-up, all of: (1) D balanced:
    median balanced accuracy over the last ``window`` logs in [``balanced_low``,
    ``balanced_high``] = [0.3, 0.85] and not climbing (mean of the window's second half at most
    0.1 above its first half); for LSGAN median margin <= 0.7 and Loss/D above the saturation
    level; for Wasserstein, no discriminator_wins; (2) quality improved: Probe/swd (median of the
    last 3) <= ``improved_ratio`` (0.5) x its early value, or fd/kid <= 0.5 x its first
    evaluation; (3) quality has levelled off: over the last ``plateau_records`` (8) probes the
    median of the later half is within ``plateau_gain`` (10 %) of the earlier half (or the latest
    fd within 10 % of the previous, when there is no swd); (4) Probe/diversity (median of 3) >=
    ``eq_diversity`` (0.7) when logged; (5) no warning or error open. Once begun it stays
    open while (1), (4), (5) hold and quality stays <= 0.6 x its early value (it may keep
    improving); it closes at once when a warning or error opens.

Only the standard library: the doctor reads numbers, it never touches a model.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import textwrap
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ganforge.monitor.stats import from_json_safe, read_jsonl, to_json_safe

__all__ = [
    "CODES",
    "Doctor",
    "DoctorConfig",
    "Finding",
    "diagnose",
    "format_findings",
    "read_doctor_log",
]

CODES = (
    "discriminator_wins",
    "discriminator_not_learning",
    "divergence",
    "oscillation",
    "mode_collapse",
    "healthy_equilibrium",
)
SEVERITIES = ("info", "warning", "error")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_WATCHED_PREFIXES = ("Loss/", "Grad/", "D/", "Probe/")  # what a non-finite value means divergence in
_RECENT_RECORDS = 160  # records kept for the windows (sparse Probe/* keys need more than osc_window)
_MAGNITUDE_HISTORY = 32  # values behind each running median of the divergence detector
_METRIC_HISTORY = 32  # evaluations kept per metric (besides the first)

ADVICE = {
    "discriminator_wins": (
        "Slow the discriminator down or make its task harder: lower --lr-d (e.g. halve it) or raise --lr-g "
        "(two time-scale), add --spectral-norm or --r1-weight 1 (0.1..10), --instance-noise 0.1, "
        "--label-smoothing 0.1 or --diffaugment color,translation,cutout (--preset robust bundles several)."
    ),
    "discriminator_not_learning": (
        "Check that the discriminator trains at all (frozen parameters? --lr-d 0?), then raise --lr-d (e.g. 2x), "
        "train it more per step with --n-critic 2..5, or give it more capacity."
    ),
    "divergence": (
        "Resume from the last good checkpoint (--resume auto; --auto-remedy rolls back by itself) with halved "
        "learning rates (--lr-g, --lr-d) and a stabilised discriminator: --spectral-norm."
    ),
    "divergence_wasserstein": (
        "Resume from the last good checkpoint (--resume auto; --auto-remedy rolls back by itself) with halved "
        "learning rates (--lr-g, --lr-d) and a Lipschitz constraint: --gp-weight 10 or --spectral-norm."
    ),
    "oscillation": (
        "Damp the dynamics: lower --lr-g and --lr-d, use --beta1 0.5 (instead of 0 or 0.9), average the "
        "generator with --ema 0.999, or give the discriminator more steps with --n-critic 2..5."
    ),
    "mode_collapse": (
        "Let the discriminator see diversity: --pack 2 (PacGAN, 2..4) or --minibatch-std; add --diffaugment "
        "color,translation,cutout or --spectral-norm, lower --lr-g, and sample from --ema 0.999 weights."
    ),
    "healthy_equilibrium": (
        "Training is balanced and quality has levelled off: more steps buy little. Stop here "
        "(--stop-at-equilibrium does) and evaluate the latest checkpoint."
    ),
}

# How each loss makes D's statistics readable: does a logit's sign mean a decision (acc), do the
# sigmoid probabilities saturate, and where is chance.
_FAMILIES = {
    "non_saturating": "logistic",
    "minimax": "logistic",
    "hinge": "hinge",
    "lsgan": "least_squares",
    "least_squares": "least_squares",
    "wasserstein": "wasserstein",
}


# ---------------------------------------------------------------------------------------------
# JSON helpers: JSON has no NaN or infinity, so they travel as the strings "nan", "inf", "-inf".


def _number(value: Any) -> float | None:
    """A float from a stats value (number or "nan"/"inf" string); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    try:  # numpy scalars and 0-d arrays
        return float(value)
    except (TypeError, ValueError):
        return None


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile of sorted values, interpolated linearly as numpy's default (numpy is slow on 20 values)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------------------------
# Public data types


@dataclass
class Finding:
    """One diagnosed problem (or the healthy equilibrium): what, since when, the numbers, what to do."""

    code: str  # one of CODES
    severity: str  # "info" | "warning" | "error"
    step: int  # the step at which the problem began (first evidence)
    last_step: int  # latest step with evidence
    message: str  # one sentence: what is wrong, with numbers
    evidence: dict[str, float] = field(default_factory=dict)  # the numbers behind it
    advice: str = ""  # what to do, naming ganforge flags

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite evidence as strings) with ``"kind": "finding"``, as in doctor.jsonl."""
        return {
            "kind": "finding",
            "code": self.code,
            "severity": self.severity,
            "step": int(self.step),
            "last_step": int(self.last_step),
            "message": self.message,
            "evidence": {k: to_json_safe(float(v)) for k, v in self.evidence.items()},
            "advice": self.advice,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        """Rebuild from :meth:`to_dict` output (or a doctor.jsonl line; extra keys such as ``time`` are ignored)."""
        evidence = {}
        for k, v in (d.get("evidence") or {}).items():
            number = _number(v)
            if number is not None:
                evidence[str(k)] = number
        return cls(
            code=str(d["code"]),
            severity=str(d.get("severity", "warning")),
            step=int(d["step"]),
            last_step=int(d.get("last_step", d["step"])),
            message=str(d.get("message", "")),
            evidence=evidence,
            advice=str(d.get("advice", "")),
        )


@dataclass
class DoctorConfig:
    """Thresholds and windows of the detectors; the module docstring says how each is used and why.

    Counts of "records" are logged stats lines (50 training steps each by default).
    """

    # episodes
    warmup_steps: int = 200  # judge nothing but divergence before this step (capped at total_steps / 5)
    window: int = 8  # records a persistence rule looks back over
    persist: int = 5  # hits needed within `window` (the current record one of them) to begin a finding
    clear_records: int = 6  # consecutive misses that end an episode
    escalate_records: int = 20  # an open discriminator_wins episode becomes an error after this many records
    # discriminator_wins
    acc_high: float = 0.97  # D/acc_real and D/acc_fake at least this
    d_loss_low: float = 0.1  # Loss/D at most this counts as saturated (logistic, hinge; half of it for LSGAN)
    prob_saturated: float = 0.96  # D(G(z)) <= 1 - this (with D(x) >= this - 0.1, for label smoothing) too
    grad_vanish: float = 0.05  # Grad/G below this fraction of its early median: vanishing generator gradients
    grad_ref_records: int = 5  # early Grad/G values whose median is the reference
    # discriminator_not_learning / chance
    chance_acc: float = 0.1  # |balanced accuracy - 0.5| at most this
    chance_prob: float = 0.05  # |D/real - D/fake| at most this
    chance_margin: float = 0.25  # |D/margin| at most this (logits; 0.1 for LSGAN)
    # sample quality (Probe/swd, fd/kid metrics, Probe/diversity)
    quality_ref_records: int = 3  # first Probe/swd values whose median is the early reference
    stall_records: int = 8  # Probe/swd values needed before "stalled" can be said
    stalled_ratio: float = 0.8  # swd (or fd) still at least this fraction of its early value: stalled
    improved_ratio: float = 0.5  # at most this fraction of its early value: clearly improved
    low_diversity: float = 0.5  # Probe/diversity below this: quality is not fine, whatever swd says
    plateau_records: int = 8  # Probe/swd values over which "levelled off" is judged
    plateau_gain: float = 0.1  # less than this relative improvement over them: levelled off
    # healthy_equilibrium
    balanced_low: float = 0.3  # median balanced accuracy at least this ...
    balanced_high: float = 0.85  # ... and at most this
    eq_diversity: float = 0.7  # Probe/diversity at least this
    eq_hold_ratio: float = 0.6  # once begun, swd/fd may rise up to this fraction of the early value
    eq_persist: int = 3  # consecutive records the beginning condition must hold
    # divergence
    explode_factor: float = 100.0  # a Loss/* this many times its running median magnitude is an explosion
    grad_explode_factor: float = 1000.0  # the same for Grad/*: one-step norms, with healthy spikes of 13x and more
    explode_floor: float = 1.0  # smallest running median used (tiny losses may grow without diverging)
    loss_abs_max: float = 1e4  # |Loss/*| above this is divergence, except with the Wasserstein loss
    # oscillation
    osc_window: int = 20  # records a swing is judged over
    osc_crossings: int = 4  # band crossings needed (two full swings)
    osc_loss_amplitude: float = 0.8  # (p90 - p10) / |median| of Loss/G (healthy runs: at most 0.37)
    osc_acc_amplitude: float = 0.3  # p90 - p10 of the balanced accuracy (healthy runs: at most 0.13)
    osc_swd_amplitude: float = 0.5  # (p90 - p10) / median of Probe/swd
    osc_signals: int = 2  # series that must swing together (all of them when fewer are logged)
    osc_persist: int = 3  # hits needed within the last osc_persist + 1 evaluations
    # mode_collapse
    collapse_diversity: float = 0.4  # Probe/diversity below this is collapse ...
    diversity_reached: float = 0.7  # ... and once the best diversity reached this,
    collapse_keep: float = 0.6  # below this fraction of the best (capped at 1) too
    severe_diversity: float = 0.25  # below this: error ...
    early_collapse_steps: int = 2000  # ... but only a warning before this step while G has never been diverse
    classes_fraction: float = 0.8  # classes/modes covered below this fraction of the count: collapse
    coverage_drop: float = 0.6  # coverage/recall below this fraction of their best: collapse

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DoctorConfig:
        """Rebuild from ``asdict`` output, ignoring unknown keys (a state saved by another version)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class _Verdict:
    """A detector's judgement of one record (hit or miss); the finding's text when a hit."""

    hit: bool
    severity: str = "warning"
    message: str = ""
    evidence: dict[str, float] = field(default_factory=dict)
    advice: str = ""
    first_step: int | None = None  # overrides the first hit in the window as the start of the problem


@dataclass
class _Track:
    """The persistence state of one detector."""

    window: int
    persist: int
    hits: list[list[Any]] = field(default_factory=list)  # [step, hit] of the last `window` evaluations
    open: int | None = None  # index of the open episode's finding in the history
    misses: int = 0  # consecutive misses while open
    held: int = 0  # evaluations since the open episode began


@dataclass
class _Quality:
    """Where sample quality stands, from Probe/swd, the primary fd/kid metric and Probe/diversity."""

    swd_ref: float | None = None
    swd_now: float | None = None
    swd_ratio: float | None = None
    swd_count: int = 0
    swd_gain: float | None = None  # relative improvement over the last plateau_records probes
    swd_floor: float | None = None  # Probe/swd_floor: SWD between two real sets of the probe's size
    swd_stall_ratio: float | None = None  # (swd_now - floor) / (swd_ref - floor); swd_ratio without a floor
    fd_name: str | None = None
    fd_first: float | None = None
    fd_now: float | None = None
    fd_ratio: float | None = None
    fd_count: int = 0
    fd_gain: float | None = None  # relative improvement since the previous evaluation
    diversity: float | None = None  # median of the last 3 Probe/diversity values

    def improved(self, ratio: float) -> bool:
        return (self.swd_ratio is not None and self.swd_ratio <= ratio) or (
            self.fd_ratio is not None and self.fd_count >= 2 and self.fd_ratio <= ratio
        )

    def evidence(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.swd_now is not None and self.swd_ref is not None:
            out.update({"Probe/swd": self.swd_now, "Probe/swd_early": self.swd_ref})
            if self.swd_floor is not None:
                out["Probe/swd_floor"] = self.swd_floor
        if self.fd_name is not None and self.fd_now is not None and self.fd_first is not None:
            out.update({self.fd_name: self.fd_now, f"{self.fd_name}_first": self.fd_first})
        if self.diversity is not None:
            out["Probe/diversity"] = self.diversity
        return out

    def describe(self) -> str:
        parts = []
        if self.swd_now is not None and self.swd_ref is not None:
            parts.append(f"Probe/swd {self.swd_now:.3g} vs {self.swd_ref:.3g} early"
                         + (f", real-vs-real floor {self.swd_floor:.3g}" if self.swd_floor is not None else ""))
        if self.fd_name is not None and self.fd_now is not None and self.fd_first is not None and self.fd_count >= 2:
            parts.append(f"{self.fd_name} {self.fd_now:.3g} vs {self.fd_first:.3g} first")
        if self.diversity is not None:
            parts.append(f"diversity {self.diversity:.2f}")
        return ", ".join(parts) if parts else "no quality evidence"


# ---------------------------------------------------------------------------------------------
# The doctor


class Doctor:
    """Watches the stats stream of one run and raises :class:`Finding`s; see the module docstring.

    Example::

        doctor = Doctor(loss="non_saturating", n_classes=10, total_steps=5000)
        for record in stats_records:          # dicts as in stats.jsonl
            for finding in doctor.observe(record):
                print(finding.code, finding.message, finding.advice)
        doctor.healthy()                      # no warning or error open now
    """

    def __init__(
        self,
        config: DoctorConfig | None = None,
        *,
        loss: str = "non_saturating",
        n_classes: int = 0,
        total_steps: int | None = None,
    ) -> None:
        self.config = config if config is not None else DoctorConfig()
        self.loss = str(loss)
        self.family = _FAMILIES.get(self.loss.lower().replace("-", "_"), "logistic")
        self.n_classes = int(n_classes or 0)
        self.total_steps = int(total_steps) if total_steps else None
        self._reset()

    def _reset(self) -> None:
        cfg = self.config
        self._recent: list[dict[str, float]] = []  # clean records (finite, not exploded), with "step"
        self._last_step: int | None = None
        self._swd_first: list[float] = []  # the first quality_ref_records Probe/swd values
        self._swd_count = 0
        self._grad_g_first: list[float] = []  # the first grad_ref_records Grad/G values
        self._diversity_best: float | None = None  # best 3-record median of Probe/diversity
        self._magnitudes: dict[str, list[float]] = {}  # |value| history per Loss/* and Grad/* key
        self._metrics: dict[str, list[list[Any]]] = {}  # name -> [[step, value, count or None], ...]
        self._metric_collapse: dict[str, float] | None = None  # latest evaluations' collapse evidence
        self._metric_seen = False  # some collapse-relevant metric was evaluated
        self._history: list[Finding] = []
        self._tracks = {
            "divergence": _Track(window=1, persist=1),
            "discriminator_wins": _Track(window=cfg.window, persist=cfg.persist),
            "discriminator_not_learning": _Track(window=cfg.window, persist=cfg.persist),
            "mode_collapse": _Track(window=cfg.window, persist=cfg.persist),
            "oscillation": _Track(window=cfg.osc_persist + 1, persist=cfg.osc_persist),
            "healthy_equilibrium": _Track(window=cfg.eq_persist, persist=cfg.eq_persist),
        }

    # --- public API ------------------------------------------------------------------------------
    @property
    def warmup_steps(self) -> int:
        """Steps judged only by the divergence detector: the configured warm-up, at most a fifth of the run."""
        if self.total_steps:
            return min(self.config.warmup_steps, self.total_steps // 5)
        return self.config.warmup_steps

    def observe(self, record: dict[str, Any]) -> list[Finding]:
        """Feed one stats.jsonl record; return the findings that begin at it (or whose severity rose).

        Values may be numbers or the strings "nan"/"inf"/"-inf"; any key may be missing. A step
        lower than the previous one (a rollback) forgets what was logged after it and ends the open
        episodes, which stay in the history.
        """
        step = _number(record.get("step"))
        step = int(step) if step is not None else (self._last_step or 0) + 1
        if self._last_step is not None and step < self._last_step:
            self._rewind(step)
        self._last_step = step

        values: dict[str, float] = {}
        for key, raw in record.items():
            if key in ("step", "time"):
                continue
            number = _number(raw)
            if number is not None:
                values[key] = number

        new: list[Finding] = []
        verdict, clean = self._check_divergence(values)
        new += self._advance("divergence", verdict, step)
        self._remember(step, clean)
        if step > self.warmup_steps:
            new += self._advance("discriminator_wins", self._check_discriminator_wins(clean), step)
            new += self._advance("discriminator_not_learning", self._check_not_learning(clean), step)
            new += self._advance("mode_collapse", self._check_collapse(clean), step)
            new += self._advance("oscillation", self._check_oscillation(), step)
            self._end_equilibrium_if_unhealthy()
            new += self._advance("healthy_equilibrium", self._check_equilibrium(), step)
        else:
            self._end_equilibrium_if_unhealthy()
        return new

    def observe_metric(self, record: dict[str, Any]) -> list[Finding]:
        """Feed one metrics.jsonl record; return the findings that begin at it (or whose severity rose).

        Metrics with names fd_*/kid_* set the quality trend; classes_covered_*, modes_visited*,
        stacked_modes_*, coverage_* and recall_* can reveal mode collapse (see the module docstring).
        """
        name = str(record.get("metric", ""))
        value = _number(record.get("value"))
        if not name or value is None:
            return []
        step_value = _number(record.get("step"))
        step = int(step_value) if step_value is not None else (self._last_step or 0)
        extra = record.get("extra") if isinstance(record.get("extra"), dict) else {}
        count = self._metric_count(name, extra)
        series = self._metrics.setdefault(name, [])
        if series and series[-1][0] == step:
            series[-1] = [step, value, count]  # the same evaluation written again
        else:
            series.append([step, value, count])
            del series[1 : -_METRIC_HISTORY]  # the first evaluation stays: it is the trend's reference
        if step <= self.warmup_steps or not _collapse_metric(name):
            return []
        self._metric_seen = True
        self._metric_collapse = self._collapse_from_metrics()
        track = self._tracks["mode_collapse"]
        if self._metric_collapse is None:
            return []
        verdict = self._collapse_verdict(None, self._metric_collapse)
        new = self._advance("mode_collapse", verdict, step, force=track.open is None)
        self._end_equilibrium_if_unhealthy()
        return new

    def active(self) -> list[Finding]:
        """The findings whose episode is open at the latest record (copies)."""
        return [replace(self._history[t.open], evidence=dict(self._history[t.open].evidence))
                for t in self._tracks.values() if t.open is not None]

    def history(self) -> list[Finding]:
        """Every finding raised so far, one per episode, in order of beginning (copies)."""
        return [replace(f, evidence=dict(f.evidence)) for f in self._history]

    def healthy(self) -> bool:
        """True when no warning or error episode is open."""
        return not any(_RANK[f.severity] >= _RANK["warning"] for f in self.active())

    def state_dict(self) -> dict[str, Any]:
        """Everything the doctor knows, JSON-safe, so that a resumed run continues it exactly."""
        return to_json_safe(
            {
                "version": 1,
                "config": asdict(self.config),
                "loss": self.loss,
                "n_classes": self.n_classes,
                "total_steps": self.total_steps,
                "recent": self._recent,
                "last_step": self._last_step,
                "swd_first": self._swd_first,
                "swd_count": self._swd_count,
                "grad_g_first": self._grad_g_first,
                "diversity_best": self._diversity_best,
                "magnitudes": self._magnitudes,
                "metrics": self._metrics,
                "metric_collapse": self._metric_collapse,
                "metric_seen": self._metric_seen,
                "history": [f.to_dict() for f in self._history],
                "tracks": {code: asdict(t) for code, t in self._tracks.items()},
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (config, loss and counts included)."""
        s = from_json_safe(json.loads(json.dumps(state)))  # a deep copy, whatever the caller does later
        self.config = DoctorConfig.from_dict(s.get("config", {}))
        self.loss = str(s.get("loss", self.loss))
        self.family = _FAMILIES.get(self.loss.lower().replace("-", "_"), "logistic")
        self.n_classes = int(s.get("n_classes") or 0)
        self.total_steps = s.get("total_steps")
        self._reset()
        self._recent = s.get("recent", [])
        self._last_step = s.get("last_step")
        self._swd_first = s.get("swd_first", [])
        self._swd_count = int(s.get("swd_count", 0))
        self._grad_g_first = s.get("grad_g_first", [])
        self._diversity_best = s.get("diversity_best")
        self._magnitudes = s.get("magnitudes", {})
        self._metrics = s.get("metrics", {})
        self._metric_collapse = s.get("metric_collapse")
        self._metric_seen = bool(s.get("metric_seen", False))
        self._history = [Finding.from_dict(d) for d in s.get("history", [])]
        for code, t in s.get("tracks", {}).items():
            if code in self._tracks:
                self._tracks[code] = _Track(**t)

    # --- episodes ----------------------------------------------------------------------------------
    def _advance(self, code: str, verdict: _Verdict | None, step: int, *, force: bool = False) -> list[Finding]:
        """Move one detector's episode on by a verdict (None: no evidence at this record)."""
        if verdict is None:
            return []
        track = self._tracks[code]
        track.hits.append([step, bool(verdict.hit)])
        del track.hits[: -track.window]
        if track.open is not None:
            finding = self._history[track.open]
            track.held += 1
            if not verdict.hit:
                track.misses += 1
                if track.misses >= self.config.clear_records:
                    self._close(code)
                return []
            track.misses = 0
            rose = _RANK.get(verdict.severity, 1) > _RANK.get(finding.severity, 1)
            finding.last_step = step
            finding.message, finding.evidence, finding.advice = verdict.message, verdict.evidence, verdict.advice
            if rose:
                finding.severity = verdict.severity
                return [replace(finding, evidence=dict(finding.evidence))]
            return []
        if not verdict.hit:
            return []
        if not force and sum(1 for _, hit in track.hits if hit) < track.persist:
            return []
        first = min(s for s, hit in track.hits if hit)
        if verdict.first_step is not None:
            first = min(first, verdict.first_step)
        finding = Finding(code, verdict.severity, int(first), int(step), verdict.message, verdict.evidence,
                          verdict.advice)
        self._history.append(finding)
        track.open, track.misses, track.held = len(self._history) - 1, 0, 1
        return [replace(finding, evidence=dict(finding.evidence))]

    def _close(self, code: str) -> None:
        track = self._tracks[code]
        track.open, track.misses, track.held, track.hits = None, 0, 0, []

    def _end_equilibrium_if_unhealthy(self) -> None:
        """A warning or error ends the equilibrium at once: --stop-at-equilibrium must not stop on a stale one."""
        if self._tracks["healthy_equilibrium"].open is not None and self._problem_open():
            self._close("healthy_equilibrium")

    def _problem_open(self) -> bool:
        return any(
            t.open is not None and _RANK[self._history[t.open].severity] >= _RANK["warning"]
            for code, t in self._tracks.items()
            if code != "healthy_equilibrium"
        )

    def _rewind(self, step: int) -> None:
        """The run went back to ``step`` (a rollback): forget later records and end the open episodes."""
        self._recent = [r for r in self._recent if r["step"] < step]
        for name in self._metrics:
            self._metrics[name] = [m for m in self._metrics[name] if m[0] <= step]
        self._metric_collapse = self._collapse_from_metrics() if self._metric_seen else None
        for code in self._tracks:
            self._close(code)

    # --- the series ---------------------------------------------------------------------------------
    def _remember(self, step: int, clean: dict[str, float]) -> None:
        cfg = self.config
        self._recent.append({"step": step, **clean})
        del self._recent[:-_RECENT_RECORDS]
        if "Probe/swd" in clean:
            self._swd_count += 1
            if len(self._swd_first) < cfg.quality_ref_records:
                self._swd_first.append(clean["Probe/swd"])
        if "Grad/G" in clean and len(self._grad_g_first) < cfg.grad_ref_records:
            self._grad_g_first.append(clean["Grad/G"])
        if "Probe/diversity" in clean:
            last = self._values("Probe/diversity", 3)
            if len(last) == 3:
                now = _median(last)
                self._diversity_best = now if self._diversity_best is None else max(self._diversity_best, now)

    def _values(self, key: str, n: int, *, after: int | None = None) -> list[float]:
        return [v for _, v in self._series(key, n, after=after)]

    def _series(self, key: str, n: int, *, after: int | None = None) -> list[tuple[int, float]]:
        """The last ``n`` (step, value) pairs of ``key`` (after step ``after``), oldest first."""
        out: list[tuple[int, float]] = []
        for rec in reversed(self._recent):
            if after is not None and rec["step"] <= after:
                break
            if key in rec:
                out.append((int(rec["step"]), rec[key]))
                if len(out) == n:
                    break
        out.reverse()
        return out

    def _grad_g_ref(self) -> float | None:
        if len(self._grad_g_first) < 3:
            return None
        return _median(self._grad_g_first)

    def _quality(self) -> _Quality:
        cfg = self.config
        q = _Quality()
        if len(self._swd_first) >= cfg.quality_ref_records:
            q.swd_ref = _median(self._swd_first)
            q.swd_now = _median(self._values("Probe/swd", 3))
            q.swd_count = self._swd_count
            if q.swd_ref > 0:
                q.swd_ratio = q.swd_now / q.swd_ref
            q.swd_stall_ratio = q.swd_ratio
            floor = self._values("Probe/swd_floor", 1)
            if floor:
                q.swd_floor = floor[0]
                above = q.swd_ref - q.swd_floor
                q.swd_stall_ratio = max(q.swd_now - q.swd_floor, 0.0) / above if above > 0 else None
            last = self._values("Probe/swd", cfg.plateau_records)
            if len(last) == cfg.plateau_records:
                half = cfg.plateau_records // 2
                before = _median(last[:half])
                if before > 0:
                    q.swd_gain = 1.0 - _median(last[half:]) / before
        name = self._primary_metric()
        if name is not None:
            values = [m[1] for m in self._metrics[name] if math.isfinite(m[1])]
            if values:
                q.fd_name, q.fd_first, q.fd_now, q.fd_count = name, values[0], values[-1], len(values)
                if values[0] > 0:
                    q.fd_ratio = values[-1] / values[0]
                if len(values) >= 2 and values[-2] > 0:
                    q.fd_gain = 1.0 - values[-1] / values[-2]
        diversity = self._values("Probe/diversity", 3)
        if diversity:
            q.diversity = _median(diversity)
        return q

    def _primary_metric(self) -> str | None:
        """The quality metric the trend is read from: the first fd_* evaluated, else the first kid_*."""
        for prefix in ("fd_", "kid_"):
            for name in self._metrics:
                if name.startswith(prefix):
                    return name
        return None

    def _balanced_accuracy(self, rec: dict[str, float]) -> float | None:
        if "D/acc_real" in rec and "D/acc_fake" in rec:
            return 0.5 * (rec["D/acc_real"] + rec["D/acc_fake"])
        return None

    def _balanced_series(self, n: int) -> list[tuple[int, float]]:
        """The last ``n`` (step, balanced accuracy) pairs after the warm-up, oldest first."""
        out: list[tuple[int, float]] = []
        for rec in reversed(self._recent):
            if rec["step"] <= self.warmup_steps:
                break
            value = self._balanced_accuracy(rec)
            if value is not None:
                out.append((int(rec["step"]), value))
                if len(out) == n:
                    break
        out.reverse()
        return out

    # --- detectors ----------------------------------------------------------------------------------
    def _check_divergence(self, values: dict[str, float]) -> tuple[_Verdict, dict[str, float]]:
        """Non-finite or exploding values; returns the verdict and the record without the bad values."""
        cfg = self.config
        clean: dict[str, float] = {}
        evidence: dict[str, float] = {}
        reasons: list[str] = []
        for key, value in values.items():
            watched = key.startswith(_WATCHED_PREFIXES)
            if not math.isfinite(value):
                if watched:
                    evidence[key] = value
                    reasons.append(f"{key} is {value}")
                continue
            if key.startswith(("Loss/", "Grad/")):
                history = self._magnitudes.setdefault(key, [])
                magnitude = abs(value)
                limit = math.inf
                if len(history) >= 3:
                    factor = cfg.explode_factor if key.startswith("Loss/") else cfg.grad_explode_factor
                    limit = factor * max(_median(history), cfg.explode_floor)
                if key.startswith("Loss/") and self.family != "wasserstein":
                    limit = min(limit, cfg.loss_abs_max)
                if magnitude > limit:
                    evidence[key] = value
                    if len(history) >= 3:
                        median = _median(history)
                        evidence[f"{key}/median"] = median
                        reasons.append(f"{key} = {value:.3g}, {magnitude / max(median, 1e-12):.3g}x its running "
                                       f"median {median:.3g}")
                    else:
                        reasons.append(f"|{key}| = {magnitude:.3g} > {cfg.loss_abs_max:.0e}")
                    continue
                history.append(magnitude)
                del history[:-_MAGNITUDE_HISTORY]
            clean[key] = value
        if not reasons:
            return _Verdict(False), clean
        verdict = _Verdict(
            True,
            "error",
            f"Training diverged: {'; '.join(reasons[:3])}{' and more' if len(reasons) > 3 else ''}.",
            evidence,
            ADVICE["divergence_wasserstein" if self.family == "wasserstein" else "divergence"],
        )
        return verdict, clean

    def _check_discriminator_wins(self, rec: dict[str, float]) -> _Verdict | None:
        cfg = self.config
        acc_real, acc_fake = rec.get("D/acc_real"), rec.get("D/acc_fake")
        loss_d, p_real, p_fake = rec.get("Loss/D"), rec.get("D/real"), rec.get("D/fake")
        margin = rec.get("D/margin")
        # Grad/G is one step's norm, not a mean: judge the median of the last three
        grad_g = _median(self._values("Grad/G", 3)) if "Grad/G" in rec else None
        ref = self._grad_g_ref()
        vanished = None if grad_g is None or ref is None or ref <= 0 else grad_g <= cfg.grad_vanish * ref
        if self.family == "least_squares":
            if margin is None or (loss_d is None and vanished is None):
                return None
            separated = margin >= 0.9
            saturated = (loss_d is not None and loss_d <= cfg.d_loss_low / 2) or bool(vanished)
        else:
            if acc_real is None or acc_fake is None:
                return None
            separated = acc_real >= cfg.acc_high and acc_fake >= cfg.acc_high
            if self.family == "wasserstein":
                if vanished is None:
                    return None
                saturated = vanished
            else:
                by_probability = None
                if self.family == "logistic" and p_real is not None and p_fake is not None:
                    by_probability = p_fake <= 1 - cfg.prob_saturated and p_real >= cfg.prob_saturated - 0.1
                signs = [s for s in (None if loss_d is None else loss_d <= cfg.d_loss_low, by_probability, vanished)
                         if s is not None]
                if not signs:
                    return None
                saturated = any(signs)
        if not (separated and saturated):
            return _Verdict(False)
        track = self._tracks["discriminator_wins"]
        held = track.held + 1 if track.open is not None else 1
        evidence = {k: rec[k] for k in ("D/acc_real", "D/acc_fake", "Loss/D", "D/real", "D/fake", "D/margin")
                    if k in rec}
        if grad_g is not None:
            evidence["Grad/G"] = grad_g
        if ref is not None:
            evidence["Grad/G_early"] = ref
        parts = []
        if acc_real is not None and acc_fake is not None:
            parts.append(f"accuracy {acc_real:.3f} on real and {acc_fake:.3f} on fake")
        if loss_d is not None:
            parts.append(f"Loss/D {loss_d:.3g}")
        if self.family == "least_squares" and margin is not None:
            parts.append(f"margin {margin:.2f}")
        if vanished and grad_g is not None and ref is not None:
            parts.append(f"Grad/G {grad_g:.2g}, {grad_g / ref:.1%} of its early {ref:.2g}")
        message = (f"The discriminator beats the generator almost completely ({', '.join(parts)}), so the generator "
                   "gets little useful gradient.")
        severity = "error" if held >= cfg.escalate_records else "warning"
        return _Verdict(True, severity, message, evidence, ADVICE["discriminator_wins"])

    def _at_chance(self, rec: dict[str, float]) -> bool | None:
        """D no better than chance at this record (worse counts too: a frozen D that G has learned to exploit)."""
        cfg = self.config
        balanced = self._balanced_accuracy(rec)
        p_real, p_fake, margin = rec.get("D/real"), rec.get("D/fake"), rec.get("D/margin")
        if balanced is None or p_real is None or p_fake is None:
            return None
        chance = balanced - 0.5 <= cfg.chance_acc and p_real - p_fake <= cfg.chance_prob
        if margin is not None and self.family != "wasserstein":
            limit = 0.1 if self.family == "least_squares" else cfg.chance_margin
            chance = chance and margin <= limit
        return chance

    def _check_not_learning(self, rec: dict[str, float]) -> _Verdict | None:
        cfg = self.config
        chance = self._at_chance(rec)
        if chance is None:
            return None
        if not chance:
            return _Verdict(False)
        q = self._quality()
        if q.improved(cfg.improved_ratio):
            return _Verdict(False)
        signs = []
        if q.swd_stall_ratio is not None and q.swd_count >= cfg.stall_records:
            signs.append(q.swd_stall_ratio >= cfg.stalled_ratio)
        if q.fd_ratio is not None and q.fd_count >= 2:
            signs.append(q.fd_ratio >= cfg.stalled_ratio)
        if q.diversity is not None and q.diversity < cfg.low_diversity:
            signs.append(True)
        if not signs:
            return None  # D at chance, but nothing says yet whether the samples got better
        if not any(signs):
            return _Verdict(False)
        evidence = {k: rec[k] for k in ("D/acc_real", "D/acc_fake", "D/real", "D/fake", "D/margin") if k in rec}
        evidence.update(q.evidence())
        message = (f"The discriminator is no better than chance (D(x) {rec['D/real']:.3f} vs D(G(z)) "
                   f"{rec['D/fake']:.3f}, "
                   f"accuracy {rec['D/acc_real']:.2f} real / {rec['D/acc_fake']:.2f} fake"
                   + (f", margin {rec['D/margin']:.3f}" if "D/margin" in rec else "")
                   + f") while sample quality is not improving ({q.describe()}): it is not learning, "
                   "not in equilibrium.")
        return _Verdict(True, "warning", message, evidence, ADVICE["discriminator_not_learning"])

    def _check_collapse(self, rec: dict[str, float]) -> _Verdict | None:
        cfg = self.config
        stats_evidence: dict[str, float] | None = None
        diversity = rec.get("Probe/diversity")
        if diversity is not None:
            threshold = cfg.collapse_diversity
            best = self._diversity_best
            if best is not None and best >= cfg.diversity_reached:
                threshold = max(threshold, cfg.collapse_keep * min(best, 1.0))
            history = self._values("Probe/diversity", 6)
            rising = len(history) == 6 and _median(history[3:]) > 1.2 * _median(history[:3])
            if diversity < threshold and not rising:
                stats_evidence = {"Probe/diversity": diversity, "Probe/diversity_median": _median(history[-3:])}
                if best is not None:
                    stats_evidence["Probe/diversity_best"] = best
        elif not self._metric_seen:
            return None
        if stats_evidence is None and self._metric_collapse is None:
            return _Verdict(False)
        return self._collapse_verdict(stats_evidence, self._metric_collapse)

    def _collapse_verdict(self, stats: dict[str, float] | None, metrics: dict[str, float] | None) -> _Verdict:
        cfg = self.config
        evidence: dict[str, float] = {}
        parts = []
        severe = False
        early = False
        if stats is not None:
            evidence.update(stats)
            now = stats["Probe/diversity_median"]
            best = stats.get("Probe/diversity_best")
            # a generator that starts out drawing near-identical samples and has never spread out yet is
            # common and usually passes within the first thousand steps or two: a warning then, an error if it lasts
            early = ((self._last_step or 0) < cfg.early_collapse_steps
                     and (best is None or best < cfg.diversity_reached))
            severe |= now < cfg.severe_diversity and not early
            parts.append(f"sample diversity is {now:.2f} of the real data's"
                         + (f" (best {best:.2f})" if best is not None else ""))
        if metrics is not None:
            evidence.update(metrics)
            severe |= bool(metrics.get("severe", 0.0))
            evidence.pop("severe", None)
            for key, value in metrics.items():
                if key.endswith("/of"):
                    name = key[:-3]
                    parts.append(f"{name} is {metrics[name]:.0f} of {value:.0f}")
                elif key.endswith("/best"):
                    name = key[:-5]
                    parts.append(f"{name} fell to {metrics[name]:.3g} from {value:.3g}")
        message = f"The generator has collapsed onto a few modes: {'; '.join(parts)}."
        if early and not severe:
            message += (f" It has not been diverse yet at step {self._last_step}: many runs start like this and "
                        f"spread out within the first thousand steps or two; an error if it lasts past step "
                        f"{cfg.early_collapse_steps}.")
        return _Verdict(True, "error" if severe else "warning", message, evidence, ADVICE["mode_collapse"])

    def _metric_count(self, name: str, extra: dict[str, Any]) -> float | None:
        """How many classes or modes a coverage count is out of."""
        if name.startswith("classes_covered"):
            histogram = extra.get("histogram")
            if isinstance(histogram, list) and histogram:
                return float(len(histogram))
            return float(self.n_classes if self.n_classes > 0 else 10)
        if name.startswith(("modes_visited", "stacked_modes")):
            n = _number(extra.get("n_modes"))
            return n if n is not None and n > 0 else None
        return None

    def _collapse_from_metrics(self) -> dict[str, float] | None:
        """Collapse evidence from the latest evaluations, or None when they show none."""
        cfg = self.config
        evidence: dict[str, float] = {}
        severe = False
        for name, series in self._metrics.items():
            if not series or not _collapse_metric(name):
                continue
            step, value, count = series[-1]
            if not math.isfinite(value):
                continue
            if count is not None and name.startswith(("classes_covered", "modes_visited", "stacked_modes")):
                low = value < cfg.classes_fraction * count
                previous = series[-2] if len(series) >= 2 else None
                if previous is None:
                    confirmed = False  # one low evaluation early on may be a generator still learning
                elif previous[1] < cfg.classes_fraction * count:
                    confirmed = value <= previous[1]  # low twice and not recovering
                else:
                    confirmed = True  # just fell from a good value
                if low and confirmed:
                    evidence[name], evidence[f"{name}/of"] = value, count
                    severe |= value < 0.5 * count
            elif name.startswith(("coverage_", "recall_")):
                earlier = [m[1] for m in series[:-1] if math.isfinite(m[1])]
                best = max(earlier) if earlier else None
                if best is not None and best >= 0.2 and value < cfg.coverage_drop * best:
                    evidence[name], evidence[f"{name}/best"] = value, best
        if not evidence:
            return None
        evidence["severe"] = 1.0 if severe else 0.0
        return evidence

    def _check_oscillation(self) -> _Verdict | None:
        cfg = self.config
        after = self.warmup_steps
        candidates: list[tuple[str, list[tuple[int, float]], bool, float]] = []
        if self.family in ("logistic", "least_squares"):
            candidates.append(("Loss/G", self._series("Loss/G", cfg.osc_window, after=after), True,
                               cfg.osc_loss_amplitude))
        if self.family in ("logistic", "hinge"):
            candidates.append(("D/balanced_accuracy", self._balanced_series(cfg.osc_window), False,
                               cfg.osc_acc_amplitude))
        swd = self._series("Probe/swd", cfg.osc_window, after=after)
        candidates.append(("Probe/swd", swd, True, cfg.osc_swd_amplitude))
        evaluable = 0
        swinging: list[tuple[str, dict[str, float], int]] = []
        for name, series, relative, threshold in candidates:
            if len(series) < cfg.osc_window:
                continue
            evaluable += 1
            result = _swing(series, relative, threshold, cfg.osc_crossings)
            if result is not None:
                swinging.append((name, *result))
        if not evaluable:
            return None
        if len(swinging) < min(cfg.osc_signals, evaluable):
            return _Verdict(False)  # one noisy series alone is not the coupled swing of D and G
        if len(swd) >= 6:
            third = len(swd) // 3
            if _median([v for _, v in swd[-third:]]) <= 0.8 * _median([v for _, v in swd[:third]]):
                return _Verdict(False)  # quality still improving through the swings: not a failure
        name, stats, _ = swinging[0]
        first = min(step for _, _, step in swinging)
        evidence: dict[str, float] = {}
        for other, other_stats, _ in swinging:
            evidence.update({f"{other}/{k}": v for k, v in other_stats.items()})
        others = [other for other, _, _ in swinging[1:]]
        message = (f"{name}{' (with ' + ', '.join(others) + ')' if others else ''} keeps swinging without settling "
                   f"({stats['crossings']:.0f} swings between "
                   f"{stats['p10']:.3g} and {stats['p90']:.3g} over the last {cfg.osc_window} logs) and sample "
                   "quality is not improving.")
        return _Verdict(True, "warning", message, evidence, ADVICE["oscillation"], first_step=first)

    def _check_equilibrium(self) -> _Verdict | None:
        cfg = self.config
        track = self._tracks["healthy_equilibrium"]
        is_open = track.open is not None
        if self._problem_open():
            return _Verdict(False)
        evidence: dict[str, float] = {}
        # (1) D balanced
        if self.family in ("logistic", "hinge"):
            balanced = [v for _, v in self._balanced_series(cfg.window)]
            if len(balanced) < cfg.window:
                return None
            level = _median(balanced)
            half = len(balanced) // 2
            climb = statistics.fmean(balanced[half:]) - statistics.fmean(balanced[:half])
            ok = cfg.balanced_low <= level <= cfg.balanced_high and climb <= 0.1
            evidence["D/balanced_accuracy"] = level
            balance_text = f"D's balanced accuracy is {level:.2f}"
        elif self.family == "least_squares":
            margins = self._values("D/margin", cfg.window, after=self.warmup_steps)
            losses = self._values("Loss/D", cfg.window, after=self.warmup_steps)
            if len(margins) < cfg.window or not losses:
                return None
            level = _median(margins)
            ok = level <= 0.7 and _median(losses) > cfg.d_loss_low / 2
            evidence["D/margin"] = level
            balance_text = f"D's margin is {level:.2f} of the 1 a perfect LSGAN discriminator reaches"
        else:
            ok = self._tracks["discriminator_wins"].open is None
            balance_text = "the critic does not dominate"
        q = self._quality()
        if q.swd_ratio is None and not (q.fd_ratio is not None and q.fd_count >= 2):
            return None
        evidence.update(q.evidence())
        diverse = q.diversity is None or q.diversity >= cfg.eq_diversity
        if is_open:
            hit = ok and diverse and q.improved(cfg.eq_hold_ratio)
        else:
            if q.swd_ratio is not None:
                plateau = q.swd_gain is not None and q.swd_gain < cfg.plateau_gain
            else:
                plateau = q.fd_gain is not None and q.fd_gain < cfg.plateau_gain
            hit = ok and diverse and plateau and q.improved(cfg.improved_ratio)
        if not hit:
            return _Verdict(False)
        if q.swd_ratio is not None and q.swd_ref is not None and q.swd_now is not None:
            quality_text = f"Probe/swd fell {1 / max(q.swd_ratio, 1e-12):.1f}x ({q.swd_ref:.3g} to {q.swd_now:.3g})"
        else:
            factor = 1 / max(q.fd_ratio or 1e-12, 1e-12)
            quality_text = f"{q.fd_name} fell {factor:.1f}x ({q.fd_first:.3g} to {q.fd_now:.3g})"
        message = (f"Healthy equilibrium: {balance_text}, {quality_text} and has levelled off"
                   + (f", diversity {q.diversity:.2f}" if q.diversity is not None else "") + ".")
        return _Verdict(True, "info", message, evidence, ADVICE["healthy_equilibrium"])


def _collapse_metric(name: str) -> bool:
    # modes_visited, not modes_captured: a blurry generator visits every mode but captures none (imprecision,
    # not collapse); modes_captured counts only high-quality samples
    return name.startswith(("classes_covered", "modes_visited", "stacked_modes", "coverage_", "recall_"))


def _swing(
    series: list[tuple[int, float]], relative: bool, threshold: float, min_crossings: int
) -> tuple[dict[str, float], int] | None:
    """Wide, repeated swings of a series: (stats, step of the first swing) or None.

    Amplitude is p90 - p10 (robust to one spike), relative to |median| when ``relative``.
    Repetition counts crossings between the bands a quarter-amplitude above and below the
    median, so noise inside the bands and a single trend or jump do not count. The swings begin
    at the last out-of-band record before the first crossing.
    """
    values = sorted(v for _, v in series)
    median = _median(values)
    p10, p90 = _percentile(values, 10), _percentile(values, 90)
    amplitude = p90 - p10
    scale = abs(median) if relative else 1.0
    if scale <= 0 or amplitude / scale < threshold:
        return None
    upper, lower = median + amplitude / 4, median - amplitude / 4
    spacing = (series[-1][0] - series[0][0]) / max(len(series) - 1, 1)
    side, crossings, first, last_outside = 0, 0, None, 0
    for step, value in series:
        now = 1 if value > upper else (-1 if value < lower else 0)
        if now == 0:
            continue
        if side != 0 and now != side:
            crossings += 1
            if first is None:
                # the extreme the first swing left from; after a long drift inside the bands (a trend
                # before the swings), the crossing itself
                first = last_outside if step - last_outside <= 2.5 * spacing else step
        side, last_outside = now, step
    if crossings < min_crossings or first is None:
        return None
    stats = {"p10": p10, "p90": p90, "median": median, "crossings": float(crossings)}
    return stats, first


# ---------------------------------------------------------------------------------------------
# Run directories


def diagnose(run_dir: str | os.PathLike, config: DoctorConfig | None = None) -> list[Finding]:
    """Replay ``run_dir``'s stats.jsonl and metrics.jsonl (interleaved by step) through a doctor; return its history.

    The loss, the class count (``spec.n_classes``) and ``total_steps`` come from config.json when it
    exists. Raises FileNotFoundError when the directory holds neither stats.jsonl nor metrics.jsonl.
    """
    run = Path(run_dir)
    stats_path, metrics_path = run / "stats.jsonl", run / "metrics.jsonl"
    if not stats_path.is_file() and not metrics_path.is_file():
        raise FileNotFoundError(f"{run} holds no stats.jsonl: give the --out directory of a `ganforge train` run")
    settings: dict[str, Any] = {}
    try:
        settings = json.loads((run / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    run_config = settings.get("config") or {}
    spec = settings.get("spec") or {}
    doctor = Doctor(
        config,
        loss=str(run_config.get("loss", "non_saturating")),
        n_classes=int(spec.get("n_classes") or 0),
        total_steps=settings.get("total_steps"),
    )
    events: list[tuple[float, int, int, dict[str, Any]]] = []
    if stats_path.is_file():
        for i, record in enumerate(read_jsonl(stats_path)):
            step = _number(record.get("step"))
            events.append((step if step is not None else math.inf, 0, i, record))
    if metrics_path.is_file():
        for i, record in enumerate(read_jsonl(metrics_path)):
            step = _number(record.get("step"))
            events.append((step if step is not None else math.inf, 1, i, record))
    events.sort(key=lambda e: e[:3])  # at equal steps, the stats line first: evaluation follows the log
    for _, kind, _, record in events:
        (doctor.observe_metric if kind else doctor.observe)(record)
    return doctor.history()


def read_doctor_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``run_dir``/doctor.jsonl (or of that file itself), in order; [] when there is none.

    Lines are ``{"kind": "finding", ...}`` (a :meth:`Finding.to_dict` plus ``time``; a finding still
    going on may appear again with a later ``last_step``) or ``{"kind": "action", ...}``. A torn or
    unreadable line (a writer killed mid-line) is skipped. Non-finite evidence comes back as floats.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "doctor.jsonl"
    if not path.is_file():
        return []
    records = []
    for record in read_jsonl(path):
        if isinstance(record.get("evidence"), dict):
            record["evidence"] = from_json_safe(record["evidence"])
        records.append(record)
    return records


def format_findings(findings: list[Finding]) -> str:
    """A human-readable block: one paragraph per finding, worst first within equal start steps."""
    if not findings:
        return "no findings"
    lines = []
    width = 100
    for f in sorted(findings, key=lambda f: (f.step, -_RANK.get(f.severity, 0))):
        span = f"step {f.step}" if f.last_step == f.step else f"steps {f.step}-{f.last_step}"
        lines.append(f"[{f.severity.upper()}] {f.code} ({span})")
        lines.extend(textwrap.wrap(f.message, width, initial_indent="  ", subsequent_indent="  "))
        if f.evidence:
            evidence = ", ".join(f"{k}={v:.4g}" for k, v in f.evidence.items())
            lines.extend(textwrap.wrap(f"evidence: {evidence}", width, initial_indent="  ",
                                       subsequent_indent="    "))
        if f.advice:
            lines.extend(textwrap.wrap(f"what to do: {f.advice}", width, initial_indent="  ",
                                       subsequent_indent="    "))
        lines.append("")
    return "\n".join(lines).rstrip()
