"""The doctor in the training loop: live findings in ``doctor.jsonl``, and optional remedies.

`DoctorCallback` feeds every stats flush (and every evaluation's scores) to a
`ganforge.monitor.doctor.Doctor`, writes each new finding to ``doctor.jsonl`` and the terminal,
can stop the run at a healthy equilibrium (``--stop-at-equilibrium``) and, with
``--auto-remedy``, acts on a failure: it rolls back to the newest checkpoint written before the
problem began and/or switches on a stabiliser or changes a learning rate, following a fixed
ladder per problem (below). Every action is a ``{"kind": "action"}`` line in ``doctor.jsonl``.

The doctor itself lives in ``monitor/`` and only reads numbers; acting on the step and the
optimisers is training's business, so it lives here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ganforge.metrics.protocol import read_scores
from ganforge.monitor.doctor import Doctor, Finding
from ganforge.monitor.stats import read_jsonl, read_stats
from ganforge.train.config import RunConfig
from ganforge.train.trainer import Callback, StopTraining, Trainer

DOCTOR_FILE = "doctor.jsonl"
MAX_ACTIONS = 6  # remedies per run: past this, the doctor only reports (a run that needs more needs a human)

# What --auto-remedy does for each problem, in order of escalation (one rung per new finding of that code).
# Each rung: (roll back to before the problem?, {setting: change}); a change is ("scale", factor) for a
# learning rate, ("set", value) for a stabiliser of the step, or ("noise", sigma): instance noise of std
# sigma from the current step, annealed linearly to 0 over the rest of the run.
LADDER: dict[str, list[tuple[bool, dict[str, tuple[str, Any]]]]] = {
    "divergence": [
        (True, {"lr_g": ("scale", 0.5), "lr_d": ("scale", 0.5)}),
        (True, {"lr_g": ("scale", 0.5), "lr_d": ("scale", 0.5), "instance_noise": ("noise", 0.1)}),
    ],
    "discriminator_wins": [
        (False, {"instance_noise": ("noise", 0.1), "lr_d": ("scale", 0.5)}),
        (False, {"r1_weight": ("set", 1.0)}),
    ],
    "mode_collapse": [
        (True, {"augment": ("set", "translation,cutout"), "lr_g": ("scale", 0.5)}),
        (True, {"instance_noise": ("noise", 0.1), "lr_g": ("scale", 0.5)}),
    ],
    "oscillation": [
        (False, {"lr_g": ("scale", 0.5), "lr_d": ("scale", 0.5)}),
    ],
    "discriminator_not_learning": [
        (False, {"lr_d": ("scale", 2.0)}),
        (False, {"lr_d": ("scale", 2.0)}),
    ],
}


def _optimizer_for(setting: str) -> str:
    return {"lr_g": "generator", "lr_d": "discriminator"}[setting]


class DoctorCallback(Callback):
    """Run the doctor during training; see the module docstring."""

    def __init__(self, config: RunConfig, run_dir: str | Path, *, n_classes: int, total_steps: int,
                 is_image: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DOCTOR_FILE
        self.n_classes = n_classes
        self.total_steps = total_steps
        self.is_image = is_image
        self.rungs: dict[str, int] = {}
        self.actions = 0
        self.doctor = self._new_doctor()

    def _new_doctor(self) -> Doctor:
        return Doctor(loss=self.config.loss, n_classes=self.n_classes, total_steps=self.total_steps)

    # --- replaying what is on disk (resume, rollback) ---------------------------------------------------
    def _replay(self, up_to: int) -> None:
        """Rebuild the doctor's state from stats.jsonl/metrics.jsonl up to step ``up_to``, silently."""
        self.doctor = self._new_doctor()
        records: list[tuple[int, int, dict]] = []
        stats = self.run_dir / "stats.jsonl"
        if stats.exists():
            records += [(int(r["step"]), 0, r) for r in read_stats(stats) if int(r["step"]) <= up_to]
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists():
            records += [(int(r["step"]), 1, r) for r in read_scores(metrics)
                        if r.get("step") is not None and int(r["step"]) <= up_to]
        for _, kind, rec in sorted(records, key=lambda t: (t[0], t[1])):
            (self.doctor.observe_metric if kind else self.doctor.observe)(rec)

    def _load_log(self) -> list[dict]:
        return list(read_jsonl(self.path)) if self.path.exists() else []  # as written: non-finite values as strings

    def on_start(self, trainer: Trainer) -> None:
        if trainer.step > 0:  # resumed: findings after the checkpoint belong to the part being redone
            kept = [r for r in self._load_log() if r.get("kind") == "action"
                    or (int(r.get("step", 0)) <= trainer.step and not r.get("final"))]  # end-of-session summaries go
            tmp = self.path.with_name(DOCTOR_FILE + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
            tmp.replace(self.path)
            for r in kept:
                if r.get("kind") == "action":
                    self.actions += 1
                    code = r.get("because", "")
                    self.rungs[code] = self.rungs.get(code, 0) + 1
            self._replay(trainer.step)

    def on_restore(self, trainer: Trainer, step: int) -> None:
        self._replay(step)

    # --- live -------------------------------------------------------------------------------------------
    def _write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _announce(self, trainer: Trainer, findings: list[Finding]) -> None:
        for f in findings:
            self._write({**f.to_dict(), "kind": "finding", "time": round(time.time(), 3)})
            if self.config.progress or f.severity != "info":
                tqdm.write(f"doctor [{f.severity}] step {f.step}: {f.code}: {f.message}"
                           + (f" → {f.advice}" if f.severity != "info" else ""))

    def _after(self, trainer: Trainer, findings: list[Finding]) -> None:
        self._announce(trainer, findings)
        if self.config.auto_remedy:
            for f in findings:
                if f.severity in ("warning", "error") and self._remedy(trainer, f):
                    break  # one action per flush; a rollback changes what the other findings meant
        if self.config.stop_at_equilibrium and any(f.code == "healthy_equilibrium" for f in self.doctor.active()):
            raise StopTraining(f"healthy equilibrium reached at step {trainer.step} (--stop-at-equilibrium)")

    def on_log(self, trainer: Trainer, step: int, means: dict[str, float]) -> None:
        self._after(trainer, self.doctor.observe({"step": step, **means}))

    def on_eval(self, trainer: Trainer, step: int, value: float) -> None:
        metrics = self.run_dir / "metrics.jsonl"
        if not metrics.exists():
            return
        new: list[Finding] = []
        for rec in read_scores(metrics):
            if rec.get("step") == step:
                new += self.doctor.observe_metric(rec)
        self._after(trainer, new)

    def on_end(self, trainer: Trainer) -> None:
        """Close the record: each episode's final extent (``last_step``), so the log and the report show
        how long every problem lasted, not only when it was first seen."""
        for f in self.doctor.history():
            self._write({**f.to_dict(), "kind": "finding", "final": True, "time": round(time.time(), 3)})

    # --- remedies -----------------------------------------------------------------------------------------
    def _remedy(self, trainer: Trainer, finding: Finding) -> bool:
        ladder = LADDER.get(finding.code)
        rung = self.rungs.get(finding.code, 0)
        if not ladder or rung >= len(ladder) or self.actions >= MAX_ACTIONS:
            return False
        rollback, changes = ladder[rung]
        detail: dict[str, Any] = {}
        if rollback:
            target = [c for c in trainer.run.checkpoint_list() if c.step < finding.step]
            if target:
                ckpt = max(target, key=lambda c: c.step)
                before = trainer.step
                trainer.rollback(ckpt.path)  # calls on_restore: the doctor forgets what came after
                trainer.bar.n = trainer.step
                trainer.bar.refresh()
                detail["rollback"] = {"from_step": before, "to_step": trainer.step, "checkpoint": ckpt.path.name}
        step_obj = trainer.step_fn
        for key, (how, value) in changes.items():
            if key in ("lr_g", "lr_d"):
                opt = trainer.step_fn.optimizers()[_optimizer_for(key)]
                old = opt.param_groups[0].get("base_lr", opt.param_groups[0]["lr"])
                for group in opt.param_groups:  # the base rate: a decay schedule multiplies it
                    base = group.get("base_lr", group["lr"])
                    group["base_lr"] = base * value if how == "scale" else value
                    group["lr"] = group["base_lr"] * trainer.lr_factor()
                detail[key] = [old, opt.param_groups[0]["base_lr"]]
            else:
                available = step_obj.settings() if hasattr(step_obj, "settings") else {}
                if key == "augment" and (not self.is_image or "augment" not in available):
                    key, how, value = "instance_noise", "noise", 0.1  # DiffAugment is for images; noise suits any
                if key == "label_smoothing" and self.config.loss not in ("non_saturating", "minimax", "lsgan"):
                    continue
                if key not in available:  # e.g. label smoothing for a video model: say so, change nothing
                    detail[key] = "not available for this model"
                    continue
                old = available.get(key)
                if how == "noise":  # instance noise from now, annealed to 0 over the rest of the run
                    step_obj.load_settings({"instance_noise_start": trainer.step,
                                            "instance_noise_steps": max(1, trainer.total_steps - trainer.step)})
                step_obj.load_settings({key: value})
                detail[key] = [old, step_obj.settings().get(key)]
        self.rungs[finding.code] = rung + 1
        self.actions += 1
        record = {"kind": "action", "step": trainer.step, "time": round(time.time(), 3),
                  "action": "rollback+set" if "rollback" in detail else "set", "detail": detail,
                  "because": finding.code}
        self._write(record)
        tqdm.write(f"doctor: auto-remedy for {finding.code}: {json.dumps(detail)}")
        return True
