"""CycleGAN on MNIST, offline: plain digits (A) <-> thick inverted strokes (B), scored on paired ground truth.

Domain A = the first half of MNIST's training digits; domain B = a fixed stroke-style transform
(3x3 grey dilation, then inversion: thick dark strokes on white) of the *other* half, so the two
training sets are unpaired and disjoint. The MNIST test set and its transformed twin are the paired
ground truth. Reported for ganforge's CycleGAN, the identity baseline (no translation) and the true
transform (the ceiling):

- label preservation: the MNIST judge's accuracy on F(b) and on F(G(a)); a judge trained on domain B
  (cached like every ganforge judge) judges G(a) and G(F(b));
- FD in the target domain's judge features, L1 / PSNR / SSIM against the ground truth, cycle error.

    python bench/cyclegan_digits.py --data-dir DIR            # the benchmark (see --steps, --seeds)
    python bench/cyclegan_digits.py --data-dir DIR --demo     # the CPU demo: about 10 minutes on 2 cores
    python bench/cyclegan_digits.py --data-dir DIR --prepare-only   # write the two domains as .npz and stop

DIR (or $GANFORGE_DATA) must hold mnist.npz (or anything ganforge.data finds MNIST in). The domains
can then be trained from the command line too:
    ganforge translate train --a WORK/a.npz --b WORK/b.npz --config bench/cyclegan_digits_demo.toml --out RUN
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import grey_dilation

from ganforge.data import load, to_model_range
from ganforge.metrics.judge import get_judge
from ganforge.metrics.translation import evaluate_translation
from ganforge.train import RunConfig
from ganforge.train.cycle_run import train_cyclegan, translate_batches

DEMO = {"steps": 1500, "batch_size": 16, "ngf": 16, "n_blocks": 3}
SHOWN = ["label_preservation_a2b", "label_preservation_b2a", "label_preservation_aba", "label_preservation_bab",
         "fd_a2b", "fd_b2a", "l1_a2b", "l1_b2a", "ssim_a2b", "ssim_b2a", "cycle_l1_a", "cycle_l1_b"]


def stroke_style(x: np.ndarray) -> np.ndarray:
    """Domain B's transform of uint8 digits (..., 28, 28): 3x3 grey dilation (thicker strokes), then inversion."""
    size = (1,) * (x.ndim - 2) + (3, 3)
    return 255 - grey_dilation(x, size=size)


def prepare(work: Path, data_dir: str | None) -> tuple[Path, Path]:
    """Write a.npz and b.npz (x_train/y_train/x_test/y_test): disjoint training halves, paired test sets."""
    a_path, b_path = work / "a.npz", work / "b.npz"
    if a_path.exists() and b_path.exists():
        return a_path, b_path
    train, test = load("mnist", "train", data_dir), load("mnist", "test", data_dir)
    x, y = train.images.numpy(), train.labels.numpy()
    xt, yt = test.images.numpy(), test.labels.numpy()
    half = len(x) // 2
    work.mkdir(parents=True, exist_ok=True)
    np.savez(a_path, x_train=x[:half], y_train=y[:half], x_test=xt, y_test=yt)
    np.savez(b_path, x_train=stroke_style(x[half:]), y_train=y[half:], x_test=stroke_style(xt), y_test=yt)
    return a_path, b_path


class GroundTruth:
    """The ceiling: A→B is the true transform; B→A looks each image up in the paired test set."""

    def __init__(self, a_test: torch.Tensor, b_test: torch.Tensor):
        self.lookup = {self._key(b): a for a, b in zip(a_test, b_test, strict=True)}

    @staticmethod
    def _key(x: torch.Tensor) -> bytes:
        return ((x + 1) * 127.5).round().to(torch.uint8).numpy().tobytes()

    def a2b(self, x: torch.Tensor) -> torch.Tensor:
        pixels = ((x + 1) * 127.5).round().to(torch.uint8).numpy()
        return to_model_range(torch.from_numpy(stroke_style(pixels)))

    def b2a(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.lookup[self._key(image)] for image in x])


def scores_row(scores: list) -> dict[str, float]:
    row = {}
    for s in scores:
        key = "_".join(s.metric.split("_")[:2]) if s.metric.startswith("fd_") else s.metric
        row[key] = s.value
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    p.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ganforge-cyclegan-digits"))
    p.add_argument("--demo", action="store_true", help=f"the CPU demo configuration: {DEMO}")
    p.add_argument("--prepare-only", action="store_true", help="write the domains and stop")
    p.add_argument("--steps", type=int, default=DEMO["steps"])
    p.add_argument("--batch-size", type=int, default=DEMO["batch_size"])
    p.add_argument("--ngf", type=int, default=DEMO["ngf"])
    p.add_argument("--n-blocks", type=int, default=DEMO["n_blocks"])
    p.add_argument("--identity-weight", type=float, default=0.0,
                   help="0 by default: an inversion is not a change the identity term should resist")
    p.add_argument("--seeds", default="0")
    p.add_argument("--eval-n", type=int, default=5000, help="paired test images scored (of 10000)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "cyclegan_digits.md"))
    args = p.parse_args()
    if args.demo:
        args.steps, args.batch_size, args.ngf, args.n_blocks = (DEMO[k] for k in ("steps", "batch_size", "ngf",
                                                                                  "n_blocks"))
    work = Path(args.work)
    a_path, b_path = prepare(work, args.data_dir)
    print(f"domains: {a_path}, {b_path}", file=sys.stderr)
    if args.prepare_only:
        return

    judge_a = get_judge("mnist", data_dir=args.data_dir, device=args.device)
    judge_b = get_judge(str(b_path), device=args.device)  # trained on domain B's training half, then cached
    a_data, b_data = load(str(a_path), "test"), load(str(b_path), "test")
    idx = torch.randperm(len(a_data), generator=torch.Generator().manual_seed(12345))[: args.eval_n]
    a_test, b_test = to_model_range(a_data.images[idx]), to_model_range(b_data.images[idx])
    labels = a_data.labels[idx]

    def evaluate(ab, ba) -> dict[str, float]:
        return scores_row(evaluate_translation(
            ab, ba, a_test, b_test, paired=True, extractor_a=judge_a, extractor_b=judge_b, judge_a=judge_a,
            judge_b=judge_b, labels_a=labels, labels_b=labels, reference_a="mnist:test",
            reference_b="mnist:test stroke-style (paired)"))

    truth = GroundTruth(a_test, b_test)
    rows: list[dict] = [
        {"system": "identity (no translation)", **evaluate(lambda x: x, lambda x: x)},
        {"system": "true transform (ceiling)", **evaluate(truth.a2b, truth.b2a)},
    ]
    out = Path(args.out)
    for seed in [int(s) for s in args.seeds.split(",")]:
        run_dir = work / f"run-s{seed}-{args.steps}x{args.batch_size}-ngf{args.ngf}-b{args.n_blocks}"
        config = RunConfig(model="cyclegan", data=str(a_path), data_b=str(b_path), loss="lsgan", lr_g=2e-4, lr_d=2e-4,
                           betas=(0.5, 0.999), lr_decay="linear", lr_decay_start=0.5, batch_size=args.batch_size,
                           steps=args.steps, seed=seed, identity_weight=args.identity_weight, cycle_weight=10.0,
                           pool_size=50, model_config={"ngf": args.ngf, "ndf": 64, "n_blocks": args.n_blocks},
                           sample_every=500, checkpoint_every=500, log_every=50, threads=args.threads,
                           device=args.device)
        resume = "auto" if (run_dir / "config.json").exists() else None
        start = time.time()
        cpu0 = time.process_time()
        result = train_cyclegan(config, run_dir, resume=resume)
        wall, cpu = time.time() - start, time.process_time() - cpu0
        from ganforge.apps import Translator

        translator = Translator.load(run_dir, device=args.device)
        rows.append({"system": f"ganforge CycleGAN, seed {seed}", "steps": result.step, "wall_s": wall,
                     "cpu_s": cpu, "run_dir": str(run_dir),
                     **evaluate(lambda x, t=translator: translate_batches(t.generators["a2b"], x),
                                lambda x, t=translator: translate_batches(t.generators["b2a"], x))})
        write(out, rows, args, judge_a, judge_b)
    write(out, rows, args, judge_a, judge_b)


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))


def write(out: Path, rows: list[dict], args: argparse.Namespace, judge_a, judge_b) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.node()} {platform.machine()}, "
            f"{os.cpu_count()} cpus, torch {torch.__version__}", "steps": args.steps, "batch_size": args.batch_size,
            "ngf": args.ngf, "n_blocks": args.n_blocks, "identity_weight": args.identity_weight,
            "eval_n": args.eval_n, "judge_a": judge_a.protocol(), "judge_b": judge_b.protocol()}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    cols = ["system", "steps", "wall_s", *SHOWN]
    lines = [
        "# CycleGAN on MNIST: digits (A) <-> thick inverted strokes (B)",
        "",
        f"{meta['date']}, {meta['machine']}. `python bench/cyclegan_digits.py --steps {args.steps} --batch-size "
        f"{args.batch_size} --ngf {args.ngf} --n-blocks {args.n_blocks} --identity-weight {args.identity_weight}`",
        "",
        f"Paired test set: {args.eval_n} MNIST test digits and their transforms. Judges: A = {judge_a.name} "
        f"(test accuracy {judge_a.test_accuracy:.4f}, weights {judge_a.weights_hash[:12]}), B = {judge_b.name} "
        f"trained on domain B's training half (test accuracy {judge_b.test_accuracy:.4f}, "
        f"weights {judge_b.weights_hash[:12]}). label_preservation_a2b = B judge on G(a); _b2a = A judge on F(b); "
        "_aba = A judge on F(G(a)); _bab = B judge on G(F(b)). fd_a2b in B judge features, fd_b2a in A judge "
        "features, both against the paired test images; L1 and cycle errors in pixels in [0, 1].",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(rows) - 2:]))


if __name__ == "__main__":
    main()
