"""``ganforge translate train | apply | eval``: CycleGAN from the command line.

``translate train`` takes every flag of ``ganforge train`` (steps, batch size, seed, resume, device,
doctor, ...) plus the two domains and CycleGAN's own weights, and writes the same run directory.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

DEFAULT_STEPS = 2000


def add_translate_parser(sub: Any, add_train_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("translate", help="unpaired image-to-image translation (CycleGAN), both directions",
                       description="Train a CycleGAN between two unpaired image domains, translate files or folders "
                       "either way, and score the translations.")
    tsub = p.add_subparsers(dest="translate_command", metavar="ACTION")

    t = tsub.add_parser("train", help="train a CycleGAN on domains --a and --b",
                        description="Train a CycleGAN (ResNet generators, PatchGAN discriminators, LSGAN, cycle "
                        "weight 10, identity 0.5, image pools of 50, Adam 2e-4 / 0.5, linear decay over the second "
                        "half: the reference's defaults) and write a run directory like `ganforge train`. With "
                        "--eval-every, translations of the domains' test splits are scored into metrics.jsonl.")
    g = t.add_argument_group("the two domains and CycleGAN's weights")
    g.add_argument("--a", help="domain A: dataset name (mnist, digits, ...), image folder, .npy or .npz")
    g.add_argument("--b", help="domain B: the same kinds as --a (unpaired: no image needs a partner)")
    g.add_argument("--cycle-weight", type=float, help="λ of the cycle-consistency L1 terms (default 10)")
    g.add_argument("--identity-weight", type=float, help="identity L1 weight as a share of --cycle-weight "
                   "(default 0.5; 0 where keeping an image unchanged makes no sense, e.g. inversions)")
    g.add_argument("--pool-size", type=int, help="past fakes kept for each discriminator (default 50; 0 = off)")
    g.add_argument("--generator", choices=["resnet", "unet"], help="generator architecture (default resnet)")
    g.add_argument("--paired-test", action="store_const", const=True,
                   help="the test splits of A and B are paired (b_test[i] is a_test[i] translated): adds L1, PSNR "
                   "and SSIM against that ground truth")
    add_train_flags(t)
    t.set_defaults(func=cmd_translate_train)

    t = tsub.add_parser("apply", help="translate an image, a folder of images or a .npy array",
                        description="Translate with a trained run, in either direction. A folder is translated "
                        "recursively into --out, keeping relative paths and file names; each output keeps its "
                        "input's size (and channel count, where both domains have the same).")
    t.add_argument("run_dir", help="a run directory written by `ganforge translate train`")
    t.add_argument("--direction", required=True, help="a2b or b2a")
    t.add_argument("--in", dest="src", required=True, help="an image file, a folder, or a .npy array")
    t.add_argument("--out", dest="dst", required=True, help="a file (for a file input) or a folder")
    t.add_argument("--checkpoint", default="latest", help="latest (default), best, or a checkpoint directory")
    t.add_argument("--device", default="cpu", help="device to translate on (default cpu)")
    t.set_defaults(func=cmd_translate_apply)

    t = tsub.add_parser("eval", help="score a run's translations both ways (FD/KID, cycle error, L1/PSNR/SSIM)",
                        description="Translate held-out images of both domains and score them: FD and KID in each "
                        "target domain's judge features (domains with labels), label preservation, cycle "
                        "reconstruction error, and with --paired L1, PSNR and SSIM against ground truth. Scores are "
                        "appended to RUN_DIR/metrics.jsonl with their protocol.")
    t.add_argument("run_dir", help="a run directory written by `ganforge translate train`")
    t.add_argument("--a-test", help="held-out images of A (default: the test split of the run's domain A)")
    t.add_argument("--b-test", help="held-out images of B (default: the test split of the run's domain B)")
    t.add_argument("--paired", action="store_const", const=True, help="b-test[i] is the ground truth of a-test[i]")
    t.add_argument("--n", type=int, default=2000, help="test images per domain (default 2000)")
    t.add_argument("--checkpoint", default="latest", help="latest (default), best, or a checkpoint directory")
    t.add_argument("--no-judges", action="store_true", help="skip the judge-based scores (FD, KID, labels)")
    t.add_argument("--seed", type=int, default=0, help="seed of the test subsets (default 0)")
    t.add_argument("--device", default="cpu", help="device (default cpu)")
    t.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    t.set_defaults(func=cmd_translate_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_translate_train(args: argparse.Namespace) -> int:
    from ganforge.apps.translator import DEFAULTS
    from ganforge.cli import _config_from_args, print_train_result
    from ganforge.train import RunConfig
    from ganforge.train.cycle_run import train_cyclegan

    if args.model is not None or args.data is not None:
        raise ConfigError("translate train takes its domains as --a and --b (not --data or --model)")
    config, settings, out = _config_from_args(args, base=DEFAULTS)
    if config is None:
        if not settings.get("data") or not settings.get("data_b"):
            raise ConfigError("give both domains: --a DIR_OR_NAME --b DIR_OR_NAME")
        if args.generator:
            settings["model_config"] = {**settings.get("model_config", {}), "generator": args.generator}
        if settings.get("steps") is None and settings.get("epochs") is None:
            settings["steps"] = DEFAULT_STEPS
        config = RunConfig().merged(settings)
        names = "-".join(Path(str(d)).stem for d in (config.data, config.data_b))
        out = out or os.path.join("runs", f"cyclegan-{names}-{time.strftime('%Y%m%d-%H%M%S')}")
    elif args.generator:
        raise ConfigError("--resume: the generator of a run cannot change; drop --generator")
    result = train_cyclegan(config, out, resume=args.resume)
    print_train_result(result)
    print(f"translate: ganforge translate apply {result.run_dir} --direction a2b --in IMAGES --out OUT")
    return 0


def cmd_translate_apply(args: argparse.Namespace) -> int:
    from ganforge.apps.translator import Translator

    translator = Translator.load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    written = translator.apply(args.src, args.dst, direction=args.direction)
    where = written[0] if len(written) == 1 else f"{len(written)} files under {args.dst}"
    print(f"translated {args.src} ({args.direction}, {translator.checkpoint}) to {where}")
    return 0


def cmd_translate_eval(args: argparse.Namespace) -> int:
    from ganforge.metrics.protocol import append_scores, format_table
    from ganforge.train.cycle_run import load_test_set, load_translator, score_translation

    trained = load_translator(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    test = load_test_set(trained.config, a=args.a_test, b=args.b_test, paired=args.paired, n=args.n, seed=args.seed,
                         judges=not args.no_judges, device=args.device, progress=not args.json)
    scores = score_translation(test, trained.generators["a2b"], trained.generators["b2a"], seed=args.seed)
    step = int(trained.checkpoint.name.split("_")[-1]) if trained.checkpoint.name.startswith("step_") else None
    for s in scores:
        s.checkpoint, s.step = str(trained.checkpoint), step
    append_scores(Path(args.run_dir) / "metrics.jsonl", scores)
    if args.json:
        print(json.dumps([s.to_record() for s in scores], indent=2, default=float))
    else:
        print(f"checkpoint {trained.checkpoint} (appended to {Path(args.run_dir) / 'metrics.jsonl'})")
        print(format_table(scores))
    return 0
