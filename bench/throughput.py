"""Training throughput of the 64x64 DCGAN: ganforge's fast path against the plain pytorch/examples loop.

One full training step = D update (real and fake) + G update, at batch 128 and 1024, for

* ganforge: ``ganforge.nets.build("dcgan")`` at 64x64x3 (nz 100, 64 filters), its `GANStep` set up
  exactly as ``ganforge train`` sets it up (`ganforge.train.fast`: autocast, channels-last, fused Adam,
  optional torch.compile / CUDA graphs, as resolved for the device), batches from its `BatchStream`,
  stats reported every step and flushed every 50 steps (as the trainer does);
* the reference: the pytorch/examples dcgan/main.py Generator, Discriminator (with its Sigmoid) and
  training step, written out below, in fp32, from the same initial weights (the state dicts have
  the same keys; the parameter counts are checked), fed the same data (random uint8 images on the
  device), without the per-step ``.item()`` calls of the original (they would only slow it down).

Both run in this process, in alternating blocks of timed steps after a warm-up (so load from other
processes falls on both alike); the median block gives images/s. ``--check-loss N`` instead trains
both for N steps on the same batches and noise and prints both loss curves. ``--ttq`` measures
time-to-quality on MNIST (28x28, a CPU-sized configuration): wall time until each system's
generator first reaches the same fd (ganforge's judge features).

    python bench/throughput.py --device cpu --batch-sizes 128 --threads 2
    python bench/throughput.py --device cuda --batch-sizes 128,1024 [--compile] [--cuda-graphs]
    python bench/throughput.py --device cuda --check-loss 200
    python bench/throughput.py --ttq --data-dir DIR --budget 240
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from ganforge.data.spec import DataSpec  # noqa: E402
from ganforge.losses import get_loss  # noqa: E402
from ganforge.monitor import Collector  # noqa: E402
from ganforge.nets import build  # noqa: E402
from ganforge.train.config import RunConfig  # noqa: E402
from ganforge.train.fast import (  # noqa: E402
    apply_backend_flags,
    apply_to_step,
    make_adam,
    resolve_performance,
    to_channels_last,
)
from ganforge.train.gan_step import GANStep  # noqa: E402
from ganforge.train.runtime import BatchStream, configure_threads  # noqa: E402

NZ, NGF, NDF, NC = 100, 64, 64, 3
LOG_EVERY = 50


# --- the reference: pytorch/examples dcgan/main.py ----------------------------------------------------------
class RefGenerator(nn.Module):
    def __init__(self, nz: int = NZ, ngf: int = NGF, nc: int = NC):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)  # (B, nz, 1, 1) -> (B, nc, 64, 64)


class RefDiscriminator(nn.Module):
    def __init__(self, nc: int = NC, ndf: int = NDF):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


class ReferenceLoop:
    """The pytorch/examples training step: BCELoss on sigmoid outputs, D on real then on detached fake
    (two backward calls), one D step, then G against the updated D reusing the fake batch."""

    def __init__(self, netG: nn.Module, netD: nn.Module, images: torch.Tensor, batch_size: int,  # noqa: N803
                 device: torch.device, seed: int = 0, sigmoid: bool = False, z_4d: bool = True):
        self.netG, self.netD = netG, netD
        self.sigmoid = sigmoid  # D outputs logits (ganforge's D): apply the Sigmoid the examples' D ends with
        self.z_4d = z_4d
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.stream = BatchStream(images, None, batch_size, seed, device)  # same order as ganforge's stream
        self.noise = torch.Generator(device=device).manual_seed(seed)
        self.device = device

    def d(self, x: torch.Tensor) -> torch.Tensor:
        out = self.netD(x)
        return torch.sigmoid(out).view(-1) if self.sigmoid else out

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        real, _ = self.stream.next()
        b = real.shape[0]
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        output = self.d(real)
        errD_real = self.criterion(output, label)  # noqa: N806
        errD_real.backward()
        shape = (b, NZ_OF[id(self.netG)], 1, 1) if self.z_4d else (b, NZ_OF[id(self.netG)])
        noise = torch.randn(*shape, device=self.device, generator=self.noise)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.d(fake.detach())
        errD_fake = self.criterion(output, label)  # noqa: N806
        errD_fake.backward()
        self.optD.step()
        # (2) update G: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.d(fake)
        errG = self.criterion(output, label)  # noqa: N806
        errG.backward()
        self.optG.step()
        return (errD_real + errD_fake).detach(), errG.detach()


NZ_OF: dict[int, int] = {}  # the noise size of each reference generator (the examples' G does not carry it)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- ganforge, set up as `ganforge train` sets it up ---------------------------------------------------------
class Ganforge:
    def __init__(self, generator: nn.Module, discriminator: nn.Module, images: torch.Tensor, batch_size: int,
                 device: torch.device, config: RunConfig, seed: int = 0, quiet: bool = False):
        self.perf = resolve_performance(config, device, image_model=True, quiet=quiet)
        apply_backend_flags(self.perf)
        if self.perf.channels_last:
            to_channels_last(generator, discriminator)
        opt_g = make_adam(generator.parameters(), 2e-4, (0.5, 0.999), self.perf)
        opt_d = make_adam(discriminator.parameters(), 2e-4, (0.5, 0.999), self.perf)
        self.step_fn = GANStep(generator, discriminator, get_loss("non_saturating"), opt_g, opt_d,
                               noise=torch.Generator(device=device).manual_seed(seed))
        apply_to_step(self.step_fn, self.perf)
        self.stream = BatchStream(images, None, batch_size, seed, device,
                                  memory_format=torch.channels_last if self.perf.channels_last else None)
        self.collector = Collector()  # stats as the trainer gathers them: on the device, flushed every 50 steps
        self.i = 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.i += 1
        logged = self.i % LOG_EVERY == 0
        self.step_fn.measure = logged
        with self.collector:
            out = self.step_fn([self.stream.next()])
            if logged:
                self.collector.flush(self.i)
        return out["loss_d"], out["loss_g"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_pair(args: argparse.Namespace, batch: int, device: torch.device, quiet: bool = False):
    """(ganforge, reference) on the same initial weights and the same images."""
    torch.manual_seed(args.seed)
    generator, discriminator = build("dcgan", DataSpec(shape=(NC, 64, 64)), z_dim=NZ, ngf=NGF, ndf=NDF)
    ref_g, ref_d = RefGenerator(), RefDiscriminator()
    counts = (n_params(generator), n_params(discriminator), n_params(ref_g), n_params(ref_d))
    assert counts[:2] == counts[2:], f"parameter counts differ from pytorch/examples: {counts}"
    ref_g.load_state_dict(generator.state_dict())
    ref_d.load_state_dict(discriminator.state_dict())  # same keys: ganforge's D is the examples' D minus Sigmoid
    ref_g.to(device)
    ref_d.to(device)
    NZ_OF[id(ref_g)] = NZ
    generator.to(device)
    discriminator.to(device)
    n_images = max(4 * batch, 2048)
    images = torch.randint(0, 256, (n_images, NC, 64, 64), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1)).to(device)
    config = RunConfig(amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                       cuda_graphs=args.cuda_graphs, fused_adam=args.fused_adam)
    ours = Ganforge(generator, discriminator, images, batch, device, config, seed=args.seed, quiet=quiet)
    ref = ReferenceLoop(ref_g, ref_d, images, batch, device, seed=args.seed, sigmoid=False, z_4d=True)
    return ours, ref, counts


def time_pair(args: argparse.Namespace, batch: int, device: torch.device) -> dict:
    ours, ref, counts = make_pair(args, batch, device)
    fns = {"ganforge": ours.step, "reference": ref.step}
    for fn in fns.values():  # warm-up: cuDNN autotuning, compilation, allocator
        for _ in range(args.warmup):
            fn()
        sync(device)
    blocks: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.blocks):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
            sync(device)
            blocks[name].append(batch * args.steps / (time.perf_counter() - t))
    ours_ips, ref_ips = statistics.median(blocks["ganforge"]), statistics.median(blocks["reference"])
    row = {"batch": batch, "ganforge_images_per_s": ours_ips, "reference_images_per_s": ref_ips,
           "ratio": ours_ips / ref_ips, "blocks": blocks, "fast_path": ours.perf.describe(),
           "notices": list(ours.perf.notices), "steps_per_block": args.steps, "warmup": args.warmup,
           "params_g": counts[0], "params_d": counts[1]}
    print(f"batch {batch:5d}: ganforge {ours_ips:10.1f} img/s ({ours.perf.describe()}), reference fp32 "
          f"{ref_ips:10.1f} img/s, ratio {ours_ips / ref_ips:.3f}   blocks ganforge "
          f"{', '.join(f'{v:.0f}' for v in blocks['ganforge'])}; reference "
          f"{', '.join(f'{v:.0f}' for v in blocks['reference'])}", flush=True)
    return row


def check_loss(args: argparse.Namespace, device: torch.device) -> dict:
    """Both systems, same weights, same batches, same noise: their loss curves side by side."""
    ours, ref, _ = make_pair(args, args.batch_sizes[0], device)
    curve = []
    for i in range(args.check_loss):
        d1, g1 = ours.step()
        d2, g2 = ref.step()
        curve.append([i + 1, float(d1), float(g1), float(d2), float(g2)])
        if (i + 1) % max(1, args.check_loss // 20) == 0 or i == 0:
            print(f"step {i + 1:5d}  ganforge D {curve[-1][1]:.4f} G {curve[-1][2]:.4f}   reference D "
                  f"{curve[-1][3]:.4f} G {curve[-1][4]:.4f}", flush=True)
    return {"batch": args.batch_sizes[0], "fast_path": ours.perf.describe(), "curve": curve}


# --- time to quality on MNIST ---------------------------------------------------------------------------------
def time_to_quality(args: argparse.Namespace, device: torch.device) -> dict:
    from ganforge.data import load
    from ganforge.metrics.evaluate import evaluate, make_extractor
    from ganforge.train.run import generate

    train = load("mnist", split="train", data_dir=args.data_dir)
    test = load("mnist", split="test", data_dir=args.data_dir)
    extractor = make_extractor("mnist", "image", "judge", data_dir=args.data_dir)
    real = test.to_float()[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.n_eval]]
    torch.manual_seed(args.seed)
    generator, discriminator = build("dcgan", DataSpec(shape=train.spec.shape, name="mnist"), ngf=args.ttq_width,
                                     ndf=args.ttq_width)
    ref_g, ref_d = copy.deepcopy(generator).to(device), copy.deepcopy(discriminator).to(device)
    NZ_OF[id(ref_g)] = generator.z_dim
    images = train.images.to(device)
    config = RunConfig(amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                       cuda_graphs=args.cuda_graphs, fused_adam=args.fused_adam)
    ours = Ganforge(generator.to(device), discriminator.to(device), images, args.ttq_batch, device, config,
                    seed=args.seed)
    ref = ReferenceLoop(ref_g, ref_d, images, args.ttq_batch, device, seed=args.seed, sigmoid=True, z_4d=False)
    systems = {"ganforge": (ours.step, generator), "reference": (ref.step, ref_g)}
    spent = dict.fromkeys(systems, 0.0)
    steps = dict.fromkeys(systems, 0)
    snapshots: dict[str, list[tuple[float, int, dict]]] = {name: [] for name in systems}
    next_snap = dict.fromkeys(systems, args.snapshot_every)
    while any(s < args.budget for s in spent.values()):  # alternating 5-second slices of training
        for name, (fn, g) in systems.items():
            if spent[name] >= args.budget:
                continue
            start = time.perf_counter()
            while time.perf_counter() - start < 5.0:
                fn()
                steps[name] += 1
            sync(device)
            spent[name] += time.perf_counter() - start
            if spent[name] >= next_snap[name]:
                snapshots[name].append((spent[name], steps[name], copy.deepcopy(g.state_dict())))
                next_snap[name] += args.snapshot_every
    z = torch.randn(args.n_eval, generator.z_dim, generator=torch.Generator().manual_seed(1000)).to(device)
    curves: dict[str, list[dict]] = {}
    probe = copy.deepcopy(generator)
    for name, snaps in snapshots.items():
        curves[name] = []
        for seconds, n_steps, state in snaps:
            probe.load_state_dict(state)
            fake = generate(probe, z, None).float().cpu()
            scores = evaluate(fake, real, dataset="mnist", reference="mnist:test", metrics=["fd"], extractor=extractor,
                              seed=0, progress=False)
            curves[name].append({"seconds": round(seconds, 1), "steps": n_steps, "fd": scores[0].value})
            print(f"  {name:9s} {seconds:7.1f} s {n_steps:6d} steps  fd {scores[0].value:.2f}", flush=True)
    # the target: the worse of the two systems' best fd, so that both reach it
    target = max(min(c["fd"] for c in curve) for curve in curves.values())
    reached = {name: next((c for c in curve if c["fd"] <= target), None) for name, curve in curves.items()}
    print(f"time to fd <= {target:.2f}: " + ", ".join(f"{n} {r['seconds']} s ({r['steps']} steps)"
                                                     for n, r in reached.items() if r), flush=True)
    return {"target_fd": target, "reached": reached, "curves": curves, "batch": args.ttq_batch, "width": args.ttq_width,
            "budget_s": args.budget, "n_eval": args.n_eval, "protocol": scores[0].protocol.describe(),
            "fast_path": ours.perf.describe()}


def machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return (f"{platform.machine()} {platform.processor() or 'CPU'}, {os.cpu_count()} cores, {threads} torch "
            f"thread(s), torch {torch.__version__}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", default="128,1024")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = every core this process may use)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="timed steps per block")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--fused-adam", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cuda-graphs", action="store_true")
    p.add_argument("--check-loss", type=int, default=0, metavar="N", help="train both N steps; print both losses")
    p.add_argument("--ttq", action="store_true", help="time-to-quality on MNIST instead of throughput")
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    p.add_argument("--budget", type=float, default=240.0, help="--ttq: training seconds per system")
    p.add_argument("--snapshot-every", type=float, default=30.0, help="--ttq: seconds between fd evaluations")
    p.add_argument("--ttq-batch", type=int, default=64)
    p.add_argument("--ttq-width", type=int, default=64, help="--ttq: ngf = ndf of the 28x28 DCGAN")
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "throughput.json"),
                   help="JSON file the results are merged into (under the key of this mode and device)")
    args = p.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    device = torch.device(args.device)
    threads = configure_threads(args.threads) if device.type == "cpu" else torch.get_num_threads()
    header = {"date": datetime.date.today().isoformat(), "machine": machine(device, threads),
              "command": "python " + " ".join(sys.argv)}
    print(f"{header['date']}  {header['machine']}", flush=True)
    if args.ttq:
        key, result = f"ttq_{device.type}", time_to_quality(args, device)
    elif args.check_loss:
        key, result = f"check_loss_{device.type}", check_loss(args, device)
    else:
        key = (f"throughput_{device.type}" + ("_compile" if args.compile else "")
               + ("_graphs" if args.cuda_graphs else "") + (f"_amp-{args.amp}" if args.amp != "auto" else "")
               + (f"_channels-last-{args.channels_last}" if args.channels_last != "auto" else ""))
        result = {"rows": [time_pair(args, b, device) for b in args.batch_sizes]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(out.read_text()) if out.is_file() else {}
    merged[key] = {**header, **result}
    out.write_text(json.dumps(merged, indent=1))
    out.with_suffix(".md").write_text(markdown(merged))
    print(f"wrote {out} [{key}] and {out.with_suffix('.md')}")


def markdown(results: dict) -> str:
    """bench/results/throughput.md from everything measured so far (throughput.json)."""
    lines = ["# Training throughput: ganforge vs the pytorch/examples DCGAN loop (bench/throughput.py)", "",
             "64x64x3 DCGAN (nz 100, 64 filters), one full step = D update + G update; images/s = median block; "
             "the reference is the pytorch/examples step in fp32. See docs/performance.md.", "",
             "| run | date | machine | batch | ganforge fast path | ganforge img/s | reference img/s | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        for row in r.get("rows", []):
            lines.append(f"| {key} | {r['date']} | {r['machine']} | {row['batch']} | {row['fast_path']} | "
                         f"{row['ganforge_images_per_s']:.1f} | {row['reference_images_per_s']:.1f} | "
                         f"{row['ratio']:.3f} |")
    for key, r in results.items():
        if "curve" in r:
            lines += ["", f"## Loss curves ({key}: batch {r['batch']}, ganforge {r['fast_path']}, same weights, "
                      "batches and noise)", "", "| step | ganforge D | ganforge G | reference D | reference G |",
                      "|---|---|---|---|---|"]
            lines += [f"| {c[0]} | {c[1]:.4f} | {c[2]:.4f} | {c[3]:.4f} | {c[4]:.4f} |" for c in r["curve"]]
        if "curves" in r:
            lines += ["", f"## Time to quality on MNIST ({key}: {r['date']}, {r['machine']})", "",
                      f"28x28 DCGAN (ngf = ndf = {r.get('width', 64)}), batch {r['batch']}, {r['budget_s']:g} s "
                      "of training per system in alternating "
                      f"5 s slices; ganforge {r['fast_path']}; protocol: {r['protocol']}. Target fd = the worse of "
                      f"the two systems' best fd = {r['target_fd']:.2f}.", ""]
            for name, hit in r["reached"].items():
                lines.append(f"- {name}: " + (f"fd <= {r['target_fd']:.2f} after {hit['seconds']} s "
                                             f"({hit['steps']} steps)" if hit else "target not reached"))
            lines += ["", "| system | seconds | steps | fd |", "|---|---|---|---|"]
            for name, curve in r["curves"].items():
                lines += [f"| {name} | {c['seconds']} | {c['steps']} | {c['fd']:.2f} |" for c in curve]
        lines += ["", f"`{key}`: `{r['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
