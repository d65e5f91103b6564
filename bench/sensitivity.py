"""Hyperparameter sensitivity: how often does a random setting train, with plain defaults vs a preset?

N settings are drawn from the wide space of Lucic et al. 2018 ("Are GANs created equal?"):
learning rate log-uniform in [1e-5, 1e-2] (the same for G and D), Adam beta1 uniform in [0, 1),
n_critic uniform in {1..5}. Each setting trains the same DCGAN on scikit-learn's digits (16x16)
twice: once as it is ("plain": non-saturating loss, nothing else) and once on top of a preset
(default: `--preset robust`). A run *succeeds* when its generator covers at least ``--min-classes``
(8) of the 10 digit classes (as told by ganforge's digits judge) and its fd in that judge's features is at most
``--fd-factor`` (2) times the fd of the reference run: the plain recipe at its own defaults
(lr 2e-4, beta1 0.5, n_critic 1), trained and scored the same way first.

    python bench/sensitivity.py [--draws 20] [--steps 1500] [--preset robust]

Scores: 1,500 generated samples vs the 1,500 images of the digits training split (the test split
has only 297, too few for a stable Fréchet distance in 128-d features).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ganforge.train import RunConfig, train  # noqa: E402
from ganforge.train.config import preset_settings  # noqa: E402
from ganforge.train.evaluation import evaluate_run  # noqa: E402
from ganforge.train.trainer import Interrupted  # noqa: E402

BASE = dict(model="dcgan", data="digits", image_size=16, model_config={"ngf": 16, "ndf": 16, "z_dim": 64},
            batch_size=64)


def draw(rng: random.Random) -> dict:
    lr = 10 ** rng.uniform(-5, -2)
    return {"lr_g": lr, "lr_d": lr, "betas": (rng.uniform(0, 1), 0.999), "n_critic": rng.randint(1, 5)}


def run(settings: dict, steps: int, out: Path, n_eval: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    config = RunConfig(**{**BASE, **settings, "steps": steps, "seed": 0, "sample_every": steps,
                          "checkpoint_every": steps, "log_every": 50, "progress": False, "threads": 1,
                          "report": False})
    start = time.time()
    try:
        train(config, out)
        scores = evaluate_run(out, metrics=["fd", "modes"], n=n_eval, split="train", progress=False, write=False)
        values = {s.metric.replace("_digits_cnn", ""): s.value for s in scores}
    except Interrupted:
        raise  # Ctrl-C stops the benchmark, not just this run
    except Exception as e:  # a diverged run may produce NaNs the metrics refuse: that is a failure, not a crash
        values = {"fd": math.nan, "classes_covered": 0, "error": f"{type(e).__name__}: {e}"}
    values["seconds"] = round(time.time() - start, 1)
    return values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--preset", default="robust")
    p.add_argument("--fd-factor", type=float, default=2.0)
    p.add_argument("--min-classes", type=int, default=8)
    p.add_argument("--n-eval", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0, help="seed of the hyperparameter draws")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sensitivity.md"))
    p.add_argument("--from-json", help="only write the table from the .json of an earlier (possibly cut short) run")
    p.add_argument("--reference-from", help="take the reference run from an earlier run's .json (the reference is "
                   "deterministic: same steps and scoring give the same fd) instead of training it again")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="ganforge-sensitivity-"))
    preset = {k: v for k, v in preset_settings(args.preset).items()
              if k not in ("lr_g", "lr_d", "betas", "n_critic")}  # the draw decides these
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        reference, rows = saved["reference"], saved["rows"]
        threshold = args.fd_factor * reference["fd"]
    else:
        reference = json.loads(Path(args.reference_from).read_text())["reference"] if args.reference_from else run(
            {}, args.steps, root / "reference", args.n_eval)
        threshold = args.fd_factor * reference["fd"]
        print(f"reference (plain defaults): fd {reference['fd']:.2f}, classes {reference['classes_covered']:.0f}; "
              f"success = fd <= {threshold:.2f} and >= {args.min_classes} classes", flush=True)
        rows = []
    rng = random.Random(args.seed)
    for i in range(0 if args.from_json else args.draws):
        settings = draw(rng)
        row = {"draw": i, "lr": settings["lr_g"], "beta1": settings["betas"][0], "n_critic": settings["n_critic"]}
        for arm, extra in (("plain", {}), (args.preset, preset)):
            v = run({**settings, **extra}, args.steps, root / f"{i}-{arm}", args.n_eval)
            ok = bool(v["fd"] <= threshold and v["classes_covered"] >= args.min_classes)  # NaN fd compares False
            row[arm] = {**v, "success": ok}
        rows.append(row)
        print(f"draw {i:2d} lr {row['lr']:.2e} beta1 {row['beta1']:.2f} n_critic {row['n_critic']}: "
              + "  ".join(f"{arm} fd {row[arm]['fd']:.1f} classes {row[arm]['classes_covered']:.0f} "
                          f"{'OK' if row[arm]['success'] else 'fail'}" for arm in ("plain", args.preset)), flush=True)
        Path(args.out).with_suffix(".json").write_text(json.dumps({"reference": reference, "rows": rows,
                                                                   "draws": args.draws}, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    share = {arm: sum(r[arm]["success"] for r in rows) for arm in ("plain", args.preset)}
    lines = [
        f"# Hyperparameter sensitivity: plain defaults vs --preset {args.preset}",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, 1 thread",
        f"- command: `python bench/sensitivity.py --draws {args.draws} --steps {args.steps} --preset {args.preset}`"
        + (f" ({len(rows)} of the draws finished)" if len(rows) < args.draws else ""),
        f"- model: DCGAN (ngf/ndf 16, z 64) on digits 16x16, batch 64, {args.steps} steps, seed 0",
        "- space (Lucic et al. 2018): lr log-uniform [1e-5, 1e-2] for both, beta1 uniform [0, 1), n_critic {1..5}",
        f"- preset {args.preset} adds: {json.dumps(preset)}",
        f"- success: >= {args.min_classes} of 10 classes (digits judge) and fd_digits_cnn <= {args.fd_factor:g} x the "
        "reference "
        f"run's {reference['fd']:.2f} = {threshold:.2f} ({args.n_eval} samples vs the training split)",
        "",
        f"**Succeeded: plain {share['plain']}/{len(rows)}, {args.preset} {share[args.preset]}/{len(rows)}.**",
        "",
        f"| draw | lr | beta1 | n_critic | plain fd | plain classes | plain | {args.preset} fd | {args.preset} classes "
        f"| {args.preset} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = []
        for arm in ("plain", args.preset):
            cells += [f"{r[arm]['fd']:.1f}", f"{r[arm]['classes_covered']:.0f}", "ok" if r[arm]["success"] else "fail"]
        head = f"| {r['draw']} | {r['lr']:.2e} | {r['beta1']:.2f} | {r['n_critic']} | "
        lines.append(head + " | ".join(cells) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
