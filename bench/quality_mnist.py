"""Same wall-clock budget, same model, same protocol: ganforge's DCGAN against the reference loop.

For each dataset and seed, the 28x28 DCGAN is trained twice from the same initial weights on
the same training images: once with ganforge's GANStep (non-saturating loss, Adam 2e-4,
betas (0.5, 0.999)), once with the pytorch/examples recipe (BCE, same optimiser), each until
the same wall-clock budget runs out, in alternating 5-second slices (so load from other
processes falls on both alike), in one process with the same threads. Both generators
are then scored identically: 5,000 samples from the same seeded noise, against 5,000 images
of the real test split, in the features of ganforge's domain judge (fd, kid, prdc, class
coverage).

    python bench/quality_mnist.py --data-dir DIR [--budget 90] [--seeds 0,1,2]

DIR (or $GANFORGE_DATA) must hold mnist.npz / fashion_mnist.npz (or any place ganforge.data finds them).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ganforge.data import load  # noqa: E402
from ganforge.losses import get_loss  # noqa: E402
from ganforge.metrics.evaluate import evaluate, make_extractor  # noqa: E402
from ganforge.nets import build  # noqa: E402
from ganforge.train.gan_step import GANStep  # noqa: E402
from ganforge.train.run import generate  # noqa: E402
from ganforge.train.runtime import BatchStream, configure_threads  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from plain_dcgan import PlainLoop  # noqa: E402

METRICS = ["fd", "kid", "prdc", "modes"]


def run_interleaved(step_fns: dict, budget: float, slice_seconds: float = 5.0) -> dict[str, int]:
    """Give each system ``budget`` seconds of training, in alternating slices, so that load from
    other processes on a shared machine falls on both alike."""
    spent = dict.fromkeys(step_fns, 0.0)
    steps = dict.fromkeys(step_fns, 0)
    while any(s < budget for s in spent.values()):
        for name, fn in step_fns.items():
            if spent[name] >= budget:
                continue
            start = time.perf_counter()
            while time.perf_counter() - start < min(slice_seconds, budget - spent[name]):
                fn()
                steps[name] += 1
            spent[name] += time.perf_counter() - start
    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    p.add_argument("--datasets", default="mnist,fashion_mnist")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", type=float, default=90.0, help="training seconds per model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-eval", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality_mnist.md"))
    args = p.parse_args()
    threads = configure_threads(args.threads)
    rows = []
    for dataset in args.datasets.split(","):
        train = load(dataset, split="train", data_dir=args.data_dir)
        test = load(dataset, split="test", data_dir=args.data_dir)
        extractor = make_extractor(dataset, "image", "judge", data_dir=args.data_dir)
        judge = extractor[1]
        real = test.to_float()[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.n_eval]]
        print(f"{dataset}: judge {judge.name} test accuracy {judge.test_accuracy:.4f}", flush=True)
        for seed in [int(s) for s in args.seeds.split(",")]:
            torch.manual_seed(seed)
            generator, discriminator = build("dcgan", train.spec.__class__(shape=train.spec.shape, name=dataset))
            plain = PlainLoop(copy.deepcopy(generator), copy.deepcopy(discriminator), train.images, args.batch_size,
                              seed=seed)
            opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
            step = GANStep(generator, discriminator, get_loss("non_saturating"), opt_g, opt_d,
                           noise=torch.Generator().manual_seed(seed))
            stream = BatchStream(train.images, None, args.batch_size, seed, torch.device("cpu"))
            step.measure = False

            systems = {
                "ganforge": (lambda step=step, stream=stream: step([stream.next()]), generator),
                "pytorch/examples": (plain.step, plain.netG),
            }
            torch.manual_seed(seed)
            counts = run_interleaved({name: fn for name, (fn, _) in systems.items()}, args.budget)
            for name, (_, g) in systems.items():
                n_steps = counts[name]
                z = torch.randn(args.n_eval, g.z_dim, generator=torch.Generator().manual_seed(1000 + seed))
                fake = generate(g, z, None)
                scores = evaluate(fake, real, dataset=dataset, reference=f"{dataset}:test", metrics=METRICS,
                                  extractor=extractor, seed=seed, progress=False)
                values = {s.metric.replace(f"_{judge.name}", ""): s.value for s in scores}
                row = {"dataset": dataset, "system": name, "seed": seed, "steps": n_steps, **values}
                rows.append(row)
                # per-seed rows, written as they come so that an interrupted run still leaves its results
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
                print(f"  seed {seed} {name:17s} {n_steps:5d} steps  fd {values['fd']:.3f}  kid {values['kid']:.4f}  "
                      f"precision {values['precision']:.3f}  recall {values['recall']:.3f}  "
                      f"coverage {values['coverage']:.3f}  classes {values['classes_covered']:.0f}", flush=True)
    keys = ["steps", "fd", "kid", "precision", "recall", "density", "coverage", "classes_covered", "kl_classes"]
    lines = [
        "# Quality at equal wall-clock budget: ganforge vs the pytorch/examples DCGAN loop",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {threads} thread(s)",
        f"- command: `python bench/quality_mnist.py --budget {args.budget:g} --seeds {args.seeds} "
        f"--n-eval {args.n_eval} --batch-size {args.batch_size}`",
        f"- protocol: {scores[0].protocol.describe()} (per dataset: its own judge); mean ± std over seeds",
        "",
        "| dataset | system | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for dataset in args.datasets.split(","):
        for system in ("ganforge", "pytorch/examples"):
            sel = [r for r in rows if r["dataset"] == dataset and r["system"] == system]
            cells = []
            for k in keys:
                vals = [r[k] for r in sel]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.4g} ± {sd:.2g}")
            lines.append(f"| {dataset} | {system} | " + " | ".join(cells) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))  # per-seed rows, for merging runs
    print("\n".join(lines))


if __name__ == "__main__":
    main()
