"""ganforge's DCGAN training step against a plain PyTorch loop of the same model, side by side.

Both loops train the same architecture from the same initial weights on the same data, batch
size and thread count, in one process. The plain loop is the pytorch/examples DCGAN recipe
(sigmoid + BCELoss, D on real then on detached fake, G step reusing the fake), fed from the
same in-memory tensor so that only the training step differs. Blocks of steps alternate
between the two (ABAB...) so that load from other processes hits both alike; the median
ms/step over blocks is reported.

    python bench/speed_cpu.py                       # digits upscaled to 28x28 (always available)
    python bench/speed_cpu.py --data mnist --data-dir DIR
    python bench/speed_cpu.py --size 64 --channels 3 --batch-size 64   # the 64x64 pytorch/examples model
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from plain_dcgan import PlainLoop  # noqa: E402

from ganforge.data import load  # noqa: E402
from ganforge.data.spec import DataSpec  # noqa: E402
from ganforge.losses import get_loss  # noqa: E402
from ganforge.nets import build  # noqa: E402
from ganforge.train.gan_step import GANStep  # noqa: E402
from ganforge.train.runtime import BatchStream, configure_threads  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="0 = every core this process may use")
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--steps-per-block", type=int, default=10)
    args = p.parse_args()

    threads = configure_threads(args.threads)
    data = load(args.data, data_dir=args.data_dir, size=args.size)
    images = data.images
    if args.channels != images.shape[1]:
        images = images.expand(-1, args.channels, -1, -1).contiguous()  # (N, C, H, W)
    spec = DataSpec(shape=(args.channels, args.size, args.size), name=data.spec.name)

    torch.manual_seed(0)
    generator, discriminator = build("dcgan", spec)
    plain = PlainLoop(copy.deepcopy(generator), copy.deepcopy(discriminator), images, args.batch_size)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    step = GANStep(generator, discriminator, get_loss("minimax"), opt_g, opt_d,
                   noise=torch.Generator().manual_seed(0))
    stream = BatchStream(images, None, args.batch_size, seed=0, device=torch.device("cpu"))
    step.measure = False  # the trainer measures gradient norms only on logged steps (1 in 50 by default)

    def ours() -> None:
        step([stream.next()])

    timings: dict[str, list[float]] = {"ganforge": [], "plain": []}
    for fn in (ours, plain.step):  # warm-up
        for _ in range(3):
            fn()
    for _ in range(args.blocks):
        for name, fn in (("ganforge", ours), ("plain", plain.step)):
            t = time.perf_counter()
            for _ in range(args.steps_per_block):
                fn()
            timings[name].append((time.perf_counter() - t) / args.steps_per_block * 1000)
    ours_ms, plain_ms = statistics.median(timings["ganforge"]), statistics.median(timings["plain"])
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {threads} thread(s), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"model: DCGAN {args.channels}x{args.size}x{args.size}, batch {args.batch_size}, data {data.source}")
    print(f"plain PyTorch loop: {plain_ms:8.1f} ms/step  (blocks: {', '.join(f'{t:.0f}' for t in timings['plain'])})")
    print(f"ganforge GANStep:   {ours_ms:8.1f} ms/step  (blocks: {', '.join(f'{t:.0f}' for t in timings['ganforge'])})")
    print(f"ratio ganforge/plain: {ours_ms / plain_ms:.3f}  (<= 1.05 required; < 1 means ganforge is faster)")


if __name__ == "__main__":
    main()
