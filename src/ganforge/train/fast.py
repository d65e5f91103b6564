"""The fast path: mixed precision, memory format, backend flags, fused Adam and compilation.

`resolve_performance` turns the run's switches (``amp``, ``channels_last``, ``compile``,
``cuda_graphs``, ``tf32``, ``fused_adam``, ``sync_batchnorm`` in `RunConfig`) into what this
machine can do, with a one-line notice for every switch that falls back (no CUDA, no bf16,
a non-image model, ...). Nothing here changes the default fp32 CPU path: there every switch
resolves to "off" and the step runs exactly the code it ran before the fast path existed.

    perf = resolve_performance(config, device, image_model=True)
    apply_backend_flags(perf)               # cuDNN autotuning, TF32 (CUDA only)
    opt = make_adam(params, lr, betas, perf)
    apply_to_step(step, perf)               # autocast + GradScaler, compiled forwards
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ganforge.errors import ConfigError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
SWITCH_CHOICES = ("auto", "on", "off")


def notice(message: str) -> None:
    """One line on stderr: a switch that fell back, and why."""
    print(f"ganforge: {message}", file=sys.stderr)


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX): only then is CPU bf16 autocast worth it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def cuda_has_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class Performance:
    """What the fast path does on this run's device, after the fallbacks."""

    device_type: str = "cpu"
    amp_dtype: torch.dtype | None = None  # None: fp32 (no autocast)
    grad_scaler: bool = False  # fp16 needs loss scaling; bf16 does not
    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None  # "reduce-overhead" captures CUDA graphs through torch.compile
    tf32: bool = False
    cudnn_benchmark: bool = False
    fused_adam: bool = False
    sync_batchnorm: bool = False
    notices: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """A short summary for the training banner, e.g. ``bf16, channels-last, fused Adam``."""
        parts = [{torch.bfloat16: "bf16", torch.float16: "fp16+GradScaler"}.get(self.amp_dtype, "fp32")]
        for flag, name in ((self.channels_last, "channels-last"), (self.tf32, "TF32"),
                           (self.fused_adam, "fused Adam"), (self.sync_batchnorm, "SyncBatchNorm")):
            if flag:
                parts.append(name)
        if self.compile:
            parts.append(f"compiled ({self.compile_mode or 'default'})")
        return ", ".join(parts)


def _switch(value: Any, name: str) -> str:
    """Normalise an auto/on/off switch (booleans from TOML or Python allowed)."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value not in SWITCH_CHOICES:
        raise ConfigError(f"--{name.replace('_', '-')} must be auto, on or off, got {value!r}")
    return value


def validate_settings(config: Any) -> None:
    """Refuse malformed fast-path settings, naming the setting and the valid values."""
    if config.amp not in AMP_CHOICES:
        raise ConfigError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {config.amp!r}")
    _switch(config.channels_last, "channels_last")
    _switch(config.fused_adam, "fused_adam")
    for name in ("compile", "cuda_graphs", "tf32", "sync_batchnorm"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(config, name)!r}")


def resolve_performance(config: Any, device: torch.device, *, image_model: bool = True,
                        distributed: bool = False, quiet: bool = False) -> Performance:
    """The fast-path settings ``config`` asks for, reduced to what ``device`` supports.

    ``image_model``: the networks take (B, C, H, W) images (channels-last applies);
    ``distributed``: the run has several processes (SyncBatchNorm applies). Each fallback is
    printed once as a notice (unless ``quiet``) and kept in ``Performance.notices``.
    """
    validate_settings(config)
    cuda = device.type == "cuda"
    notes: list[str] = []

    # mixed precision
    amp_dtype: torch.dtype | None = None
    scaler = False
    if config.amp == "auto":
        if cuda:
            amp_dtype, scaler = (torch.bfloat16, False) if cuda_has_bf16() else (torch.float16, True)
    elif config.amp == "bf16":
        if cuda and cuda_has_bf16():
            amp_dtype = torch.bfloat16
        elif cuda:
            amp_dtype, scaler = torch.float16, True
            notes.append("--amp bf16: this GPU has no bf16; using fp16 with a gradient scaler")
        elif device.type == "cpu" and cpu_has_native_bf16():
            amp_dtype = torch.bfloat16
        else:
            notes.append(f"--amp bf16: no native bf16 on {device.type} (needs CUDA, or a CPU with AVX512-BF16/AMX); "
                         "training in fp32")
    elif config.amp == "fp16":
        if cuda:
            amp_dtype, scaler = torch.float16, True
        else:
            notes.append(f"--amp fp16: fp16 autocast needs CUDA, not {device.type}; training in fp32")

    # memory format
    channels_last = False
    cl = _switch(config.channels_last, "channels_last")
    if cl != "off":
        if not image_model:
            if cl == "on":
                notes.append("--channels-last: the networks do not take images; ignored")
        elif cl == "on" or (cl == "auto" and cuda):  # on CPU it measured slower (docs/performance.md)
            channels_last = True

    # backend flags
    tf32 = bool(config.tf32) and cuda
    cudnn_benchmark = cuda

    # fused Adam: CUDA by default; on request wherever torch has the kernel
    fused = False
    fa = _switch(config.fused_adam, "fused_adam")
    if fa == "auto":
        fused = cuda
    elif fa == "on":
        fused = device.type in ("cuda", "cpu")
        if not fused:
            notes.append(f"--fused-adam: no fused Adam on {device.type}; using the default Adam")

    # compilation and CUDA graphs
    compile_on = bool(config.compile)
    mode = None
    if config.cuda_graphs:
        if cuda:
            compile_on, mode = True, "reduce-overhead"  # torch.compile captures CUDA graphs in this mode
        else:
            notes.append(f"--cuda-graphs: needs CUDA, not {device.type}; ignored")

    sync_bn = False
    if config.sync_batchnorm:
        if not distributed:
            notes.append("--sync-batchnorm: only applies with several processes (torchrun); ignored")
        elif not cuda:
            notes.append("--sync-batchnorm: torch's SyncBatchNorm needs CUDA; on CPU each process keeps "
                         "its own BatchNorm statistics")
        else:
            sync_bn = True

    if not quiet:
        for n in notes:
            notice(n)
    return Performance(device_type=device.type, amp_dtype=amp_dtype, grad_scaler=scaler, channels_last=channels_last,
                       compile=compile_on, compile_mode=mode, tf32=tf32, cudnn_benchmark=cudnn_benchmark,
                       fused_adam=fused, sync_batchnorm=sync_bn, notices=tuple(notes))


def apply_backend_flags(perf: Performance) -> None:
    """cuDNN autotuning and TF32 matmuls/convolutions on CUDA; nothing on other devices."""
    if perf.device_type != "cuda":
        return
    torch.backends.cudnn.benchmark = perf.cudnn_benchmark
    precision = "tf32" if perf.tf32 else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    else:  # older torch
        torch.backends.cuda.matmul.allow_tf32 = perf.tf32
        torch.backends.cudnn.allow_tf32 = perf.tf32


def make_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float],
              perf: Performance | None = None) -> torch.optim.Adam:
    """Adam as the recipe has it; fused (one kernel for all parameters) when ``perf`` says so."""
    params = list(params)
    if perf is not None and perf.fused_adam:
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError) as e:  # an old torch, or a device without the kernel
            notice(f"fused Adam unavailable ({str(e).splitlines()[0]}); using the default Adam")
    return torch.optim.Adam(params, lr=lr, betas=betas)


def to_channels_last(*modules: nn.Module) -> None:
    """Put 4-D weights in channels-last (NHWC) order, in place."""
    for m in modules:
        m.to(memory_format=torch.channels_last)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm*d by SyncBatchNorm (statistics over the global batch; CUDA only)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


class CompiledOrEager:
    """Call ``compiled``; if compiling fails, say so once and run ``eager`` from then on.

    ``torch.compile`` compiles lazily, at the first call, so that is where a missing compiler or an
    unsupported operation shows up. Compilation fails before anything runs, so falling back to
    the eager module at that point repeats no side effect (e.g. BatchNorm statistics).
    """

    def __init__(self, eager: Callable[..., Any], compiled: Callable[..., Any], name: str):
        self.eager, self.compiled, self.name = eager, compiled, name
        self.failed: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: run eagerly
                self.failed = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                notice(f"--compile: compiling the {self.name} failed ({self.failed}); running it eagerly")
        return self.eager(*args, **kwargs)


def compile_module(module: Callable[..., Any], name: str, mode: str | None = None,
                   backend: str | Callable[..., Any] = "inductor") -> Callable[..., Any]:
    """``torch.compile(module)`` behind a fallback to the eager module (see `CompiledOrEager`)."""
    try:
        compiled = torch.compile(module, mode=mode, backend=backend)
    except Exception as e:  # noqa: BLE001 - e.g. no dynamo on this platform
        notice(f"--compile: torch.compile is unavailable ({str(e).splitlines()[0]}); running the {name} eagerly")
        return module
    return CompiledOrEager(module, compiled, name)


def apply_to_step(step: Any, perf: Performance, backend: str | Callable[..., Any] = "inductor") -> None:
    """Switch a `GANStep` to ``perf``: autocast dtype, GradScalers (fp16), compiled forwards.

    Gradient penalties (R1, WGAN-GP) always run the eager discriminator in fp32: they need a
    double backward, which compiled graphs do not support, and fp16 gradients of D's input
    underflow without their own scaling.
    """
    if perf.amp_dtype is not None:
        step.autocast_device = perf.device_type
        step.autocast_dtype = perf.amp_dtype
    if perf.grad_scaler:
        step.scaler_d = torch.amp.GradScaler(perf.device_type)
        step.scaler_g = torch.amp.GradScaler(perf.device_type)
    if perf.compile:
        step.d_penalty = step.d_train  # eager (DDP-wrapped where distributed)
        step.g_train = compile_module(step.g_train, "generator", perf.compile_mode, backend)
        step.d_train = compile_module(step.d_train, "discriminator", perf.compile_mode, backend)
        if step.d_frozen is not None:  # distributed: the plain D of the G phase
            step.d_frozen = compile_module(step.d_frozen, "discriminator (G phase)", perf.compile_mode, backend)


def autocast_context(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)
