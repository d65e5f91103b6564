"""Does the doctor find planted failures, and stay quiet on healthy runs?

Each case is a real training run with a known defect (or none), several seeds each. After the
run, the doctor's live log (doctor.jsonl, written during training) is read:

- a failure case is *detected* when the doctor raised a warning or error finding during the
  run; it is *named right* when that finding's code is among the ones the defect should cause;
- a healthy case raises a *false alarm* when the doctor raised any warning or error finding.

    python bench/doctor.py [--seeds 0,1,2,3] [--cases NAME,...] [--out bench/results/doctor.md]

Targets (issue 4): detection >= 95 %, false alarms <= 5 %. Data: scikit-learn's digits and the
ring8/grid25 mixtures, so it runs anywhere without downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ganforge.monitor.doctor import read_doctor_log  # noqa: E402
from ganforge.train import Interrupted, RunConfig, train  # noqa: E402

PROBLEMS = {"discriminator_wins", "discriminator_not_learning", "divergence", "oscillation", "mode_collapse"}
DIGITS = dict(model="dcgan", data="digits", image_size=16, model_config={"ngf": 32, "ndf": 32, "z_dim": 64})
RING = dict(model="mlp", data="ring8", model_config={"hidden_g": (128, 128, 128), "hidden_d": (128, 128, 128),
                                                     "z_dim": 16})

RING_EVAL = dict(eval_every=250, eval_n=1000, eval_metrics=["modes"])


@dataclass
class Case:
    name: str
    what: str
    settings: dict
    expect: set[str] = field(default_factory=set)  # empty: a healthy control

    @property
    def healthy(self) -> bool:
        return not self.expect


CASES = [
    Case("lr_too_high", "DCGAN on digits with Adam lr 0.05 for both networks, beta1 0.9",
         {**DIGITS, "lr_g": 5e-2, "lr_d": 5e-2, "betas": (0.9, 0.999), "steps": 1000},
         {"divergence", "oscillation", "discriminator_wins", "mode_collapse", "discriminator_not_learning"}),
    Case("crippled_generator", "DCGAN on digits whose G has 1 channel per stage and a 1-d latent",
         {**DIGITS, "model_config": {"ngf": 1, "ndf": 32, "z_dim": 1}, "steps": 1000},
         {"discriminator_wins", "mode_collapse"}),
    Case("frozen_discriminator", "DCGAN on digits with D's learning rate 1e-12 (D never learns)",
         {**DIGITS, "lr_d": 1e-12, "steps": 1000}, {"discriminator_not_learning", "mode_collapse"}),
    Case("collapsing_ring", "plain MLP GAN on ring8 (non-saturating, Adam 1e-3, beta1 0.5): collapses onto a few "
         "modes; mode counts every 250 steps", {**RING, **RING_EVAL, "lr_g": 1e-3, "lr_d": 1e-3, "steps": 2000},
         {"mode_collapse", "oscillation"}),
    Case("healthy_ring", "MLP GAN on ring8 with R1 0.1, EMA 0.999, batch 256; mode counts every 250 steps",
         {**RING, **RING_EVAL, "r1_weight": 0.1, "ema": 0.999, "batch_size": 256, "steps": 2000}),
    Case("healthy_digits", "DCGAN on digits, defaults (Adam 2e-4, betas (0.5, 0.999))",
         {**DIGITS, "steps": 1000}),
    Case("healthy_digits_robust", "DCGAN on digits, --preset robust",
         {**DIGITS, "spectral_norm": True, "ema": 0.999, "r1_weight": 0.1, "steps": 1000}),
]


def run_case(case: Case, seed: int, root: Path) -> dict:
    out = root / f"{case.name}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    config = RunConfig(**{"batch_size": 64, "log_every": 25, "sample_every": 10**6, "checkpoint_every": 10**6,
                          "progress": False, "threads": 1, "report": False, **case.settings, "seed": seed})
    start = time.time()
    try:
        train(config, out)
        error = None
    except Interrupted:
        raise  # Ctrl-C stops the benchmark, not just this run
    except Exception as e:  # a failure case may crash outright; that counts as what it is, not as detection
        error = f"{type(e).__name__}: {e}"
    findings = [r for r in read_doctor_log(out) if r.get("kind") == "finding" and not r.get("final")] \
        if out.exists() else []
    problems = [f for f in findings if f.get("severity") in ("warning", "error")]
    codes = sorted({f["code"] for f in problems})
    first = min((f["step"] for f in problems), default=None)
    row = {"case": case.name, "seed": seed, "healthy": case.healthy, "codes": codes, "first_step": first,
           "equilibrium": any(f["code"] == "healthy_equilibrium" for f in findings), "error": error,
           "seconds": round(time.time() - start, 1)}
    if case.healthy:
        row["false_alarm"] = bool(problems)
    else:
        row["detected"] = bool(problems)
        row["named_right"] = bool(set(codes) & case.expect)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--cases", default=",".join(c.name for c in CASES))
    p.add_argument("--workdir", help="where the runs go (default: a temporary directory, removed afterwards)")
    p.add_argument("--reuse", help="a .json of an earlier run: its rows stand for the cases not run now")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "doctor.md"))
    args = p.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = args.cases.split(",")
    cases = [c for c in CASES if c.name in wanted]
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ganforge-doctor-bench-"))
    rows = [r for r in json.loads(Path(args.reuse).read_text()) if r["case"] not in wanted] if args.reuse else []
    for case in cases:
        for seed in seeds:
            row = run_case(case, seed, root)
            rows.append(row)
            verdict = ("false alarm" if row["false_alarm"] else "quiet") if case.healthy else \
                ("detected" if row["detected"] else "MISSED") + (", named right" if row.get("named_right") else "")
            print(f"{case.name:24s} seed {seed}: {verdict:26s} {','.join(row['codes']) or '-':40s} "
                  f"first step {row['first_step']}  {row['seconds']:.0f} s", flush=True)
            Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)

    cases = [c for c in CASES if any(r["case"] == c.name for r in rows)]
    fail = [r for r in rows if not r["healthy"]]
    ok = [r for r in rows if r["healthy"]]
    detection = sum(r["detected"] for r in fail) / max(1, len(fail))
    named = sum(r["named_right"] for r in fail) / max(1, len(fail))
    false_alarm = sum(r["false_alarm"] for r in ok) / max(1, len(ok))
    lines = [
        "# The doctor on planted failures and healthy controls",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, 1 thread; python {sys.version.split()[0]}",
        f"- command: `python bench/doctor.py --seeds {args.seeds}`",
        "- verdicts from the live doctor.jsonl written during each run; detected = any warning/error finding;"
        " named right = one of the codes the defect should cause",
        "",
        f"**Detection rate {detection:.0%}** ({sum(r['detected'] for r in fail)}/{len(fail)} failure runs; target "
        f">= 95%), named right {named:.0%}; **false alarms {false_alarm:.0%}** "
        f"({sum(r['false_alarm'] for r in ok)}/{len(ok)} healthy runs; target <= 5%).",
        "",
        "| case | what | expected codes | runs | detected | named right | false alarms | codes raised (per seed) |"
        " first step (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        sel = [r for r in rows if r["case"] == case.name]
        firsts = sorted(r["first_step"] for r in sel if r["first_step"] is not None)
        median = firsts[len(firsts) // 2] if firsts else "-"
        raised = "; ".join(",".join(r["codes"]) or "-" for r in sel)
        if case.healthy:
            cells = ("-", "-", f"{sum(r['false_alarm'] for r in sel)}/{len(sel)}")
        else:
            cells = (f"{sum(r['detected'] for r in sel)}/{len(sel)}",
                     f"{sum(r['named_right'] for r in sel)}/{len(sel)}", "-")
        lines.append(f"| {case.name} | {case.what} | {', '.join(sorted(case.expect)) or '(healthy)'} | {len(sel)} | "
                     + " | ".join(cells) + f" | {raised} | {median} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
