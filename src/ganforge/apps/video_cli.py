"""``ganforge video train | predict | sample | eval``: video prediction and generation from the command line.

``video train`` takes every flag of ``ganforge train`` (steps, batch size, seed, resume, device, doctor,
...) plus the task and its frame counts and loss weights, and writes the same run directory.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

DEFAULT_STEPS = {"predict": 2000, "generate": 3000}
DEFAULT_BATCH = 8
TASK_MODEL = {"predict": "video_predict", "generate": "video_generate"}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_video_parser(sub: Any, add_train_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("video", help="future-frame prediction and short clip generation (Moving MNIST, clips)",
                       description="Train a frame predictor (recurrent conv encoder-decoder, clip discriminator, "
                       "gradient difference loss) or a clip generator (MoCoGAN), predict the future of clips, "
                       "sample clips, and score them.")
    vsub = p.add_subparsers(dest="video_command", metavar="ACTION")

    t = vsub.add_parser("train", help="train a video model (--task predict or generate)",
                        description="Train on Moving MNIST (drawn on the fly from MNIST training digits) or on "
                        "clips (.npy/.npz, GIF, MP4, folders of frames). Writes a run directory like `ganforge "
                        "train`; --eval-every scores the model on held-out clips into metrics.jsonl.")
    g = t.add_argument_group("video")
    g.add_argument("--task", choices=sorted(TASK_MODEL), default="predict", help="predict (default) or generate")
    g.add_argument("--context-frames", type=_positive, help="prediction: frames read (default 10)")
    g.add_argument("--future-frames", type=_positive, help="prediction: frames predicted in training (default 10)")
    g.add_argument("--clip-frames", type=_positive, help="generation: frames per clip (default 16)")
    g.add_argument("--adv-weight", type=float, help="prediction: adversarial weight (default 0.05; 0 = MSE + GDL "
                   "only, no discriminator)")
    g.add_argument("--gdl-weight", type=float, help="prediction: image gradient difference weight (default 1)")
    g.add_argument("--digits", dest="video_digits", type=_positive,
                   help="Moving MNIST digits per clip (default 2 to predict, 1 to generate)")
    add_train_flags(t)
    t.set_defaults(func=cmd_video_train)

    t = vsub.add_parser("predict", help="predict the next frames of clips",
                        description="The last --context-frames frames of each clip are the context. A .npy input "
                        "may be one clip (T, H, W) or (T, C, H, W), or a batch (N, T, C, H, W), uint8 or floats in "
                        "[0, 1]; a .npy/.npz output has the same layout and dtype. A .gif/.mp4 output shows the "
                        "context followed by the prediction.")
    t.add_argument("run_dir", help="a run directory written by `ganforge video train --task predict`")
    t.add_argument("--in", dest="src", required=True, help="clips: .npy, .npz, .gif, .mp4 or a folder of frames")
    t.add_argument("--frames", type=_positive, help="frames to predict (default: as trained)")
    t.add_argument("--out", required=True, help="pred.npy / .npz (predicted frames), .gif / .mp4 (context + "
                   "prediction), or a folder")
    t.add_argument("--checkpoint", default="latest", help="latest (default), best, or a checkpoint directory")
    t.add_argument("--device", default="cpu", help="device (default cpu)")
    t.set_defaults(func=cmd_video_predict)

    t = vsub.add_parser("sample", help="generate clips", description="Generate clips with a MoCoGAN run.")
    t.add_argument("run_dir", help="a run directory written by `ganforge video train --task generate`")
    t.add_argument("--n", type=_positive, default=8, help="clips (default 8)")
    t.add_argument("--frames", type=_positive, help="frames per clip (default: as trained)")
    t.add_argument("--out", required=True, help="clips.gif (tiled), .mp4, .npy (uint8 N,T,C,H,W), .npz or a folder")
    t.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    t.add_argument("--checkpoint", default="latest", help="latest (default), best, or a checkpoint directory")
    t.add_argument("--device", default="cpu", help="device (default cpu)")
    t.set_defaults(func=cmd_video_sample)

    t = vsub.add_parser("eval", help="score a video run on held-out clips",
                        description="Prediction: MSE and MAE per frame (summed over the frame, pixels in [0, 1]), "
                        "PSNR, SSIM, sharpness and gradient ratio, per future step too. Generation: sliced "
                        "Wasserstein distance to test clips and, on single-digit Moving MNIST, the MNIST judge's "
                        "recognisable share and digit identity consistency. Appended to RUN_DIR/metrics.jsonl.")
    t.add_argument("run_dir", help="a run directory written by `ganforge video train`")
    t.add_argument("--test", help="held-out clips (default: the fixed Moving MNIST test set)")
    t.add_argument("--n", type=_positive, default=2000, help="test clips (default 2000)")
    t.add_argument("--checkpoint", default="latest", help="latest (default), best, or a checkpoint directory")
    t.add_argument("--device", default="cpu", help="device (default cpu)")
    t.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    t.set_defaults(func=cmd_video_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_video_train(args: argparse.Namespace) -> int:
    from ganforge.cli import _config_from_args, print_train_result
    from ganforge.train import RunConfig
    from ganforge.train.video_run import train_video

    if args.model is not None:
        raise ConfigError("video train picks its model with --task predict|generate (not --model)")
    config, settings, out = _config_from_args(args, base={"batch_size": DEFAULT_BATCH})
    if config is None:
        settings["model"] = TASK_MODEL[args.task]
        if not settings.get("data"):
            settings["data"] = "moving_mnist"
        if args.task == "generate":
            settings.setdefault("video_digits", 1)
        if settings.get("steps") is None and settings.get("epochs") is None:
            settings["steps"] = DEFAULT_STEPS[args.task]
        config = RunConfig().merged(settings)
        name = Path(str(config.data)).stem
        out = out or os.path.join("runs", f"video-{args.task}-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    elif TASK_MODEL[args.task] != config.model and args.task != "predict":
        raise ConfigError(f"--resume: {out} is a {config.model} run; drop --task")
    result = train_video(config, out, resume=args.resume)
    print_train_result(result)
    verb = "predict RUN --in CLIPS --out pred.gif" if config.model == "video_predict" else "sample RUN --out clips.gif"
    print(f"next: ganforge video {verb.replace('RUN', str(result.run_dir))}")
    return 0


def cmd_video_predict(args: argparse.Namespace) -> int:
    import torch

    from ganforge.apps.video import VideoPredictor
    from ganforge.data.video import ARRAY_SUFFIXES, _as_uint8_clips, read_clips, write_clips

    predictor = VideoPredictor.load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    clips, layout = read_clips(args.src)
    predicted = _as_uint8_clips(predictor.predict_clips(clips, args.frames), "predictions")
    out = Path(args.out)
    if out.suffix.lower() in ARRAY_SUFFIXES:
        write_clips(predicted, out, layout)
    else:  # a movie or frames: the context the model read, then what it predicted
        k = predictor.trained.config.context_frames  # type: ignore[union-attr]
        shown = torch.cat([clips[:, -k:], torch.from_numpy(predicted)], dim=1)
        write_clips(shown, out, fps=layout.fps)
    print(f"predicted {predicted.shape[1]} frames for {len(clips)} clip(s) from {args.src} "
          f"({predictor.trained.checkpoint}): {out}")  # type: ignore[union-attr]
    return 0


def cmd_video_sample(args: argparse.Namespace) -> int:
    from ganforge.apps.video import VideoGenerator
    from ganforge.data.video import write_clips

    generator = VideoGenerator.load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    clips = generator.sample(args.n, seed=args.seed, frames=args.frames)
    write_clips(clips, args.out)
    print(f"wrote {args.n} clips of {clips.shape[1]} frames ({generator.trained.checkpoint}): "  # type: ignore[union-attr]
          f"{args.out}")
    return 0


def cmd_video_eval(args: argparse.Namespace) -> int:
    import json

    from ganforge.metrics.protocol import append_scores, format_table
    from ganforge.train.video_run import evaluate_video, load_video_run, load_video_test_set

    trained = load_video_run(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    test = load_video_test_set(trained.config, n=args.n, test=args.test)
    scores = evaluate_video(trained.config, trained, test, device=args.device)
    step = int(trained.checkpoint.name.split("_")[-1]) if trained.checkpoint.name.startswith("step_") else None
    for s in scores:
        s.checkpoint, s.step = trained.checkpoint.name, step
    append_scores(Path(args.run_dir) / "metrics.jsonl", scores)
    if args.json:
        print(json.dumps([s.to_record() for s in scores], indent=1))
    else:
        print(format_table(scores))
    return 0
