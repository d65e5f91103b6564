"""Does ganforge's class-conditional GAN help a classifier trained on few labels? (issue 7, part B)

    nice -n 10 python bench/augment.py --data-dir DIR [--labels 60,10] [--seeds 0,1,2] [--steps 600]

Protocol: Fashion-MNIST; for each labels-per-class setting and subset seed, draw a stratified labelled subset
of the training split, fit an `Augmenter` (conditional DCGAN + DiffAugment + spectral norm + minibatch std
+ EMA) on it, and train the same classifier with the same recipe in every arm (a fixed 1000 steps with a
cosine learning rate on every labelled image; no tuning on the test set): real only; real + classic
augmentation (shifts, flips); real + ganforge synthetic at several ratios; real + judge-filtered synthetic;
real + classic + synthetic; synthetic only (classification accuracy score). Accuracy on the 10k test set,
mean ± sd over seeds. Writes bench/results/augment.md and augment.json after every (setting, seed), so a
cut-short run still reports; ``--resume`` skips the units already in augment.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganforge.apps.augment import Augmenter, ClassifierRecipe, default_arms, run_arms, select_subset, synthetic_sets
from ganforge.data import load

RESULTS = Path(__file__).parent / "results"


def run_unit(args: argparse.Namespace, train, test, labels_per_class: int, seed: int, recipe: ClassifierRecipe,
             work: Path) -> dict:
    y_all = train.labels.numpy()
    idx = select_subset(y_all, labels_per_class, seed)
    x, y = train.images.numpy()[idx], y_all[idx]
    arms = default_arms(args.ratios, args.min_confidence)
    t0 = time.time()
    out = work / f"lpc{labels_per_class}-seed{seed}"
    if (out / "augmenter.json").exists():  # a finished GAN from an interrupted bench: reuse it
        augmenter = Augmenter.load(out)
        assert augmenter.settings()["steps"] == args.steps, f"{out} was trained with other settings"
    else:
        if out.exists():  # a GAN cut short by an interrupted bench: start it again
            shutil.rmtree(out)
        augmenter = Augmenter(steps=args.steps, seed=seed, width=args.width, threads=1, progress=True, out=out,
                              sample_every=max(250, args.steps // 4), checkpoint_every=args.steps).fit(x, y)
    gan_s = time.time() - t0
    sets = synthetic_sets(augmenter, arms, labels_per_class, seed, args.min_confidence)
    acceptance = {str(k): round(v, 4) for k, v in getattr(augmenter, "acceptance", {}).items()}
    rows = run_arms(arms, x, y, test.images.numpy(), test.labels.numpy(), sets, recipe=recipe, seed=seed)
    return {"labels_per_class": labels_per_class, "seed": seed, "gan_seconds": round(gan_s, 1),
            "total_seconds": round(time.time() - t0, 1), "gan_run": str(augmenter.run_dir), "arms": rows,
            "judge_acceptance_per_class": acceptance, "date": time.strftime("%Y-%m-%d %H:%M")}


def summarise(units: list[dict]) -> dict[int, list[dict]]:
    table: dict[int, list[dict]] = {}
    for lpc in sorted({u["labels_per_class"] for u in units}, reverse=True):
        per_arm: dict[str, list[float]] = {}
        for unit in (u for u in units if u["labels_per_class"] == lpc):
            for row in unit["arms"]:
                per_arm.setdefault(row["arm"], []).append(row["test_accuracy"])
        table[lpc] = [{"arm": arm, "mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
                       "n": len(v), "values": v} for arm, v in per_arm.items()]
    return table


def verdict(rows: list[dict]) -> str:
    full = max(r["n"] for r in rows)
    rows = [r for r in rows if r["n"] == full]  # an arm measured on fewer seeds has no comparable sd
    real = [r for r in rows if not any(k in r["arm"] for k in ("ganforge", "synthetic"))]
    gan = [r for r in rows if "ganforge" in r["arm"]]
    if not real or not gan:
        return "incomplete"
    best_real = max(real, key=lambda r: r["mean"])
    best_gan = max(gan, key=lambda r: r["mean"])
    margin = best_gan["mean"] - best_real["mean"]
    sd = max(best_real["sd"], best_gan["sd"])
    ok = margin > 2 * sd
    return (f"best ganforge arm **{best_gan['arm']}** {best_gan['mean']:.2%} vs best real-only arm "
            f"**{best_real['arm']}** {best_real['mean']:.2%}: margin {margin * 100:+.2f} points, 2 sd = "
            f"{2 * sd * 100:.2f} points → target {'met' if ok else 'NOT met'}")


def write(units: list[dict], meta: dict, name: str = "augment") -> None:
    RESULTS.mkdir(exist_ok=True)
    table = summarise(units)
    (RESULTS / f"{name}.json").write_text(json.dumps({**meta, "units": units, "summary": table}, indent=2) + "\n")
    lines = ["# GAN data augmentation for few-label Fashion-MNIST (`bench/augment.py`)", "",
             f"Machine: {meta['machine']}; date: {meta['date']}; torch {meta['torch']}, 1 thread, `nice -n 10`.",
             f"GAN: {meta['gan']}.", f"Classifier: {meta['classifier']}.",
             "Synthetic ratio = synthetic images per real labelled image. Filtered arm: synthetic images a judge "
             "trained on the labelled subset assigns to their class with the confidence in the arm's name (a class "
             "short of them is topped up with its most confident samples; acceptance per class in augment.json). "
             "Test set: the 10,000 Fashion-MNIST test images.", ""]
    for lpc, rows in table.items():
        seeds = sorted(u["seed"] for u in units if u["labels_per_class"] == lpc)
        lines += [f"## {lpc} labelled images per class (subset seeds {seeds})", "",
                  "| arm | test accuracy (mean ± sd) | per seed |", "|---|---|---|"]
        lines += [f"| {r['arm']} | {r['mean']:.2%} ± {r['sd']:.2%} | "
                  f"{', '.join(f'{v:.2%}' for v in r['values'])} |" for r in rows]
        lines += ["", verdict(rows) + " (arms measured on every seed only)", ""]
    lines += ["An arm with fewer per-seed values than the others ran on those seeds only (a run resumed with other "
              "arms, e.g. `--min-confidence 0` to drop the filtered arm); the verdicts compare arms measured on "
              "every seed. Per-seed details (classifier steps, judge acceptance per class, "
              "GAN time; a GAN time near 0 means a finished GAN was reused) are in `augment.json`.", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"), help="folder with fashion_mnist.npz")
    p.add_argument("--labels", default="60,10", help="labels-per-class settings (default 60,10)")
    p.add_argument("--seeds", default="0,1,2", help="subset seeds (default 0,1,2)")
    p.add_argument("--steps", type=int, default=600, help="GAN training steps (default 600)")
    p.add_argument("--width", type=int, default=32, help="DCGAN ngf = ndf (default 32)")
    p.add_argument("--ratios", default="1,2", help="synthetic per real labelled image (default 1,2)")
    p.add_argument("--min-confidence", type=float, default=0.9,
                   help="the filtered arm's judge threshold (0: no filtered arm)")
    p.add_argument("--max-steps", type=int, default=1000, help="classifier steps (default 1000)")
    p.add_argument("--results-name", default="augment", help="results file stem under bench/results (default "
                   "augment); run --labels 60 and --labels 10 in parallel under two names, then --merge them")
    p.add_argument("--merge", nargs="+", metavar="NAME", help="merge these results files' units into --results-name")
    p.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "ganforge-bench-augment"),
                   help="where the GAN runs are kept (default: a folder in the system's temp dir)")
    p.add_argument("--resume", action="store_true", help="keep the units already in augment.json")
    args = p.parse_args()
    if not args.data_dir:
        print("give --data-dir DIR (or $GANFORGE_DATA) holding fashion_mnist.npz", file=sys.stderr)
        return 2
    args.ratios = [float(r) for r in args.ratios.split(",")]
    if args.min_confidence == 0:
        args.min_confidence = None
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    train = load("fashion_mnist", "train", data_dir=args.data_dir)
    test = load("fashion_mnist", "test", data_dir=args.data_dir)
    recipe = ClassifierRecipe(max_steps=args.max_steps, flip=True)
    if args.merge:
        first = json.loads((RESULTS / f"{args.merge[0]}.json").read_text())
        meta = {k: v for k, v in first.items() if k not in ("units", "summary")}
        units = [u for name in args.merge for u in json.loads((RESULTS / f"{name}.json").read_text())["units"]]
        write(units, meta, args.results_name)
        print((RESULTS / f"{args.results_name}.md").read_text())
        return 0
    meta = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus (shared 2-core CPU box)",
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "gan": f"conditional DCGAN ngf=ndf={args.width}, {args.steps} steps of 64, DiffAugment "
                   "color,translation,cutout, spectral norm + minibatch std in D, G EMA 0.99, Adam 2e-4 (0.5, 0.999)",
            "classifier": recipe.describe() + "; classic augmentation: ±2 px shifts + horizontal flips",
            "min_confidence": args.min_confidence, "ratios": args.ratios,
            "settings": vars(args) | {"ratios": args.ratios}}
    units: list[dict] = []
    if args.resume and (RESULTS / f"{args.results_name}.json").exists():
        units = json.loads((RESULTS / f"{args.results_name}.json").read_text())["units"]
    work = Path(args.work_dir)
    for lpc in (int(v) for v in args.labels.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            if any(u["labels_per_class"] == lpc and u["seed"] == seed for u in units):
                continue
            print(f"== {lpc} per class, seed {seed}", file=sys.stderr, flush=True)
            units.append(run_unit(args, train, test, lpc, seed, recipe, work))
            write(units, meta, args.results_name)
            for row in units[-1]["arms"]:
                print(f"{lpc:3d} s{seed} {row['arm']:<45} {row['test_accuracy']:.4f} (step {row['steps']})",
                      flush=True)
    print((RESULTS / f"{args.results_name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
