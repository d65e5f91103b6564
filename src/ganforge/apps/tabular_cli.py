"""``ganforge tabular fit | sample | audit``: synthetic tables from the command line (CSV or Parquet)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError


def add_tabular_parser(sub: Any) -> None:
    p = sub.add_parser("tabular", help="synthetic tables: fit a TabularGAN, sample it, audit the result",
                       description="Fit a tabular GAN (CTGAN's architecture, WGAN-GP, training-by-sampling, exact "
                       "point masses and missing values; optional differential privacy), sample synthetic rows, and "
                       "audit a synthetic table for fidelity, utility and privacy.")
    tsub = p.add_subparsers(dest="tabular_command", metavar="ACTION")

    t = tsub.add_parser("fit", help="fit a TabularGAN to a CSV or Parquet table and save it")
    t.add_argument("data", help="the real table (.csv or .parquet)")
    t.add_argument("--out", required=True, help="model directory (also keeps the training run: stats, doctor, "
                   "checkpoints)")
    t.add_argument("--target", help="the column you will predict (treated as discrete if it has few values): "
                   "training conditions more rows on it and sampling draws it at its real rate")
    t.add_argument("--discrete", help="comma-separated columns to treat as categorical")
    t.add_argument("--epochs", type=float, help="passes over the table (default 300)")
    t.add_argument("--steps", type=int, help="training steps, instead of --epochs")
    t.add_argument("--batch-size", type=int, help="rows per batch (default 500)")
    t.add_argument("--numeric-encoding", choices=("quantile", "gmm"),
                   help="numeric columns as one scalar through their CDF (default) or CTGAN's Gaussian modes")
    t.add_argument("--moment-weight", type=float,
                   help="weight of the mean/covariance matching term (default 1; with --epsilon it matches moments "
                        "released with --moment-share of epsilon)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epsilon", type=float, help="differential privacy: the whole fit is (epsilon, delta)-DP")
    t.add_argument("--delta", type=float, help="DP delta (default 1 / rows^1.1)")
    t.add_argument("--moment-share", type=float, default=0.25,
                   help="DP: share of epsilon that releases the encoded table's mean and covariance for the "
                        "generator to match (default 0.25; 0 gives it to the critic)")
    t.add_argument("--bounds", action="append", metavar="COL=LOW:HIGH",
                   help="public bounds of a numeric column (DP: spends no budget; repeatable)")
    t.add_argument("--categories", action="append", metavar="COL=A|B|C",
                   help="public categories of a column (DP: spends no budget; repeatable)")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--resume", metavar="auto", help="continue an interrupted fit in --out")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_fit)

    t = tsub.add_parser("sample", help="draw synthetic rows from a saved TabularGAN")
    t.add_argument("model_dir", help="a directory written by `ganforge tabular fit`")
    t.add_argument("--n", type=int, required=True, help="number of rows")
    t.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    t.add_argument("--condition", action="append", metavar="COL=VALUE", help="fix a discrete column (repeatable)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-match-rates", dest="match_rates", action="store_false",
                   help="keep the generator's own category rates (by default the rows are chosen from a pool three "
                        "times larger so that every category comes at its real rate)")
    t.set_defaults(func=cmd_sample)

    t = tsub.add_parser("audit", help="fidelity, utility and privacy of a synthetic table against real ones")
    t.add_argument("--real", required=True, help="the real rows the generator was trained on")
    t.add_argument("--synthetic", required=True, help="the synthetic table")
    t.add_argument("--holdout", required=True, help="real rows the generator never saw")
    t.add_argument("--target", help="a column to predict: adds train-synthetic-test-real utility")
    t.add_argument("--discrete", help="comma-separated columns to treat as categorical")
    t.add_argument("--model", help="the TabularGAN directory, to stamp its (epsilon, delta) on the audit and "
                   "leave out the columns it treated as identifiers")
    t.add_argument("--identifiers", help="comma-separated identifier columns to leave out of every measure "
                   "(default: detected as TabularGAN detects them, or the --model's); 'none' audits every column")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", help="write audit.json and audit.md to this directory")
    t.add_argument("--json", action="store_true", help="print JSON instead of the readable report")
    t.set_defaults(func=cmd_audit)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: expected COLUMN=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _columns(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def cmd_fit(args: argparse.Namespace) -> int:
    from ganforge.apps.tabular import DPConfig, TabularGAN
    from ganforge.metrics.tabular import read_table

    df = read_table(args.data)
    discrete = _columns(args.discrete)
    for name in [*(discrete or []), *([args.target] if args.target else [])]:
        if name not in df.columns:
            raise ConfigError(f"{name!r} is not a column of {args.data}; columns are {', '.join(map(str, df.columns))}")
    dp = None
    if args.epsilon is not None or args.delta is not None:
        if args.epsilon is None:
            raise ConfigError("--delta needs --epsilon")
        bounds = {}
        for column, text in _pairs(args.bounds, "--bounds").items():
            try:
                low, high = (float(v) for v in text.split(":"))
            except ValueError:
                raise ConfigError(f"--bounds {column}={text}: expected LOW:HIGH, e.g. 0:120") from None
            bounds[column] = (low, high)
        categories = {c: v.split("|") for c, v in _pairs(args.categories, "--categories").items()}
        dp = DPConfig(epsilon=args.epsilon, delta=args.delta, bounds=bounds, categories=categories,
                      moment_share=args.moment_share)
    elif args.bounds or args.categories:
        raise ConfigError("--bounds and --categories declare public statistics for --epsilon; give --epsilon too")
    if args.target and df[args.target].nunique(dropna=True) <= 20:
        discrete = sorted(set(discrete or []) | {args.target})
    settings: dict[str, Any] = {"seed": args.seed, "dp": dp, "threads": args.threads, "device": args.device,
                                "progress": not args.no_progress}
    for key in ("epochs", "steps", "batch_size", "numeric_encoding", "moment_weight"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    model = TabularGAN(**settings)
    model.fit(df, discrete_columns=discrete, target=args.target, out=args.out, resume=args.resume)
    model.save(args.out)
    print(f"model: {args.out} ({len(df)} rows x {df.shape[1]} columns)")
    if model.privacy:
        print(f"privacy: epsilon {model.privacy['epsilon']:.3f}, delta {model.privacy['delta']:.3g} "
              f"(ledger in {Path(args.out) / 'tabular_gan.json'})")
    print(f"sample: ganforge tabular sample {args.out} --n {len(df)} --out synthetic.csv")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ganforge.apps.tabular import TabularGAN
    from ganforge.metrics.tabular import write_table

    model = TabularGAN.load(args.model_dir)
    frame = model.sample(args.n, conditions=_pairs(args.condition, "--condition") or None, seed=args.seed,
                         match_rates=args.match_rates)
    path = write_table(frame, args.out)
    print(f"wrote {len(frame)} rows to {path}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from ganforge.metrics.tabular import audit, read_table

    real, synthetic, holdout = read_table(args.real), read_table(args.synthetic), read_table(args.holdout)
    dp, identifiers = None, None
    if args.model:
        model = json.loads((Path(args.model) / "tabular_gan.json").read_text())
        dp = model.get("privacy")
        identifiers = [c["name"] for c in model.get("transformer", {}).get("columns", [])
                       if c.get("kind") == "identifier" and c.get("name") in real.columns]
    if args.identifiers is not None:
        identifiers = [] if args.identifiers.strip().lower() == "none" else _columns(args.identifiers)
    report = audit(real, synthetic, holdout, target=args.target, discrete_columns=_columns(args.discrete),
                   seed=args.seed, dp=dp, identifiers=identifiers)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.json").write_text(report.to_json())
        (out / "audit.md").write_text(report.to_markdown())
    print(report.to_json() if args.json else report.to_markdown())
    if args.out:
        print(f"audit written to {Path(args.out) / 'audit.json'} and audit.md", file=sys.stderr)
    return 0
