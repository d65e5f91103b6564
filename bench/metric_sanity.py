"""What the metrics say about known cases: real vs real, real vs another dataset, trained runs.

    python bench/metric_sanity.py --data-dir DIR [--runs RUN_DIR ...] [--n 5000]

Real vs real compares the two halves of the MNIST test split (what a perfect generator would
score at this sample size); real vs other compares MNIST test images with Fashion-MNIST test
images; each run is scored from its newest checkpoint. All in the MNIST judge's features,
with one protocol per row printed beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ganforge.data import load  # noqa: E402
from ganforge.metrics.evaluate import evaluate, make_extractor  # noqa: E402
from ganforge.train.evaluation import evaluate_run  # noqa: E402

METRICS = ["fd", "kid", "prdc", "modes"]


def row(name: str, scores) -> str:
    v = {s.metric.rsplit("_mnist_cnn", 1)[0]: s.value for s in scores}
    return (f"| {name} | {v['fd']:.3f} | {v['kid']:.5f} | {v['precision']:.3f} | {v['recall']:.3f} | "
            f"{v['density']:.3f} | {v['coverage']:.3f} | {v['classes_covered']:.0f} | "
            f"{scores[0].protocol.describe()} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "metric_sanity.md"))
    args = p.parse_args()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    mnist = load("mnist", split="test", data_dir=args.data_dir)
    fashion = load("fashion_mnist", split="test", data_dir=args.data_dir)
    extractor = make_extractor("mnist", "image", "judge", data_dir=args.data_dir)
    judge = extractor[1]
    perm = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(0))
    half_a, half_b = mnist.to_float()[perm[: args.n]], mnist.to_float()[perm[args.n : 2 * args.n]]
    lines = [
        "# Metric sanity: MNIST judge features",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}; judge {judge.name} (weights sha256 {judge.weights_hash[:16]}…), "
        f"test accuracy {judge.test_accuracy:.4f}",
        f"- command: `python bench/metric_sanity.py --n {args.n} --runs {' '.join(args.runs)}`",
        "",
        "| fake vs real | fd | kid | precision | recall | density | coverage | classes covered | protocol |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    kw = dict(dataset="mnist", metrics=METRICS, extractor=extractor, seed=0, progress=False)
    lines.append(row("MNIST test half A vs half B", evaluate(half_a, half_b, reference="mnist:test half B", **kw)))
    lines.append(row("Fashion-MNIST test vs MNIST test", evaluate(fashion.to_float()[: args.n], half_b,
                                                                   reference="mnist:test half B", **kw)))
    for run in args.runs:
        scores = evaluate_run(run, metrics=METRICS, n=args.n, extractor=extractor, progress=False, write=False)
        lines.append(row(f"{run} (step {scores[0].step})", scores))
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
