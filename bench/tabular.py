"""Synthetic tables: ganforge's TabularGAN vs CTGAN and TVAE (the `ctgan` package), a Gaussian copula and
independent per-column sampling, on three real tables, judged by ganforge's audit and by SDMetrics.

    python bench/tabular.py --data-dir DIR [--tables credit_data,default,colon] [--seeds 0,1,2]
                            [--systems ganforge,ctgan,tvae,copula,independent,ganforge_dp1,ganforge_dp5]

Ablations of ganforge's defaults are systems too: ganforge_gmm, ganforge_quantile (numeric encoding),
ganforge_no_moments (moment_weight 0), ganforge_ctgan_steps (no minimum step count: CTGAN's 300 epochs).
ganforge_dp<ε>_schema is ganforge_dp<ε> with the discrete columns' categories declared public (a schema);
ganforge_dp<ε>_domain also declares the numeric columns' ranges (data-dictionary style, see _dictionary_range);
ganforge_dp<ε>_ms<p> spends p% of ε on the released moments (DPConfig.moment_share; default 25);
ganforge_dp<ε>_dn<k> soft-thresholds their cross-column covariances at k noise stds (moment_threshold; dn0: off).

DIR (or $GANFORGE_TABLES) holds credit_data.csv, default.csv and colon.csv. Each table is split 80/20,
stratified on its target, with the seed; every system is fitted on the 80% in its own process with one
thread (fit wall and CPU seconds are comparable), samples as many rows as the training split, and is
audited against the 20% holdout. CTGAN and TVAE reject missing numbers, so their training copy has
the median imputed (as their users must). They need `pip install ctgan sdmetrics` (they pin pandas < 3: use
a separate virtual environment, e.g. `python -m venv --system-site-packages`). Results are appended as
JSON lines to bench/results/tabular.jsonl and summarised in bench/results/tabular.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

TABLES = {"credit_data": "Status", "default": "default", "colon": "status"}
ALL_SYSTEMS = ["ganforge", "ctgan", "tvae", "copula", "independent", "ganforge_dp1", "ganforge_dp5"]
# ganforge with one setting changed from its defaults (ablations; name them in --systems)
VARIANTS = {"ganforge": {}, "ganforge_gmm": {"numeric_encoding": "gmm"},
            "ganforge_quantile": {"numeric_encoding": "quantile"}, "ganforge_no_moments": {"moment_weight": 0.0},
            "ganforge_ctgan_steps": {"min_steps": 0}}


# --- baselines -------------------------------------------------------------------------------------------
def independent(train, n: int, seed: int):
    """Each column resampled on its own: every marginal kept, every relation between columns lost."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: train[c].to_numpy()[rng.integers(len(train), size=n)] for c in train.columns})


def gaussian_copula(train, n: int, seed: int):
    """A Gaussian copula: every column mapped to normal scores through its empirical CDF (categories by their
    cumulative frequency intervals), the correlation of the scores fitted, sampled, mapped back by quantiles."""
    import pandas as pd
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    m = len(train)
    scores, inverse = [], []
    for c in train.columns:
        col = train[c]
        order = np.argsort(np.argsort(col.astype(str).to_numpy() if col.dtype == object else col.to_numpy(),
                                      kind="stable"), kind="stable")
        scores.append(norm.ppf((order + 0.5) / m))
        sorted_values = col.to_numpy()[np.argsort(col.astype(str).to_numpy() if col.dtype == object
                                                  else col.to_numpy(), kind="stable")]
        inverse.append(sorted_values)
    z = np.nan_to_num(np.stack(scores, 1))
    corr = np.corrcoef(z, rowvar=False) + 1e-6 * np.eye(z.shape[1])
    draws = rng.multivariate_normal(np.zeros(z.shape[1]), corr, size=n)
    idx = np.clip((norm.cdf(draws) * m).astype(int), 0, m - 1)
    return pd.DataFrame({c: inverse[j][idx[:, j]] for j, c in enumerate(train.columns)}).astype(train.dtypes)


def _dictionary_range(column) -> tuple[float, float]:
    """A column's range as a data dictionary would state it: the observed one rounded outward to the leading
    digit of its width ([18, 85] -> [10, 90], [8, 3329] -> [0, 4000], [1, 3] -> [1, 3])."""
    low, high = float(column.min()), float(column.max())
    step = 10.0 ** np.floor(np.log10(max(high - low, 1e-12)))
    return float(np.floor(low / step) * step), float(np.ceil(high / step) * step)


# --- one fit in its own process ----------------------------------------------------------------------------
def _fit_and_sample(system: str, train, discrete: list[str], target: str, seed: int, epochs: int, queue) -> None:
    import torch

    torch.set_num_threads(1)
    start, cpu0 = time.time(), time.process_time()
    n = len(train)
    try:
        if system in VARIANTS or system.startswith("ganforge_dp"):
            from ganforge.apps.tabular import DPConfig, TabularGAN

            dp = None
            if system not in VARIANTS:  # ganforge_dp<eps>[_schema]
                epsilon, *variants = system[len("ganforge_dp"):].split("_")
                # _schema: the discrete columns' categories declared as a public schema (as MST/AIM users
                # must give their domain), so none is suppressed and none costs budget
                declared = {c: sorted(train[c].dropna().unique().tolist(), key=str) for c in discrete} \
                    if "schema" in variants or "domain" in variants else {}
                # _domain: the schema plus every numeric column's range as a data dictionary would give it (the
                # observed range rounded outward to the leading digit of its width: colon's age [18, 85] is
                # declared [10, 90]), the domain MST/AIM users must declare for every column
                bounds = {c: _dictionary_range(train[c]) for c in train.columns
                          if c not in discrete and np.issubdtype(train[c].dtype, np.number)} \
                    if "domain" in variants else {}
                # _ms<percent>: the share of ε spent on the released moments (DPConfig.moment_share)
                extra = {}
                for v in variants:
                    if v.startswith("ms"):
                        extra["moment_share"] = int(v[2:]) / 100
                    elif v.startswith("dn"):
                        extra["moment_threshold"] = float(v[2:])
                dp = DPConfig(epsilon=float(epsilon), categories=declared, bounds=bounds, **extra)
            model = TabularGAN(epochs=epochs, seed=seed, dp=dp, progress=False, threads=1, **VARIANTS.get(system, {}))
            model.fit(train, discrete_columns=discrete, target=target)  # as `ganforge tabular fit --target`
            fit_s, fit_cpu = time.time() - start, time.process_time() - cpu0
            synthetic = model.sample(n, seed=seed)
            extra = {"privacy": model.privacy}
        elif system in ("ctgan", "tvae"):
            from ctgan import CTGAN, TVAE

            torch.manual_seed(seed)
            np.random.seed(seed)
            # CTGAN and TVAE reject missing numbers: impute the median, as their users must
            filled = train.copy()
            for c in filled.columns:
                if c not in discrete and filled[c].isna().any():
                    filled[c] = filled[c].fillna(filled[c].median())
            model = CTGAN(epochs=epochs) if system == "ctgan" else TVAE(epochs=epochs)
            model.fit(filled, discrete_columns=discrete)
            fit_s, fit_cpu = time.time() - start, time.process_time() - cpu0
            synthetic = model.sample(n)
            extra = {}
        elif system == "copula":
            synthetic = gaussian_copula(train, n, seed)
            fit_s, fit_cpu, extra = time.time() - start, time.process_time() - cpu0, {}
        else:
            synthetic = independent(train, n, seed)
            fit_s, fit_cpu, extra = time.time() - start, time.process_time() - cpu0, {}
        queue.put({"synthetic": synthetic, "fit_s": fit_s, "fit_cpu_s": fit_cpu, **extra})
    except Exception as e:  # noqa: BLE001 - reported in the results, the benchmark goes on
        queue.put({"error": f"{type(e).__name__}: {e}"})


def run_isolated(system, train, discrete, target, seed, epochs) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fit_and_sample, args=(system, train, discrete, target, seed, epochs, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# --- measuring ---------------------------------------------------------------------------------------------
def out_of_range(train, synthetic, skip=()) -> float:
    """Share of synthetic numeric cells outside the training column's [min, max] (identifier columns skipped)."""
    cells = bad = 0
    for c in train.columns:
        if c not in skip and train[c].dtype.kind in "fi" and train[c].notna().any():
            values = synthetic[c].dropna().to_numpy(dtype=float)
            cells += len(values)
            bad += int(((values < train[c].min()) | (values > train[c].max())).sum())
    return bad / max(cells, 1)


def sdmetrics_quality(train, synthetic, discrete: list[str]) -> dict:
    try:
        from sdmetrics.reports.single_table import QualityReport
    except ImportError:
        return {}
    metadata = {"columns": {c: {"sdtype": "categorical" if (c in discrete or train[c].dtype == object
                                                            or train[c].dtype == bool) else "numerical"}
                            for c in train.columns}}
    report = QualityReport()
    report.generate(train, synthetic[train.columns], metadata, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return {"sdm_quality": float(report.get_score()), "sdm_shapes": float(props.get("Column Shapes", np.nan)),
            "sdm_pairs": float(props.get("Column Pair Trends", np.nan)),
            "sdm_pairs_shared_bins": _pairs_on_real_bins(report, train, synthetic, metadata)}


def _pairs_on_real_bins(report, train, synthetic, metadata) -> float:
    """The QualityReport's pair score recomputed with both tables' numeric columns cut at the *real* column's
    bin edges (SDMetrics' own ``ContingencySimilarity.compute(..., continuous_column_names=...)``, 10 bins).

    The report (0.32) cuts each table over its own range, so a synthetic column whose range differs from the
    real one (a DP model trims single-row extremes it cannot see) is scored on shifted bins: colon's `time`,
    8..3,329 real and 150..2,998 DP, puts every synthetic bin up to a whole bin off. Independent sampling
    copies the real values, so its bins line up by construction. The same pairs (the report's, scored where
    the real columns are associated), the same metric; only the bins are shared. Numeric-numeric pairs
    (CorrelationSimilarity, no bins) keep the report's score."""
    from sdmetrics.column_pairs import ContingencySimilarity

    details = report.get_details("Column Pair Trends")
    numeric = {c for c, m in metadata["columns"].items() if m["sdtype"] == "numerical"}
    scores = []
    for _, row in details.iterrows():
        if not np.isfinite(row["Score"]):
            continue
        pair = [row["Column 1"], row["Column 2"]]
        if row["Metric"] != "ContingencySimilarity":
            scores.append(float(row["Score"]))
            continue
        scores.append(float(ContingencySimilarity.compute(
            train[pair], synthetic[pair], continuous_column_names=[c for c in pair if c in numeric],
            num_discrete_bins=10)))
    return float(np.mean(scores)) if scores else float("nan")


def measure(train, holdout, synthetic, target: str, discrete: list[str], seed: int) -> dict:
    from ganforge.metrics.tabular import audit

    report = audit(train, synthetic[train.columns], holdout, target=target, discrete_columns=discrete, seed=seed)
    d = report.to_dict()
    minority = train[target].value_counts().idxmin()
    auc = ((d.get("utility") or {}).get("metrics") or {}).get("roc_auc") or {}
    gaps = [c.get("max_rate_difference_pp") for c in d["fidelity"]["columns"].values()]
    row = {
        "fidelity": d["fidelity"]["score"], "shapes": d["fidelity"]["column_shapes"],
        "pairs": d["fidelity"]["column_pair_trends"],
        "pairs_assoc": d["fidelity"]["associated_pair_trends"], "n_assoc": d["fidelity"]["associated_pairs"],
        "tstr_auc": auc.get("tstr"), "trtr_auc": auc.get("trtr"),
        "rare_rate_real": float((train[target] == minority).mean()),
        # a DP model may leave cells missing (nullable dtype): a missing target is not the minority
        "rare_rate_synth": float(synthetic[target].eq(minority).fillna(False).astype(bool).mean()),
        "max_category_gap_pp": max([g for g in gaps if g is not None], default=None),
        "out_of_range": out_of_range(train, synthetic, skip=d["protocol"].get("identifier_columns", {})),
        "dcr_ratio": d["privacy"]["dcr_ratio"], "exact_copies": d["privacy"]["exact_copy_share"],
        "mia_auc": d["privacy"]["mia_auc"], "privacy_risk": d["privacy"]["risk"],
        # the audit's definitions (2: identifier columns such as colon's `id` left out)
        "audit_version": d["protocol"]["definitions_version"],
        "identifiers_left_out": sorted(d["protocol"].get("identifier_columns", {})),
    }
    row.update(sdmetrics_quality(train, synthetic, discrete))
    return row


def main() -> None:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("GANFORGE_TABLES"))
    p.add_argument("--tables", default=",".join(TABLES))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    p.add_argument("--epochs", type=int, default=300, help="CTGAN's default, for every GAN/VAE")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "tabular.jsonl"))
    args = p.parse_args()
    if not args.data_dir:
        raise SystemExit("give --data-dir DIR (or $GANFORGE_TABLES) with credit_data.csv, default.csv, colon.csv")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus"
    for table in args.tables.split(","):
        target = TABLES[table]
        df = pd.read_csv(Path(args.data_dir) / f"{table}.csv")
        discrete = [c for c in df.columns if df[c].dtype == object or df[c].dtype == bool
                    or (df[c].dtype.kind == "i" and df[c].nunique() <= 20) or c == target]
        for seed in [int(s) for s in args.seeds.split(",")]:
            train, holdout = train_test_split(df, test_size=0.2, stratify=df[target], random_state=seed)
            train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
            for system in args.systems.split(","):
                result = run_isolated(system, train, discrete, target, seed, args.epochs)
                row = {"table": table, "seed": seed, "system": system, "epochs": args.epochs,
                       "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine}
                if "error" in result:
                    row["error"] = result["error"]
                else:
                    row.update(fit_s=result["fit_s"], fit_cpu_s=result["fit_cpu_s"],
                               privacy=result.get("privacy"),
                               **measure(train, holdout, result["synthetic"], target, discrete, seed))
                with open(out, "a") as f:
                    f.write(json.dumps(row, default=str) + "\n")
                print(json.dumps({k: row.get(k) for k in ("table", "seed", "system", "fit_s", "sdm_quality",
                                                          "fidelity", "tstr_auc", "mia_auc", "error")}), flush=True)
    summarise(out)


def summarise(path: Path) -> None:
    """bench/results/tabular.md from the JSON lines: mean (and std) over seeds per table and system."""
    import pandas as pd

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame([r for r in rows if "error" not in r])
    cols = ["fit_s", "fit_cpu_s", "sdm_quality", "sdm_shapes", "sdm_pairs", "sdm_pairs_shared_bins", "fidelity",
            "shapes", "pairs",
            "pairs_assoc", "tstr_auc", "trtr_auc", "rare_rate_real", "rare_rate_synth", "max_category_gap_pp",
            "out_of_range", "dcr_ratio",
            "exact_copies", "mia_auc"]
    lines = ["# Synthetic tables: ganforge vs CTGAN, TVAE, Gaussian copula, independent sampling", "",
             f"Machine and dates: {sorted({r['machine'] for r in rows})}, {sorted({r['date'][:10] for r in rows})}. "
             "Mean over seeds (n = seeds run). `python bench/tabular.py` (see its docstring).", ""]
    for table, part in df.groupby("table", sort=False):
        lines += [f"## {table}", "", "| system | n | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
        for system, g in part.groupby("system", sort=False):
            cells = [_cell(g[c]) if c in g and g[c].notna().any() else "" for c in cols]
            lines.append(f"| {system} | {len(g)} | " + " | ".join(cells) + " |")
        lines.append("")
    done = {(r["table"], r["seed"], r["system"]) for r in rows if "error" not in r}
    errors = [r for r in rows if "error" in r and (r["table"], r["seed"], r["system"]) not in done]  # not rerun
    if errors:
        lines += ["## Errors", ""] + [f"- {r['table']} seed {r['seed']} {r['system']}: {r['error']}" for r in errors]
    md = path.with_suffix(".md")
    notes = md.read_text().split("\n## Notes", 1) if md.exists() else []
    if len(notes) == 2:  # the hand-written reading below the tables is kept
        lines += ["", "## Notes" + notes[1].rstrip("\n")]
    md.write_text("\n".join(lines) + "\n")


def _cell(values) -> str:
    """Mean, with the standard deviation over seeds when there are several."""
    v = values.dropna().astype(float)
    return f"{v.mean():.3f}" if len(v) < 2 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


if __name__ == "__main__":
    main()
