"""Stacked MNIST: is a generator's digit imbalance in its digits, or in how the judge reads them?

`bench/stacked_mnist.py` labels each channel with ganforge's MNIST judge (a CNN). This script labels the same
channels a second, unrelated way (5-nearest neighbours in pixel space over the 60,000 MNIST training digits) and
prints both labellers' digit frequencies (x 10: 1.0 is uniform) and how often they agree, on real Stacked MNIST test
images and on a run's samples. Where the two agree on real digits but not on generated ones, the generator draws
digits that are not clearly any digit, and the judge's histogram of them says more about its reading of unclear
shapes than about which digits the generator favours. It also writes a picture: one row per judge label, 16
generated channels each.

    python bench/stacked_crosscheck.py --data-dir DIR --run RUN_DIR [--checkpoint STEP] [--n 4000] \
        [--picture bench/results/stacked_by_judge.png]
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from ganforge.data.registry import load  # noqa: E402
from ganforge.data.stacked import load_stacked_mnist  # noqa: E402
from ganforge.grid import make_grid, to_uint8  # noqa: E402
from ganforge.metrics.judge import get_judge  # noqa: E402
from ganforge.train import load_run  # noqa: E402


def channels(images: np.ndarray) -> np.ndarray:
    """(N, 3, 28, 28) uint8 -> (3N, 1, 28, 28): every channel an MNIST-like image."""
    return images.transpose(1, 0, 2, 3).reshape(-1, 1, *images.shape[2:])


def compare(name: str, digits: np.ndarray, judge, knn: KNeighborsClassifier) -> np.ndarray:
    """Print both labellers' digit frequencies and their agreement; return the judge's labels."""
    by_judge = np.asarray(judge.predict(torch.from_numpy(digits)))
    by_knn = knn.predict(digits.reshape(len(digits), -1).astype(np.float32) / 255)
    print(f"{name}: {len(digits)} channels, labellers agree on {np.mean(by_judge == by_knn):.1%}")
    for who, labels in (("judge", by_judge), ("5-NN ", by_knn)):
        freq = np.bincount(labels, minlength=10) / len(labels) * 10
        print(f"  {who} digit frequency x10: " + " ".join(f"{d}:{f:.2f}" for d, f in enumerate(freq)))
    differ = by_judge != by_knn
    top = Counter(zip(by_judge[differ].tolist(), by_knn[differ].tolist(), strict=True)).most_common(5)
    print("  most frequent disagreements (judge says, 5-NN says): "
          + ", ".join(f"{a}/{b} x{c}" for (a, b), c in top))
    return by_judge


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    p.add_argument("--run", required=True, help="a Stacked MNIST run directory")
    p.add_argument("--checkpoint", default="latest", help="latest, best, a step, or a checkpoint directory")
    p.add_argument("--n", type=int, default=4000, help="samples (and real test images) to label")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--picture", help="write one row of 16 generated channels per judge label here (.png)")
    args = p.parse_args()
    torch.set_num_threads(1)
    mnist = load("mnist", "train", args.data_dir)
    x_train = mnist.images.numpy().reshape(len(mnist), -1)
    knn = KNeighborsClassifier(n_neighbors=5).fit(x_train.astype(np.float32) / 255, mnist.labels.numpy())
    judge = get_judge("mnist", data_dir=args.data_dir, progress=False)
    real = load_stacked_mnist("test", args.data_dir).images[: args.n].numpy()
    compare("real Stacked MNIST test", channels(real), judge, knn)
    run = load_run(args.run, checkpoint=args.checkpoint, device="cpu")
    digits = channels(to_uint8(run.sample(args.n, seed=args.seed)))
    if digits.shape[2:] != (28, 28):
        raise SystemExit(f"{args.run} draws {digits.shape[2]}x{digits.shape[3]} images; this check needs 28x28")
    labels = compare(f"generated ({run.checkpoint.name})", digits, judge, knn)
    if args.picture:
        blank = np.zeros((16, *digits.shape[1:]), np.uint8)  # a row stays 16 wide when a label has fewer
        rows = [np.concatenate([digits[labels == d][:16], blank])[:16] for d in range(10)]
        grid = make_grid(np.concatenate(rows), nrow=16, min_cell=56)  # 2x enlarged
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid[:, :, 0]).save(args.picture)
        print(f"picture: {args.picture} (row d: channels the judge labels d)")


if __name__ == "__main__":
    main()
