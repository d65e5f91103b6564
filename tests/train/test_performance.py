"""The fast path's switches: what they resolve to on each device, and clean fallbacks where unavailable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.cli import _explicit_settings, build_parser
from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError
from ganforge.losses import get_loss
from ganforge.nets import build
from ganforge.train import RunConfig, fast, train
from ganforge.train.fast import Performance, apply_to_step, compile_module, make_adam, resolve_performance
from ganforge.train.gan_step import GANStep

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a cuda device object needs no GPU to exist


def make_step(seed: int = 0, r1: float = 0.0) -> tuple[GANStep, torch.Tensor]:
    torch.manual_seed(seed)
    spec = DataSpec(shape=(1, 8, 8))
    g, d = build("dcgan", spec, ngf=4, ndf=4, z_dim=8)
    step = GANStep(g, d, get_loss("non_saturating"), torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999)),
                   torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999)),
                   noise=torch.Generator().manual_seed(seed), r1_weight=r1)
    real = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return step, real


def run_steps(step: GANStep, real: torch.Tensor, n: int = 3) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in step([(real, None)]).items()} for _ in range(n)]


def test_defaults_on_cpu_are_the_plain_fp32_path():
    perf = resolve_performance(RunConfig(), CPU)
    assert perf == Performance(device_type="cpu")
    assert perf.describe() == "fp32" and perf.notices == ()


def test_auto_on_cuda_picks_bf16_or_fp16_with_a_scaler(monkeypatch):
    monkeypatch.setattr(fast, "cuda_has_bf16", lambda: True)
    perf = resolve_performance(RunConfig(), CUDA)
    assert (perf.amp_dtype, perf.grad_scaler, perf.channels_last, perf.tf32, perf.fused_adam,
            perf.cudnn_benchmark) == (torch.bfloat16, False, True, True, True, True)
    assert not resolve_performance(RunConfig(), CUDA, image_model=False).channels_last
    monkeypatch.setattr(fast, "cuda_has_bf16", lambda: False)
    perf = resolve_performance(RunConfig(), CUDA)
    assert (perf.amp_dtype, perf.grad_scaler) == (torch.float16, True)
    perf = resolve_performance(RunConfig(amp="bf16"), CUDA, quiet=True)
    assert perf.amp_dtype == torch.float16 and "no bf16" in perf.notices[0]
    perf = resolve_performance(RunConfig(tf32=False, cuda_graphs=True, fused_adam="off"), CUDA)
    assert not perf.tf32 and not perf.fused_adam and (perf.compile, perf.compile_mode) == (True, "reduce-overhead")


def test_unavailable_features_fall_back_with_one_notice_each(monkeypatch, capsys):
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: False)
    config = RunConfig(amp="bf16", cuda_graphs=True, sync_batchnorm=True, channels_last="on")
    perf = resolve_performance(config, CPU)
    assert perf.amp_dtype is None and not perf.compile and not perf.sync_batchnorm
    assert perf.channels_last  # asked for explicitly: honoured on CPU too
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("ganforge: --") for line in err)
    assert "no native bf16 on cpu" in err[0] and "training in fp32" in err[0]
    perf = resolve_performance(RunConfig(amp="fp16"), CPU, quiet=True)
    assert perf.amp_dtype is None and "needs CUDA" in perf.notices[0]
    perf = resolve_performance(RunConfig(sync_batchnorm=True), CPU, distributed=True, quiet=True)
    assert not perf.sync_batchnorm and "needs CUDA" in perf.notices[0]
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: True)
    assert resolve_performance(RunConfig(amp="bf16"), CPU).amp_dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="--amp must be one of auto, bf16, fp16, off"):
        RunConfig(amp="fp8", steps=1).validate()
    with pytest.raises(ConfigError, match="--channels-last must be auto, on or off"):
        RunConfig(channels_last="yes", steps=1).validate()


def test_all_switches_off_leave_the_step_bit_identical():
    plain, real = make_step(r1=1.0)
    switched, _ = make_step(r1=1.0)
    apply_to_step(switched, Performance())
    assert run_steps(plain, real) == run_steps(switched, real)
    for a, b in zip(plain.generator.parameters(), switched.generator.parameters(), strict=True):
        assert torch.equal(a, b)


def test_compile_failure_falls_back_to_eager_with_a_notice(capsys):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    layer = nn.Linear(3, 2)
    compiled = compile_module(layer, "generator", backend=broken_backend)
    x = torch.randn(4, 3)
    torch.testing.assert_close(compiled(x), layer(x))
    assert compiled.failed is not None
    err = capsys.readouterr().err
    assert err.count("compiling the generator failed") == 1 and "running it eagerly" in err
    compiled(x)  # a second call stays eager and quiet
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_compiled_step_matches_eager_step_and_penalty_stays_eager():
    eager, real = make_step(r1=1.0)
    compiled, _ = make_step(r1=1.0)
    apply_to_step(compiled, Performance(compile=True), backend="eager")  # dynamo graphs, no C++ compiler needed
    assert compiled.d_penalty is compiled.discriminator  # R1's double backward runs the eager D
    for a, b in zip(run_steps(eager, real), run_steps(compiled, real), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    assert compiled.g_train.failed is None


@pytest.mark.parametrize("dtype,scaler", [(torch.bfloat16, False), (torch.float16, True)])
def test_mixed_precision_step_on_cpu_follows_fp32(dtype, scaler):
    """CPU autocast runs the same code path as CUDA's, so the AMP wiring is tested without a GPU."""
    fp32, real = make_step(r1=0.5)
    amp, _ = make_step(r1=0.5)
    apply_to_step(amp, Performance(device_type="cpu", amp_dtype=dtype, grad_scaler=scaler))
    assert (amp.scaler_d is not None) == scaler
    a, b = run_steps(fp32, real), run_steps(amp, real)
    for x, y in zip(a, b, strict=True):
        assert x["loss_d"] == pytest.approx(y["loss_d"], abs=0.05)
        assert x["loss_g"] == pytest.approx(y["loss_g"], abs=0.05)
    assert all(p.dtype == torch.float32 for p in amp.generator.parameters())  # master weights stay fp32
    moved = [not torch.equal(p, q) for p, q in zip(fp32.generator.parameters(), amp.generator.parameters(),
                                                    strict=True)]
    assert any(moved)  # a different precision, so not bit-identical: but it trained (losses above agree)
    if scaler:
        state = amp.extra_state()["scalers"]
        assert set(state) == {"d", "g"} and state["d"]["scale"] > 0
        fresh, _ = make_step()
        apply_to_step(fresh, Performance(device_type="cpu", amp_dtype=dtype, grad_scaler=True))
        fresh.load_extra_state({"scalers": state})
        assert fresh.scaler_g.get_scale() == amp.scaler_g.get_scale()
    else:
        assert amp.extra_state() == {}


def test_fused_adam_matches_default_adam_on_cpu():
    w = nn.Parameter(torch.randn(5))
    w2 = nn.Parameter(w.detach().clone())
    fused = make_adam([w], 1e-2, (0.5, 0.999), Performance(fused_adam=True))
    plain = make_adam([w2], 1e-2, (0.5, 0.999), Performance())
    for _ in range(3):
        for p, opt in ((w, fused), (w2, plain)):
            opt.zero_grad()
            (p**2).sum().backward()
            opt.step()
    torch.testing.assert_close(w, w2)
    assert fused.defaults["fused"] and not plain.defaults.get("fused")


def test_training_with_switches_on_cpu(tmp_path, tiny_config, monkeypatch, capsys):
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: False)
    config = tiny_config(steps=4, amp="bf16", channels_last="on", fused_adam="on", doctor=False, report=False)
    result = train(config, tmp_path / "run")
    assert result.step == 4 and all(v == v for v in result.stats.values())
    assert "ganforge: --amp bf16: no native bf16" in capsys.readouterr().err
    # fp32 vs channels-last + fused Adam on CPU: numerically the same training within float tolerance
    reference = train(tiny_config(steps=4, doctor=False, report=False), tmp_path / "ref")
    assert result.stats["Loss/D"] == pytest.approx(reference.stats["Loss/D"], rel=1e-3)


def test_cli_flags_reach_the_config():
    parser = build_parser()
    args = parser.parse_args(["train", "--amp", "off", "--no-channels-last", "--compile", "--no-tf32",
                              "--fused-adam", "on", "--sync-batchnorm", "--ddp-noise", "global"])
    settings = _explicit_settings(args)
    assert settings == {"amp": "off", "channels_last": "off", "compile": True, "tf32": False, "fused_adam": "on",
                        "sync_batchnorm": True, "ddp_noise": "global"}
    assert _explicit_settings(parser.parse_args(["train"])) == {}
    config = RunConfig(steps=1).merged(settings)
    config.validate()
    assert (config.channels_last, config.tf32, config.compile) == ("off", False, True)
