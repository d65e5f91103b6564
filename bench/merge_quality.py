"""Merge per-seed rows of several `bench/quality_mnist.py` runs (its .json files) into one table.

    python bench/merge_quality.py bench/results/quality_mnist_seed0.json bench/results/quality_mnist_seeds12.json \
        --out bench/results/quality_mnist.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

KEYS = ["steps", "fd", "kid", "precision", "recall", "density", "coverage", "classes_covered", "kl_classes"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--header", default="", help="text put above the table (machine, date, protocol)")
    args = p.parse_args()
    rows = [r for f in args.rows for r in json.loads(Path(f).read_text())]
    lines = ["# Quality at equal wall-clock budget: ganforge vs the pytorch/examples DCGAN loop", "", args.header, "",
             "| dataset | system | seeds | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 3) + "|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for system in ("ganforge", "pytorch/examples"):
            sel = [r for r in rows if r["dataset"] == dataset and r["system"] == system]
            cells = []
            for k in KEYS:
                vals = [float(r[k]) for r in sel]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.4g} ± {sd:.2g}")
            seeds = ",".join(str(r["seed"]) for r in sel)
            lines.append(f"| {dataset} | {system} | {seeds} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed:", "", "| dataset | system | seed | " + " | ".join(KEYS) + " |",
              "|---" * (len(KEYS) + 3) + "|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['system']} | {r['seed']} | "
                     + " | ".join(f"{float(r[k]):.4g}" for k in KEYS) + " |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
