"""Run configuration: everything needed to rebuild a run, stored as ``config.json``.

A run's settings are layered: built-in defaults < a TOML file (``--config``) < explicit
command-line flags. On ``--resume`` the stored ``config.json`` replaces the defaults, and an
explicit flag may change only settings that do not alter what is being trained (e.g. the
total number of steps or how often to sample).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

VIDEO_MODELS = ("video_predict", "video_generate")


@dataclass
class RunConfig:
    """Settings of one training run. Field names match the CLI flags (``lr_g`` ↔ ``--lr-g``)."""

    # what to train
    model: str = "dcgan"
    model_config: dict[str, Any] = field(default_factory=dict)  # overrides of the family's Config
    conditional: bool = False
    data: str = "digits"
    data_b: str | None = None  # CycleGAN (model "cyclegan"): the second domain; `data` is domain A
    data_dir: str | None = None
    image_size: int | None = None
    # objective and optimisers
    loss: str = "non_saturating"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    n_critic: int = 1
    g_steps: int = 1  # G updates per step, each on fresh noise (the carpedm20 DCGAN recipe PacGAN used runs 2)
    lr_decay: str = "none"  # "linear": keep the learning rates, then decay them linearly to 0 (see lr_decay_start)
    lr_decay_start: float = 0.5  # share of the run after which the linear decay begins
    gp_weight: float = 0.0  # WGAN-GP gradient penalty weight (10 is usual with --loss wasserstein)
    r1_weight: float = 0.0  # R1 penalty γ
    ema: float = 0.0  # generator EMA decay (0 = off; 0.999 is usual)
    # stabilisers (see ganforge.train.gan_step and docs/stabilisers.md)
    spectral_norm: bool = False  # spectral normalisation of every D weight
    minibatch_std: bool = False  # minibatch standard deviation feature in D
    pack: int = 1  # PacGAN: D judges this many samples at once (2-4 fights mode collapse)
    diffaugment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" (images only)
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs
    instance_noise_steps: int = 0  # anneal that noise linearly to 0 over this many steps (0 = keep it constant)
    label_smoothing: float = 0.0  # one-sided: D's target for real data is 1 - this
    # CycleGAN (see ganforge.train.cycle_step)
    cycle_weight: float = 10.0  # λ of the cycle-consistency L1 terms
    identity_weight: float = 0.5  # identity L1 weight, as a share of cycle_weight (0 = off)
    pool_size: int = 50  # fakes kept in each discriminator's history pool (0 = off)
    paired_test: bool = False  # the test splits of A and B are paired (b_test[i] is a_test[i] translated)
    # video (model "video_predict" or "video_generate")
    context_frames: int = 10  # prediction: frames the model reads
    future_frames: int = 10  # prediction: frames it predicts (in training; any number at inference)
    clip_frames: int = 16  # generation: frames per generated clip
    adv_weight: float = 0.05  # prediction: weight of the adversarial term (0 = the MSE + GDL baseline)
    gdl_weight: float = 1.0  # prediction: weight of the image gradient difference loss
    video_digits: int = 2  # Moving MNIST: digits per clip
    # text-to-image (model "text2image"; see ganforge.train.text_run)
    captions: str | None = None  # captions file (CSV file,caption or JSON label -> captions); None = built-in ones
    text_encoder: str = "auto"  # minilm | small | keywords | auto (minilm when ganforge[text] is installed)
    kl_weight: float = 0.05  # conditioning augmentation's KL weight (StackGAN's 1 drowned the text in our bench)
    mismatch_weight: float = 0.5  # share of D's "fake" side given to real images with mismatched captions
    preset: str | None = None  # the preset these settings started from (recorded; see PRESETS)
    # warm start: the generator of a new run starts from this run directory's latest checkpoint or this
    # checkpoint directory (weights only: D, optimisers and the step start fresh), e.g. adversarial
    # fine-tuning of an MSE-trained frame predictor; image GANs and video models
    init_from: str | None = None
    # length and batching
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    seed: int = 0
    # where and how
    device: str = "auto"
    threads: int = 0  # 0 = choose automatically
    sample_every: int = 500
    checkpoint_every: int = 1000
    log_every: int = 50
    keep_checkpoints: int = 3
    progress: bool = True
    # evaluation during training (0 = off): scores go to metrics.jsonl, the best checkpoint is kept by best_metric
    eval_every: int = 0
    eval_n: int = 2000
    eval_metrics: list[str] = field(default_factory=lambda: ["fd"])
    best_metric: str | None = None  # a metric name as written in metrics.jsonl, e.g. fd_mnist_cnn; default: the first
    # the doctor (ganforge.monitor.doctor) watches the stats stream and writes doctor.jsonl
    doctor: bool = True
    stop_at_equilibrium: bool = False  # end training once the doctor sees a healthy equilibrium
    auto_remedy: bool = False  # let the doctor roll back and switch on stabilisers when training fails
    report: bool = True  # write report.html at the end of training
    # the fast path (ganforge.train.fast; docs/performance.md): each falls back with a notice where unavailable
    amp: str = "auto"  # auto (bf16 on CUDA with bf16, else fp16 + GradScaler; off on CPU) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto (on for image models on CUDA) | on | off
    compile: bool = False  # torch.compile G's and D's forward passes (eager where compiling fails)
    cuda_graphs: bool = False  # capture CUDA graphs (torch.compile mode "reduce-overhead"; CUDA only)
    tf32: bool = True  # TF32 matmuls and convolutions on CUDA
    fused_adam: str = "auto"  # auto (on for CUDA) | on | off
    sync_batchnorm: bool = False  # with torchrun: BatchNorm statistics over the global batch (CUDA only)
    ddp_noise: str = "rank"  # with torchrun: "rank" = each rank draws its own z; "global" = every rank draws the
    #                          global batch's z and keeps its slice (follows the 1-process run; for checks)

    # settings that may differ between the original run and a resumed one
    RESUMABLE_CHANGES = frozenset(
        {"steps", "epochs", "device", "threads", "sample_every", "checkpoint_every", "log_every",
         "keep_checkpoints", "progress", "data_dir", "eval_every", "eval_n", "eval_metrics", "best_metric",
         "doctor", "stop_at_equilibrium", "auto_remedy", "report", "paired_test",
         "amp", "channels_last", "compile", "cuda_graphs", "tf32", "fused_adam", "sync_batchnorm", "ddp_noise",
         # the schedule is a function of the step alone: a plateaued run can be annealed from where it stands
         # (--resume auto --steps 60000 --lr-decay linear --lr-decay-start 0.8 decays from step 48,000 on)
         "lr_decay", "lr_decay_start"}
    )

    def validate(self) -> None:
        """Refuse settings that cannot work, naming the setting and what would."""
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give either --steps or --epochs, not both")
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"--steps must be a positive number of training steps, got {self.steps}")
        if self.epochs is not None and not (self.epochs > 0):
            raise ConfigError(f"--epochs must be positive, got {self.epochs}")
        for name in ("batch_size", "n_critic", "g_steps", "sample_every", "checkpoint_every", "log_every",
                     "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.lr_decay not in ("none", "linear"):
            raise ConfigError(f"--lr-decay must be none or linear, got {self.lr_decay!r}")
        if not 0.0 <= self.lr_decay_start < 1.0:
            raise ConfigError(f"--lr-decay-start is a share of the run in [0, 1), got {self.lr_decay_start}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"--ema is a decay in [0, 1), got {self.ema}")
        if self.gp_weight < 0 or self.r1_weight < 0:
            raise ConfigError("--gp-weight and --r1-weight must be >= 0")
        if self.eval_every < 0 or self.eval_n < 2:
            raise ConfigError("--eval-every must be >= 0 and --eval-n at least 2")
        if not isinstance(self.pack, int) or self.pack < 1:
            raise ConfigError(f"--pack must be a positive integer (1 = off, 2-4 usual), got {self.pack!r}")
        if self.pack > 1 and self.conditional:
            raise ConfigError("--pack does not combine with --conditional (a packed D judges several samples, "
                              "which may have different labels); use --minibatch-std against collapse instead")
        if self.pack > 1 and self.batch_size % self.pack:
            raise ConfigError(f"--pack {self.pack} needs --batch-size divisible by it, got {self.batch_size}")
        if not isinstance(self.instance_noise_steps, int) or self.instance_noise_steps < 0:
            raise ConfigError(f"--instance-noise-steps must be an integer >= 0, got {self.instance_noise_steps!r}")
        if self.instance_noise < 0:
            raise ConfigError(f"--instance-noise is a standard deviation >= 0, got {self.instance_noise}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing}")
        from ganforge.train.augment import parse_policy

        parse_policy(self.diffaugment)
        if self.auto_remedy and not self.doctor:
            raise ConfigError("--auto-remedy needs the doctor; drop --no-doctor")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0 (0 = automatic), got {self.threads}")
        from ganforge.train.fast import validate_settings

        validate_settings(self)
        if self.ddp_noise not in ("rank", "global"):
            raise ConfigError(f"ddp_noise must be rank or global, got {self.ddp_noise!r}")
        if self.model == "cyclegan":
            self._validate_cyclegan()
        if self.model in VIDEO_MODELS:
            self._validate_video()
        self._validate_init_from()

    # stabilisers of the noise-to-image step that CycleGANStep does not implement
    _NOT_FOR_CYCLEGAN = ("conditional", "pack", "diffaugment", "instance_noise", "label_smoothing", "gp_weight",
                         "r1_weight", "ema", "minibatch_std", "auto_remedy", "g_steps")

    # of those, what the video steps do implement (`ganforge.train.d_stabilisers`)
    _NOT_FOR_VIDEO = tuple(n for n in _NOT_FOR_CYCLEGAN if n not in ("instance_noise", "r1_weight", "auto_remedy"))

    def _validate_init_from(self) -> None:
        if self.init_from is None:
            return
        if self.model in ("cyclegan", "text2image"):
            raise ConfigError(f"--init-from is not available for {self.model} runs yet (image GANs and video "
                              "models have it)")
        if not isinstance(self.init_from, str) or not self.init_from.strip():
            raise ConfigError(f"--init-from must name a run directory or a checkpoint, got {self.init_from!r}")

    def _validate_cyclegan(self) -> None:
        if not self.data_b:
            raise ConfigError("a CycleGAN run needs two domains: give --a and --b (data and data_b)")
        if self.cycle_weight < 0 or self.identity_weight < 0:
            raise ConfigError("--cycle-weight and --identity-weight must be >= 0")
        if not isinstance(self.pool_size, int) or self.pool_size < 0:
            raise ConfigError(f"--pool-size must be an integer >= 0 (50 in the reference), got {self.pool_size!r}")
        if self.n_critic != 1:
            raise ConfigError("CycleGAN updates each discriminator once per step; drop --n-critic")
        default = RunConfig()
        used = [name for name in self._NOT_FOR_CYCLEGAN if getattr(self, name) != getattr(default, name)]
        if used:
            raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in used)}: not available for CycleGAN "
                              "(it has spectral norm, --lr-decay, the image pool and --loss)")

    def _validate_video(self) -> None:
        for name in ("context_frames", "future_frames", "clip_frames", "video_digits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.adv_weight < 0 or self.gdl_weight < 0:
            raise ConfigError("--adv-weight and --gdl-weight must be >= 0")
        if self.n_critic != 1:
            raise ConfigError("video models update their discriminators once per step; drop --n-critic")
        default = RunConfig()
        used = [name for name in self._NOT_FOR_VIDEO if getattr(self, name) != getattr(default, name)]
        if used:
            raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in used)}: not available for video "
                              "models (they have spectral norm, --instance-noise, --r1-weight, --lr-decay, --loss "
                              "and --auto-remedy)")
        if self.model == "video_predict" and self.adv_weight == 0 and (self.instance_noise or self.r1_weight):
            raise ConfigError("--instance-noise and --r1-weight act on the discriminator, which an MSE-only "
                              "predictor (--adv-weight 0) does not have: drop them or set --adv-weight > 0")

    def model_overrides(self) -> dict[str, Any]:
        """The network family's settings: ``model_config`` plus the stabilisers that live in the networks."""
        overrides = dict(self.model_config)
        for key in ("spectral_norm", "minibatch_std"):
            if getattr(self, key):
                overrides[key] = True
        return overrides

    def total_steps(self, n_examples: int) -> int:
        """The total number of steps of the run (``--epochs`` counts passes over the data)."""
        if self.steps is not None:
            return self.steps
        batches_per_epoch = max(1, n_examples // self.batch_size)
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * batches_per_epoch / self.n_critic))
        raise ConfigError("no run length: give --steps or --epochs")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(sorted(known))}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(float(b) for b in d["betas"])
        return cls(**d)

    def merged(self, overrides: dict[str, Any]) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **overrides})


# Named starting points. Each is a set of RunConfig fields applied under TOML files and flags;
# the evidence behind "robust" is in docs/stabilisers.md (bench/sensitivity.py, bench/modes.py).
PRESETS: dict[str, dict[str, Any]] = {
    "dcgan": {},  # the pytorch/examples recipe: non-saturating BCE, Adam 2e-4, betas (0.5, 0.999)
    "ttur": {"lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9)},  # two time-scale update rule (Heusel et al.)
    "robust": {"spectral_norm": True, "ema": 0.999, "r1_weight": 0.1, "lr_g": 2e-4, "lr_d": 2e-4,
               "betas": (0.5, 0.999)},
    # 2-D mixtures (ring8, grid25; bench/modes.py): a 2-D noise, three layers of 128, R1 1, EMA and a linear
    # decay over 40k steps; with `ganforge sample --rejection` all 25 grid modes at ~90 % high quality
    "mixture2d": {"model": "mlp", "model_config": {"z_dim": 2, "hidden_g": (128, 128, 128),
                                                   "hidden_d": (128, 128, 128)},
                  "r1_weight": 1.0, "ema": 0.999, "lr_decay": "linear", "steps": 40_000},
}


def preset_settings(name: str) -> dict[str, Any]:
    """The settings of preset ``name`` (with ``preset`` itself recorded), or a ConfigError naming the presets."""
    if name not in PRESETS:
        raise ConfigError(f"unknown --preset {name!r}; choose one of {', '.join(PRESETS)}")
    return {**PRESETS[name], "preset": name}


def settings_below_flags(config_path: str | os.PathLike | None, preset: str | None = None) -> dict[str, Any]:
    """The settings below the flags: preset < TOML file. The preset is ``preset`` (the ``--preset`` flag) or, without
    it, the file's own ``preset`` key; either may be absent. `ganforge train` and `ganforge tune` both start here."""
    from_file = load_toml(config_path) if config_path else {}
    name = preset or from_file.get("preset")
    return layer_settings(preset_settings(name), from_file) if name else from_file


def layer_settings(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge settings layers, lowest first (defaults < preset < TOML < flags): a later layer's keys win, except
    that ``model_config`` is merged key by key (``--model-opt z_dim=4`` keeps a preset's widths) and a run length
    replaces the other kind (``--epochs`` drops a preset's ``steps``, and the reverse)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        layer = dict(layer or {})
        for length, other in (("steps", "epochs"), ("epochs", "steps")):
            if layer.get(length) is not None and other not in layer:
                merged.pop(other, None)
        if isinstance(merged.get("model_config"), dict) and isinstance(layer.get("model_config"), dict):
            layer["model_config"] = {**merged["model_config"], **layer["model_config"]}
        merged.update(layer)
    return merged


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read run settings from a TOML file: top-level keys are RunConfig fields (``-`` or ``_``)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    settings = {k.replace("-", "_"): v for k, v in raw.items()}
    RunConfig.from_dict(settings)  # validates the keys, naming unknown ones
    return settings


def save_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
