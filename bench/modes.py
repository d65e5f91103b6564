"""Mode collapse on 2-D mixtures: the same MLP GAN with and without ganforge's remedies.

ring8 (8 Gaussians on a circle of radius 2, std 0.02) and grid25 (5x5 grid, spacing 2, std 0.05), the same MLP
in every arm (3 hidden layers of 128 in G and D unless --hidden; noise size --z-dim, 16 by default, 2 in the
runs that met the targets), the same number of steps and batch (256); "plain" is the vanilla recipe
(non-saturating loss, Adam 2e-4, betas (0.5, 0.999)), "remedies" and "remedies_r1" add ganforge's stabilisers
(REMEDIES, REMEDIES_R1; the latter is `--preset mixture2d`'s). Each run is scored on 2,500 samples from its
own seeded noise with `ganforge.metrics.modes.mixture_mode_stats` (a sample is high quality within 3 std of
its nearest mode; a mode is captured with at least 1 % of the high-quality samples; KL of the captured-mode
histogram to uniform).

    python bench/modes.py [--seeds 0,1,2,3,4] [--steps 6000] [--arms plain,remedies,remedies+drs]
    python bench/modes.py --datasets grid25 --z-dim 2 --steps 40000 --arms plain,remedies_r1,remedies_r1+drs
    # the configuration of --preset mixture2d; add --plot DIR for one PNG of seed 0's samples per dataset

Rows accumulate in the --out file's .json (a run replaces its own rows); the table lists every configuration.

An arm ``<arm>+drs`` samples the trained ``<arm>`` run (reused when it ran first) through discriminator
rejection sampling (`ganforge.train.rejection`); its ``seconds`` are the rejection fit and sampling only.

Targets (issue 4): all 8 ring modes and >= 24.5 of 25 grid modes on average, >= 90 % high quality
(PacGAN reports 24.8 modes and 93.6 % on the grid).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ganforge.metrics.modes import mixture_mode_stats  # noqa: E402
from ganforge.train import RunConfig, load_run, train  # noqa: E402

MLP = {"hidden_g": (128, 128, 128), "hidden_d": (128, 128, 128), "z_dim": 16}
PLAIN: dict = {}
REMEDIES = {"r1_weight": 0.1, "ema": 0.999, "lr_decay": "linear"}
# the same with a 10x stronger R1: on grid25 with z 2 it kept all 25 modes on a seed where R1 0.1 lost 7
REMEDIES_R1 = {**REMEDIES, "r1_weight": 1.0}
ARMS = {"plain": PLAIN, "remedies": REMEDIES, "remedies_r1": REMEDIES_R1}
# an arm "<arm>+drs" samples the trained <arm> run through discriminator rejection sampling
DRS = {"steps": 6000, "lr": 1e-3, "gammas": (0.0, -3.0, -6.0), "max_candidates_per_sample": 2000}


def run(data: str, arm: str, seed: int, steps: int, root: Path, n_eval: int, batch_size: int, z_dim: int,
        hidden: tuple[int, ...]) -> tuple[dict, torch.Tensor]:
    base, drs = arm.removesuffix("+drs"), arm.endswith("+drs")
    out = root / f"{data}-{base}-{seed}"
    config = RunConfig(model="mlp", data=data, model_config={**MLP, "z_dim": z_dim, "hidden_g": hidden,
                                                                 "hidden_d": hidden}, steps=steps, seed=seed,
                       batch_size=batch_size, sample_every=steps, checkpoint_every=steps, log_every=100,
                       progress=False, threads=1, report=False, **ARMS[base])
    start = time.time()
    if not (drs and (out / "checkpoints" / f"step_{steps:06d}").is_dir()):  # +drs reuses <arm>'s run when there
        shutil.rmtree(out, ignore_errors=True)
        train(config, out)
    extra = {}
    if drs:
        from ganforge.errors import ConfigError
        from ganforge.train.rejection import fit_rejection

        sampler = fit_rejection(out, steps=DRS["steps"], lr=DRS["lr"], seed=seed, progress=False)
        for gamma in DRS["gammas"]:  # exact rejection first; a shift only where it accepts too few candidates
            try:
                samples = sampler.sample(n_eval, seed=10_000 + seed, gamma=gamma,
                                         max_candidates_per_sample=DRS["max_candidates_per_sample"])
                break
            except ConfigError as e:
                print(f"  {data} seed {seed}, gamma {gamma}: {e}", flush=True)
        else:
            raise SystemExit(f"rejection sampling failed at every gamma of {DRS['gammas']}")
        extra = {"acceptance": sampler.info["last_acceptance"], "gamma": gamma}
    else:
        samples = load_run(out).sample(n_eval, seed=10_000 + seed)  # noise of its own, not the training stream
    seconds = time.time() - start
    stats = mixture_mode_stats(samples.numpy(), data)
    row = {"data": data, "arm": arm, "seed": seed, "steps": steps, "z_dim": z_dim, "hidden": list(hidden),
           "batch_size": batch_size,
           "modes": stats.modes_captured, "n_modes": stats.n_modes, "high_quality": stats.high_quality,
           "kl": stats.kl_to_uniform, "seconds": round(seconds, 1), **extra}
    return row, samples


def save_panels(panels: dict[str, torch.Tensor], data: str, path: Path) -> Path:
    """One picture: each arm's samples (red) over the real test points (grey), side by side, arm names above."""
    from PIL import Image, ImageDraw

    from ganforge.data.toy import MIXTURES
    from ganforge.grid import scatter_image

    reference = torch.from_numpy(MIXTURES[data].sample(2500, seed=1)[0])
    extent = 5.5 if data == "grid25" else 2.75
    size, label = 300, 18
    pic = Image.new("RGB", (size * len(panels), size + label), "white")
    for i, (name, samples) in enumerate(panels.items()):
        pic.paste(scatter_image(samples, reference=reference, size=size, extent=extent), (i * size, label))
        ImageDraw.Draw(pic).text((i * size + 6, 3), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    pic.save(path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--z-dim", type=int, default=MLP["z_dim"], help="noise size of G (2 = the data's own dimension)")
    p.add_argument("--hidden", default="128,128,128", help="hidden widths of G and D")
    p.add_argument("--datasets", default="ring8,grid25")
    p.add_argument("--arms", default="plain,remedies")
    p.add_argument("--n-eval", type=int, default=2500)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "modes.md"))
    p.add_argument("--plot", help="folder for one PNG per dataset: the first seed's samples of every arm")
    p.add_argument("--from-json", help="only write the table from the .json of an earlier (possibly cut short) run")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="ganforge-modes-"))
    json_path = Path(args.out).with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    # earlier runs' rows stay (a run replaces only its own rows: same data, arm, seed, steps, batch and net)
    source = Path(args.from_json or json_path)
    rows = json.loads(source.read_text()) if source.is_file() else []
    panels: dict[str, dict[str, torch.Tensor]] = {}
    for data in [] if args.from_json else args.datasets.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for arm in args.arms.split(","):
                r, samples = run(data, arm, seed, args.steps, root, args.n_eval, args.batch_size, args.z_dim,
                                 tuple(int(w) for w in args.hidden.split(",")))
                if args.plot and seed == int(args.seeds.split(",")[0]):
                    r_name = f"{arm}: {r['modes']}/{r['n_modes']} modes, {r['high_quality']:.0%} HQ"
                    panels.setdefault(data, {})[r_name] = samples
                rows = [o for o in rows if _key(o) != _key(r)] + [r]
                print(f"{data:7s} {arm:9s} seed {seed}: {r['modes']}/{r['n_modes']} modes, "
                      f"{r['high_quality']:.1%} high quality, KL {r['kl']:.3f}  ({r['seconds']:.0f} s)", flush=True)
                json_path.write_text(json.dumps(rows, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    for data, by_arm in panels.items():
        name = f"modes_{data}_z{args.z_dim}_{args.hidden.replace(',', '-')}_{args.steps}.png"
        print("wrote", save_panels(by_arm, data, Path(args.plot) / name))
    write_table(rows, Path(args.out), args.n_eval)


def _key(row: dict) -> tuple:
    return row["data"], row["arm"], row["seed"], row["steps"], row.get("batch_size", 256), _net(row)


def _net(row: dict) -> str:
    hidden = row.get("hidden", list(MLP["hidden_g"]))
    width = f"{hidden[0]}x{len(hidden)}" if len(set(hidden)) == 1 else "-".join(map(str, hidden))
    return f"z {row.get('z_dim', 16)}, {width}"


def write_table(rows: list[dict], out: Path, n_eval: int) -> None:
    """The table of every (data, net, steps, arm) in ``rows``; the hand-written part of ``out`` (from its
    first ``## `` heading) is kept."""

    def cell(vals: list[float], fmt: str) -> str:
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{format(statistics.mean(vals), fmt)} ± {format(sd, fmt)}"

    notes = ""
    if out.is_file() and "\n## " in out.read_text():
        notes = out.read_text()[out.read_text().index("\n## "):]
    lines = [
        "# Mode collapse on 2-D mixtures: plain MLP GAN vs ganforge's remedies",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread; "
        f"table written {time.strftime('%Y-%m-%d')} from modes.json (each row: its own run)",
        "- command: `python bench/modes.py --seeds 0,1,2,3,4 --steps STEPS --z-dim Z [--hidden W,W,W] --datasets DATA "
        "--arms plain,remedies,remedies+drs`",
        "- model: MLP G and D with the row's noise size z and hidden widths (128x3: three layers of 128); batch 256; "
        "plain = non-saturating loss, Adam 2e-4, betas (0.5, 0.999)",
        f"- remedies: {json.dumps(REMEDIES)}; remedies_r1: {json.dumps(REMEDIES_R1)}",
        "- +drs: the same run sampled by discriminator rejection sampling (`ganforge sample --rejection`): its D "
        f"fitted to the density ratio for {DRS['steps']} steps at lr {DRS['lr']:g}; gamma 0 (exact rejection "
        f"sampling), or the first of {DRS['gammas'][1:]} that accepts at least 1 in "
        f"{DRS['max_candidates_per_sample']} candidates (per seed below)",
        f"- protocol: {n_eval} samples from seeded noise (10000 + seed); high quality = within 3 std of the "
        "nearest mode (a ball); captured = at least 1% of the high-quality samples; KL of the captured-mode "
        "histogram (high-quality samples) to uniform",
        "",
        "| data | net | steps | arm | seeds | modes captured | high quality | KL | accepted | per seed (modes / HQ) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], _net(r), r["steps"], r["arm"]), []).append(r)
    arm_order = {a: i for i, a in enumerate(["plain", "plain+drs", "remedies", "remedies+drs", "remedies_r1",
                                              "remedies_r1+drs"])}
    for (data, net, steps, arm), sel in sorted(groups.items(), key=lambda g: (g[0][0] != "ring8", g[0][0], g[0][1],
                                                                            g[0][2], arm_order.get(g[0][3], 9))):
        sel = sorted(sel, key=lambda r: r["seed"])
        kls = [r["kl"] for r in sel]
        kl = cell(kls, ".3f") if all(k != float("inf") for k in kls) else "inf (a run with no captured mode)"
        per = "; ".join(f"{r['modes']} / {r['high_quality']:.0%}"
                        + (f" (γ {r['gamma']:g})" if r.get("gamma") else "") for r in sel)
        accepted = cell([100 * r["acceptance"] for r in sel], ".1f") + " %" if "acceptance" in sel[0] else "-"
        lines.append(f"| {data} | {net} | {steps} | {arm} | {len(sel)} | {cell([r['modes'] for r in sel], '.1f')} of "
                     f"{sel[0]['n_modes']} | {cell([100 * r['high_quality'] for r in sel], '.1f')} % | {kl} | "
                     f"{accepted} | {per} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + notes)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
