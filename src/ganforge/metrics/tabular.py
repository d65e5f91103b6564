"""Audit a synthetic table: is it faithful, is it useful, and does it give away its training rows?

Three questions, each answered against real rows the generator never saw (``real_holdout``):

- **fidelity**: do single columns and pairs of columns follow the real distributions? The
  definitions are those of the SDMetrics Quality Report (KSComplement, TVComplement,
  CorrelationSimilarity, ContingencySimilarity), so scores can be compared with it.
- **utility**: does a model trained on synthetic rows predict ``target`` on real rows about as well as
  the same model trained on real rows? (train-synthetic-test-real, TSTR, against train-real-test-real, TRTR)
- **privacy**: are synthetic rows closer to the training rows than new real rows are (distance to the
  closest record, exact copies, nearest-neighbour distance ratio), and can an attacker who holds the
  synthetic table tell which rows were used for training (membership inference)?

Every privacy number is shown beside the same number for the holdout rows, because "close" means
nothing on its own: in a table of a few categorical columns, genuinely new people share rows too.
These are empirical checks, not a differential-privacy guarantee.

>>> from ganforge.metrics.tabular import audit, read_table
>>> report = audit(read_table("train.csv"), read_table("synthetic.csv"), read_table("holdout.csv"),
...                target="income")                                  # doctest: +SKIP
>>> print(report.verdict)                                            # doctest: +SKIP
>>> Path("audit.md").write_text(report.to_markdown())               # doctest: +SKIP

Needs pandas (``pip install 'ganforge[tabular]'``); ``import ganforge.metrics`` does not import this module.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import pandas as pd
    from pandas.api import types as ptypes
except ImportError as error:  # an optional dependency: say how to get it
    raise ImportError("ganforge.metrics.tabular needs pandas: pip install 'ganforge[tabular]'") from error
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.neighbors import NearestNeighbors

from ganforge import __version__
from ganforge.errors import ConfigError

__all__ = [
    "METRICS_VERSION",
    "PRIVACY_THRESHOLDS",
    "AuditReport",
    "audit",
    "column_types",
    "detect_identifiers",
    "read_table",
    "write_table",
]

# Bump whenever a definition below changes: it is stamped in every report's protocol, so two audits
# are compared only when they measured the same thing.
METRICS_VERSION = 2  # 2: identifier columns left out of every measure (1 scored them); associated_pair_trends

CONTINUOUS, DATETIME, DURATION, DISCRETE = "continuous", "datetime", "duration", "discrete"
MAX_DISCRETE_INTEGERS = 20  # an integer column with at most this many distinct values is a category
PAIR_BINS = 10  # quantile bins of a continuous column when paired with a discrete one (as SDMetrics)
# "associated" pairs, SDMetrics 0.32 QualityReport's defaults: a real |Pearson| above 0.5 for two continuous
# columns, a real Cramer's V above 0.3 otherwise. Most pairs of a real table are about independent, and on those
# independent per-column sampling scores as well as a fresh real sample, so the all-pairs mean cannot show
# whether relationships were kept; the mean over associated pairs can.
ASSOCIATED_CORRELATION, ASSOCIATED_CRAMERS_V = 0.5, 0.3
ONEHOT_MAX_CATEGORIES = 50  # per column in the privacy space; rarer and unseen categories share one slot
COPY_DECIMALS = 6  # exact copies: continuous values compared after scaling, to 1e-6 of a robust std
RATE_TABLE_MAX = 20  # categories listed per column in category_rates (the maximum difference uses all)
HGB_MAX_CATEGORIES = 250  # HistGradientBoosting's native categorical support needs codes < max_bins (255)

# Privacy verdict. "Excess copies" = share of synthetic rows that exactly copy a training row minus
# the same share for holdout rows: repeats that new real rows also show are not memorisation.
PRIVACY_THRESHOLDS: dict[str, float] = {
    "low_max_excess_copies": 0.001,  # low risk needs all three "low_" conditions
    "low_min_dcr_ratio": 0.9,
    "low_max_mia_auc": 0.55,
    "high_min_mia_auc": 0.6,  # high risk needs either "high_" condition
    "high_min_excess_copies": 0.01,
}

_FRAMES = ("real_train", "synthetic", "real_holdout")


@dataclass
class AuditReport:
    """The outcome of :func:`audit`: three sections of numbers, a verdict in words, and how it was measured.

    ``fidelity``, ``utility`` (None without a target) and ``privacy`` are plain dicts whose keys are
    described in ``docs/tabular_audit.md``; ``protocol`` holds what must match for two audits to be
    compared (seed, rows used, column types, definitions version, the generator's ``dp`` claim).
    """

    fidelity: dict[str, Any]
    utility: dict[str, Any] | None
    privacy: dict[str, Any]
    verdict: str
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-safe builtins: NaN and infinity become None, numpy scalars become floats."""
        return _json_safe({"fidelity": self.fidelity, "utility": self.utility, "privacy": self.privacy,
                           "verdict": self.verdict, "protocol": self.protocol})

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict`` as strict JSON (no NaN tokens, which many readers reject)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self) -> str:
        """A report a reviewer can read: headline scores, verdict, per-column table, privacy numbers."""
        return _markdown(self)


# ----------------------------------------------------------------------------------------------------------
# Files


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``, ...) or Parquet (``.parquet``, ``.pq``) file into a DataFrame.

    Raises ConfigError, with a message that says what to do, for a missing file, an empty file, an
    unknown extension, or Parquet without pyarrow.
    """
    path = Path(path)
    kind = _file_kind(path)
    if not path.is_file():
        raise ConfigError(f"table file not found: {path}")
    if kind == "parquet":
        _require_pyarrow()
        frame = pd.read_parquet(path, engine="pyarrow")
    else:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise ConfigError(f"table file is empty: {path}") from None
    if frame.empty:
        raise ConfigError(f"table file has no rows: {path}")
    return frame


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as CSV or Parquet, chosen by the extension (as :func:`read_table` reads it).

    The index is not written: synthetic rows have no meaningful index, and a written index would come
    back as an extra column. Parent folders are created. Returns the path.
    """
    path = Path(path)
    kind = _file_kind(path)
    if kind == "parquet":
        _require_pyarrow()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        frame.to_parquet(path, engine="pyarrow", index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _file_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    # pandas infers the compression of "x.csv.gz" and friends from the last suffix
    if ".csv" in suffixes[-2:]:
        return "csv"
    raise ConfigError(f"unknown table format {''.join(path.suffixes) or '(no extension)'} for {path}: "
                      "use .csv (optionally .csv.gz/.csv.bz2/.csv.zip/.csv.xz) or .parquet")


def _require_pyarrow() -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise ConfigError("reading and writing Parquet needs pyarrow: pip install pyarrow")


# ----------------------------------------------------------------------------------------------------------
# Column types and preparation


def column_types(frame: pd.DataFrame, discrete_columns: Sequence[str] | None = None) -> dict[Any, str]:
    """The kind of each column, as the audit treats it: "discrete", "continuous", "datetime" or "duration".

    Discrete: object, string, category and boolean columns, integer columns with at most
    ``MAX_DISCRETE_INTEGERS`` distinct values, and any column named in ``discrete_columns``.
    Continuous: other numeric columns. Datetimes and durations are measured as int64 nanoseconds,
    then treated as continuous.
    """
    forced = set(_as_list(discrete_columns))
    kinds: dict[Any, str] = {}
    for column in frame.columns:
        series = frame[column]
        dtype = series.dtype
        if column in forced or ptypes.is_bool_dtype(dtype):
            kinds[column] = DISCRETE
        elif ptypes.is_datetime64_any_dtype(dtype):
            kinds[column] = DATETIME
        elif ptypes.is_timedelta64_dtype(dtype):
            kinds[column] = DURATION
        elif ptypes.is_integer_dtype(dtype):
            kinds[column] = DISCRETE if series.nunique(dropna=True) <= MAX_DISCRETE_INTEGERS else CONTINUOUS
        elif ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype):
            kinds[column] = CONTINUOUS
        else:
            kinds[column] = DISCRETE
    return kinds


def _as_list(names: Sequence[str] | str | None) -> list:
    if names is None:
        return []
    if isinstance(names, str):  # a lone name, not its characters
        return [names]
    return list(names)


def _prepare(series: pd.Series, kind: str) -> np.ndarray:
    """Continuous kinds as float arrays (NaN = missing); discrete as object arrays of labels (None = missing)."""
    return _labels(series) if kind == DISCRETE else _to_float(series, kind)


def _to_float(series: pd.Series, kind: str) -> np.ndarray:
    if kind in (DATETIME, DURATION):
        unit = "datetime64[ns]" if kind == DATETIME else "timedelta64[ns]"
        if kind == DATETIME and not ptypes.is_datetime64_any_dtype(series.dtype):
            with warnings.catch_warnings():  # a generator may write dates as text; unparseable ones count as missing
                warnings.simplefilter("ignore")
                series = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        elif kind == DURATION and not ptypes.is_timedelta64_dtype(series.dtype):
            series = pd.to_timedelta(series, errors="coerce")
        if kind == DATETIME and getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        values = series.to_numpy(dtype=unit)
        out = values.view("int64").astype(float)
        out[np.isnat(values)] = np.nan
        return out
    # a copy: with copy-on-write, to_numpy may return the frame's own read-only buffer
    out = np.array(pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan), copy=True)
    out[~np.isfinite(out)] = np.nan  # infinities would break correlations and scaling: count them as missing
    return out


def _labels(series: pd.Series) -> np.ndarray:
    """Canonical category labels, so that 2, 2.0 and a CSV's "2" name the same category in every frame."""
    missing = series.isna().to_numpy()
    values = series.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)  # filled with None = missing
    for i in np.flatnonzero(~missing):
        out[i] = _label(values[i])
    return out


def _label(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _is_missing(labels: np.ndarray) -> np.ndarray:
    return np.fromiter((v is None for v in labels), dtype=bool, count=len(labels))


# ----------------------------------------------------------------------------------------------------------
# Validation and sampling


def _validate(frames: dict[str, pd.DataFrame], target: str | None, discrete_columns: list, max_rows: int,
              identifiers: list | None = None) -> None:
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        if frame.empty:
            raise ConfigError(f"{name} is empty ({len(frame)} rows, columns {list(map(str, frame.columns))})")
        if frame.columns.duplicated().any():
            duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise ConfigError(f"{name} has duplicated column names: {duplicated}")
    columns = list(frames["real_train"].columns)
    problems = []
    for name in ("synthetic", "real_holdout"):
        missing = [str(c) for c in columns if c not in frames[name].columns]
        if missing:
            problems.append(f"{name} lacks column(s) {missing}")
    if problems:
        raise ConfigError("; ".join(problems) + f" (real_train has {list(map(str, columns))})")
    if target is not None and target not in columns:
        raise ConfigError(f"target {target!r} is not a column of real_train; columns are {list(map(str, columns))}")
    unknown = [str(c) for c in discrete_columns if c not in columns]
    if unknown:
        raise ConfigError(f"discrete_columns {unknown} are not columns of real_train; "
                          f"columns are {list(map(str, columns))}")
    unknown = [str(c) for c in identifiers or [] if c not in columns]
    if unknown:
        raise ConfigError(f"identifiers {unknown} are not columns of real_train; columns are {list(map(str, columns))}")
    if target is not None and target in (identifiers or []):
        raise ConfigError(f"target {target!r} is also named an identifier: an identifier is left out of the audit, "
                          "so it cannot be predicted; drop it from identifiers")
    if not isinstance(max_rows, numbers.Integral) or max_rows < 10:
        raise ConfigError(f"max_rows must be an integer of at least 10, got {max_rows!r}")


def detect_identifiers(frame: pd.DataFrame, exclude: Sequence[Any] = ()) -> dict[Any, str]:
    """The columns of ``frame`` that identify a record rather than describe it, each with the reason.

    The rules are `ganforge.TabularGAN`'s, `ganforge.data.tabular.identifier_rule` (TabularGAN never learns
    such columns and gives synthetic rows fresh values): a name like ``id``, ``customer_id`` or ``email``
    with at least half of its values distinct, text or integers with at least 95% distinct and more than
    50 values, or free text (25 characters on average, half distinct). Numbers are typed as TabularGAN types
    them: floats with a fractional part are measurements (never identifiers, even all distinct), while an
    integer-valued float column is taken for integers (an id column with missing values reads as float64);
    integers with at most 20 distinct values are categories. Scoring an identifier would measure how new
    ids relate to old ones: fresh ids look unfaithful, and copied ids make rows look further from the
    training rows than they are. Columns in ``exclude`` (the target, declared discrete columns) are kept.
    """
    from ganforge.data.tabular import identifier_rule, numeric_kind

    found: dict[Any, str] = {}
    excluded = set(exclude)
    for column in frame.columns:
        series = frame[column]
        dtype = series.dtype
        if column in excluded or ptypes.is_bool_dtype(dtype) or (
                ptypes.is_datetime64_any_dtype(dtype) or ptypes.is_timedelta64_dtype(dtype)):
            continue
        present = series.dropna()
        if present.empty:
            continue
        numeric = ptypes.is_numeric_dtype(dtype)
        distinct = int(present.nunique())
        if numeric and numeric_kind(column, present.to_numpy(dtype=float), ptypes.is_integer_dtype(dtype),
                                    distinct) != "identifier":
            continue  # a measurement, a category or plain integers, as TabularGAN types it
        share = distinct / len(present)
        text = isinstance(present.iloc[0], str)
        length = float(present.astype(str).str.len().mean()) if text else None
        rule = identifier_rule(column, distinct, len(present), length)
        if rule == "named":
            found[column] = f"named like an identifier, {share:.0%} of its values distinct"
        elif rule == "distinct" and (numeric or text):
            found[column] = f"{share:.0%} of its values distinct"
        elif rule == "free_text":
            found[column] = f"free text, {share:.0%} distinct, {length:.0f} characters on average"
    return found


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, the same positions for frames of the same length (a fresh generator per call)."""
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    positions = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[positions].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------
# Fidelity


def _nanmean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _column_shape(real: np.ndarray, synthetic: np.ndarray, kind: str) -> dict[str, Any]:
    """One column's shape score and the diagnostics a reviewer asks about next (range, categories)."""
    if kind == DISCRETE:
        real_missing, synthetic_missing = _is_missing(real), _is_missing(synthetic)
    else:
        real_missing, synthetic_missing = np.isnan(real), np.isnan(synthetic)
    real_values, synthetic_values = real[~real_missing], synthetic[~synthetic_missing]
    missing_real, missing_synthetic = float(real_missing.mean()), float(synthetic_missing.mean())
    entry: dict[str, Any] = {"kind": kind, "metric": "TVComplement" if kind == DISCRETE else "KSComplement",
                             "missing_real": missing_real, "missing_synthetic": missing_synthetic}

    if kind == DISCRETE:
        real_rates = pd.Series(real_values, dtype=object).value_counts(normalize=True)
        synthetic_rates = pd.Series(synthetic_values, dtype=object).value_counts(normalize=True)
        categories = real_rates.index.union(synthetic_rates.index, sort=False)
        p = real_rates.reindex(categories, fill_value=0.0)
        q = synthetic_rates.reindex(categories, fill_value=0.0)
        if len(real_values) == 0:
            value = math.nan
        elif len(synthetic_values) == 0:
            value = 0.0  # synthetic never fills a column that real data fills
        else:
            value = 1.0 - 0.5 * float((p - q).abs().sum())
        unseen = [c for c in synthetic_rates.index if c not in real_rates.index]
        top = (np.maximum(p, q)).sort_values(ascending=False, kind="stable").index[:RATE_TABLE_MAX]
        entry.update(
            n_categories_real=len(real_rates),
            category_rates={c: {"real": float(p[c]), "synthetic": float(q[c])} for c in top},
            max_rate_difference_pp=100.0 * float((p - q).abs().max()) if len(categories) else math.nan,
            unseen_categories=unseen[:RATE_TABLE_MAX],
            n_unseen_categories=len(unseen),
            unseen_share=float(synthetic_rates[unseen].sum()) if unseen else 0.0,
            out_of_range=None,
        )
    else:
        if len(real_values) and len(synthetic_values):
            # only the statistic is used: the asymptotic method skips the slow exact p-value, and its
            # warnings about tiny samples concern that p-value only
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                value = 1.0 - float(ks_2samp(real_values, synthetic_values, method="asymp").statistic)
        else:
            value = 0.0 if len(real_values) else math.nan
        if len(real_values) and len(synthetic_values):
            low, high = real_values.min(), real_values.max()
            out_of_range = float(np.mean((synthetic_values < low) | (synthetic_values > high)))
        else:
            out_of_range = math.nan
        entry["out_of_range"] = out_of_range

    entry["value_similarity"] = value
    if missing_real > 0 or missing_synthetic > 0:
        entry["missing_similarity"] = 1.0 - abs(missing_real - missing_synthetic)
        entry["shape"] = _nanmean([value, entry["missing_similarity"]])
    else:
        entry["missing_similarity"] = None
        entry["shape"] = value
    return entry


def _pair_codes(real: np.ndarray, synthetic: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes for contingency tables; missing values are one more code, as in SDMetrics."""
    if kind == DISCRETE:
        codes, uniques = pd.factorize(np.concatenate([real, synthetic]), use_na_sentinel=True)
        codes = np.where(codes < 0, len(uniques), codes)
        return codes[: len(real)], codes[len(real):], len(uniques) + 1
    finite = real[np.isfinite(real)]
    if len(finite) == 0:
        interior = np.empty(0)
    else:
        # bins are the real data's quantiles, so both tables are cut at the same places
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, PAIR_BINS + 1)))
        interior = edges[1:-1]
    n_bins = len(interior) + 1

    def code(values: np.ndarray) -> np.ndarray:
        out = np.searchsorted(interior, values, side="right")
        out[np.isnan(values)] = n_bins
        return out

    return code(real), code(synthetic), n_bins + 1


def _joint_counts(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """The (n_a, n_b) joint frequency table of two code arrays."""
    return np.bincount(a * n_b + b, minlength=n_a * n_b).reshape(n_a, n_b)


def _contingency_similarity(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - total variation distance between the real and synthetic joint frequency tables (counts)."""
    return 1.0 - 0.5 * float(np.abs(real / real.sum() - synthetic / synthetic.sum()).sum())


def _cramers_v(table: np.ndarray) -> float:
    """Cramer's V of a joint frequency table (missing is a category; empty rows and columns dropped)."""
    from scipy.stats.contingency import association

    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 0.0  # a column with one value is associated with nothing
    return float(association(table, method="cramer"))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    both = np.isfinite(x) & np.isfinite(y)
    if both.sum() < 2:
        return math.nan
    x, y = x[both], y[both]
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _fidelity(real: dict, synthetic: dict, kinds: dict) -> dict[str, Any]:
    columns = list(kinds)
    per_column = {str(c): _column_shape(real[c], synthetic[c], kinds[c]) for c in columns}
    codes = {c: _pair_codes(real[c], synthetic[c], kinds[c]) for c in columns}
    pairs = []
    for i, a in enumerate(columns):
        for b in columns[i + 1:]:
            if kinds[a] != DISCRETE and kinds[b] != DISCRETE:
                corr_real, corr_synthetic = _pearson(real[a], real[b]), _pearson(synthetic[a], synthetic[b])
                score = 1.0 - abs(corr_real - corr_synthetic) / 2.0  # NaN when a column is constant
                pairs.append({"column_1": str(a), "column_2": str(b), "metric": "CorrelationSimilarity",
                              "score": score, "real_correlation": corr_real, "synthetic_correlation": corr_synthetic,
                              "associated": bool(abs(corr_real) > ASSOCIATED_CORRELATION)})
            else:
                (real_a, synthetic_a, n_a), (real_b, synthetic_b, n_b) = codes[a], codes[b]
                real_table = _joint_counts(real_a, real_b, n_a, n_b)
                score = _contingency_similarity(real_table, _joint_counts(synthetic_a, synthetic_b, n_a, n_b))
                cramers_v = _cramers_v(real_table)
                pairs.append({"column_1": str(a), "column_2": str(b), "metric": "ContingencySimilarity",
                              "score": score, "real_cramers_v": cramers_v,
                              "associated": bool(cramers_v > ASSOCIATED_CRAMERS_V)})
    shapes = _nanmean([entry["shape"] for entry in per_column.values()])
    pair_trends = _nanmean([pair["score"] for pair in pairs])
    associated = [pair["score"] for pair in pairs if pair["associated"]]
    return {"score": _nanmean([shapes, pair_trends]), "column_shapes": shapes, "column_pair_trends": pair_trends,
            "associated_pair_trends": _nanmean(associated), "associated_pairs": len(associated),
            "columns": per_column, "pairs": pairs}


# ----------------------------------------------------------------------------------------------------------
# Utility


def _design(frame: dict, features: list, kinds: dict, categories: dict) -> np.ndarray:
    """Feature matrix for HistGradientBoosting: floats for continuous, category codes (NaN = missing/unknown)."""
    blocks = []
    for column in features:
        if kinds[column] == DISCRETE:
            blocks.append(pd.Series(frame[column], dtype=object).map(categories[column]).to_numpy(dtype=float))
        else:
            blocks.append(frame[column])
    return np.column_stack(blocks)


def _macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """ROC AUC: binary, or macro one-vs-rest over the classes present in ``y``.

    Computed class by class (rather than sklearn's multiclass path) so that a model that never saw a
    class, because the synthetic data lacks it, scores 0 for it instead of raising.
    """
    present = np.unique(y)
    if len(present) < 2:
        return math.nan
    index = {c: i for i, c in enumerate(classes)}

    def score(c: Any) -> np.ndarray:
        return proba[:, index[c]] if c in index else np.zeros(len(y))

    if len(present) == 2:
        return float(roc_auc_score(y == present[1], score(present[1])))
    return float(np.mean([roc_auc_score(y == c, score(c)) for c in present]))


def _utility(frames: dict, kinds: dict, target: Any, seed: int) -> dict[str, Any]:
    features = [c for c in kinds if c != target]
    task = "classification" if kinds[target] == DISCRETE else "regression"
    metrics = ("roc_auc", "accuracy") if task == "classification" else ("r2",)
    model_name = "HistGradientBoostingClassifier" if task == "classification" else "HistGradientBoostingRegressor"
    notes: list[str] = []

    def labelled(name: str) -> np.ndarray:
        y = frames[name][target]
        return ~_is_missing(y) if task == "classification" else np.isfinite(y)

    rows = {name: labelled(name) for name in _FRAMES}
    result: dict[str, Any] = {
        "task": task, "target": str(target), "headline": metrics[0],
        "model": f"{model_name}(random_state={seed}, early_stopping=False)",
        "rows": {"train_real": int(rows["real_train"].sum()), "train_synthetic": int(rows["synthetic"].sum()),
                 "test_real_holdout": int(rows["real_holdout"].sum())},
        "metrics": {m: {"tstr": math.nan, "trtr": math.nan, "ratio": math.nan} for m in metrics},
        "synthetic_single_class": False,
    }
    if not features:
        result["note"] = "no feature columns besides the target"
        return result

    # category codes from real_train and synthetic together, so both models read the same encoding;
    # categories only the holdout has are unknown to both and become NaN (HistGradientBoosting's missing)
    categories = {}
    for column in features:
        if kinds[column] == DISCRETE:
            seen = pd.unique(np.concatenate([frames["real_train"][column], frames["synthetic"][column]]))
            categories[column] = {c: i for i, c in enumerate(c for c in seen if c is not None)}
    categorical = np.array([kinds[c] == DISCRETE and len(categories[c]) <= HGB_MAX_CATEGORIES for c in features])

    # early stopping off: its internal stratified split fails on a class with a single row, and a fixed
    # 100 iterations keeps TSTR and TRTR the same model
    options = {"random_state": seed, "early_stopping": False,
               "categorical_features": categorical if categorical.any() else None}
    X = {name: _design(frames[name], features, kinds, categories)[rows[name]] for name in _FRAMES}
    y = {name: frames[name][target][rows[name]] for name in _FRAMES}
    X_test, y_test = X["real_holdout"], y["real_holdout"]
    if len(y_test) == 0:
        result["note"] = f"the holdout has no rows with a value of {str(target)!r}"
        return result

    for key, train in (("tstr", "synthetic"), ("trtr", "real_train")):
        X_train, y_train = X[train], y[train]
        if task == "classification":
            classes = np.unique(y_train.astype(str)) if len(y_train) else np.array([])
            if len(classes) < 2:
                if train == "synthetic":
                    result["synthetic_single_class"] = True
                    result["synthetic_classes"] = [str(c) for c in classes]
                notes.append(f"{train} has {len(classes)} class(es) of {str(target)!r}: no classifier can be trained")
                continue
            model = HistGradientBoostingClassifier(**options)
            model.fit(X_train, y_train.astype(str))
            result["metrics"]["accuracy"][key] = float(accuracy_score(y_test.astype(str), model.predict(X_test)))
            result["metrics"]["roc_auc"][key] = _macro_auc(y_test.astype(str), model.predict_proba(X_test),
                                                           model.classes_)
        else:
            if len(y_train) < 2:
                notes.append(f"{train} has fewer than 2 rows with a value of {str(target)!r}")
                continue
            model = HistGradientBoostingRegressor(**options)
            model.fit(X_train, y_train.astype(float))
            result["metrics"]["r2"][key] = float(r2_score(y_test.astype(float), model.predict(X_test)))
    if task == "classification" and len(np.unique(y_test.astype(str))) < 2:
        notes.append("the holdout has a single class, so ROC AUC is undefined")
    for values in result["metrics"].values():
        tstr, trtr = values["tstr"], values["trtr"]
        # a ratio to a baseline at or below zero (R²) says nothing
        values["ratio"] = tstr / trtr if math.isfinite(tstr) and math.isfinite(trtr) and trtr > 0 else math.nan
    result["note"] = "; ".join(notes) or None
    return result


# ----------------------------------------------------------------------------------------------------------
# Privacy


class _RowSpace:
    """Rows as points where one robust standard deviation and one category mismatch are both distance 1.

    Continuous columns are centred on real_train's median and divided by IQR / 1.349 (the standard
    deviation of a normal with that IQR; the plain standard deviation, then 1, when it is 0), with a
    0/1 missing indicator when any frame has missing values there. A discrete column is one-hot
    encoded with weight 1/sqrt(2), so two different categories are at distance exactly 1. Missing is
    a category; categories beyond the ``ONEHOT_MAX_CATEGORIES`` most frequent in real_train, and
    categories real_train lacks, share one "other" slot, which can only make rows look closer
    (the conservative direction for a privacy check).
    """

    def __init__(self, train: dict, frames: Sequence[dict], kinds: dict) -> None:
        self.kinds = kinds
        self.center: dict[Any, float] = {}
        self.scale: dict[Any, float] = {}
        self.indicator: dict[Any, bool] = {}
        self.slots: dict[Any, dict] = {}
        for column, kind in kinds.items():
            values = train[column]
            if kind == DISCRETE:
                counts = pd.Series(values, dtype=object).fillna("\0missing").value_counts(sort=True)
                self.slots[column] = {c: i for i, c in enumerate(counts.index[:ONEHOT_MAX_CATEGORIES])}
                continue
            finite = values[np.isfinite(values)]
            if len(finite) == 0:
                center, scale = 0.0, 1.0
            else:
                q1, center, q3 = np.quantile(finite, [0.25, 0.5, 0.75])
                scale = (q3 - q1) / 1.349 or float(finite.std()) or 1.0
            self.center[column], self.scale[column] = float(center), float(scale)
            self.indicator[column] = any(np.isnan(frame[column]).any() for frame in frames)

    def scaled(self, frame: dict, column: Any) -> np.ndarray:
        return (frame[column] - self.center[column]) / self.scale[column]

    def encode(self, frame: dict) -> np.ndarray:
        blocks = []
        for column, kind in self.kinds.items():
            if kind == DISCRETE:
                slots = self.slots[column]
                labels = pd.Series(frame[column], dtype=object).fillna("\0missing")
                index = labels.map(slots).fillna(len(slots)).to_numpy(dtype=int)  # unmapped -> "other"
                onehot = np.zeros((len(index), len(slots) + 1))
                onehot[np.arange(len(index)), index] = 1.0 / math.sqrt(2.0)
                blocks.append(onehot)
            else:
                z = self.scaled(frame, column)
                missing = np.isnan(z)
                blocks.append(np.where(missing, 0.0, z)[:, None])
                if self.indicator[column]:
                    blocks.append(missing.astype(float)[:, None])
        return np.hstack(blocks)

    def row_hashes(self, frame: dict) -> np.ndarray:
        """A 64-bit hash per row of the rounded scaled values and the labels: equal rows, equal hashes."""
        keys = {}
        for i, (column, kind) in enumerate(self.kinds.items()):
            if kind == DISCRETE:
                keys[i] = pd.Series(frame[column], dtype=object)
            else:
                keys[i] = pd.Series(np.round(self.scaled(frame, column), COPY_DECIMALS))
        return pd.util.hash_pandas_object(pd.DataFrame(keys), index=False).to_numpy()


def _neighbour_distances(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(reference))
    index = NearestNeighbors(n_neighbors=k).fit(reference)
    distances, _ = index.kneighbors(queries)
    return distances


def _nndr(distances: np.ndarray) -> np.ndarray:
    """Nearest / second-nearest distance; 0 when both are 0 (an exact copy of a repeated row)."""
    if distances.shape[1] < 2:
        return np.full(len(distances), math.nan)
    nearest, second = distances[:, 0], distances[:, 1]
    return np.divide(nearest, second, out=np.zeros_like(nearest), where=second > 0)


def _privacy(frames: dict, kinds: dict, seed: int) -> dict[str, Any]:
    train, synthetic, holdout = (frames[name] for name in _FRAMES)
    space = _RowSpace(train, [train, synthetic, holdout], kinds)
    encoded = {name: space.encode(frames[name]) for name in _FRAMES}

    train_hashes = space.row_hashes(train)
    synthetic_copies = np.isin(space.row_hashes(synthetic), train_hashes)
    holdout_copies = float(np.isin(space.row_hashes(holdout), train_hashes).mean())

    to_train_synthetic = _neighbour_distances(encoded["real_train"], encoded["synthetic"], k=2)
    to_train_holdout = _neighbour_distances(encoded["real_train"], encoded["real_holdout"], k=2)
    dcr_synthetic = float(np.median(to_train_synthetic[:, 0]))
    dcr_holdout = float(np.median(to_train_holdout[:, 0]))
    if dcr_holdout > 0:
        dcr_ratio = dcr_synthetic / dcr_holdout
    else:  # new real rows repeat training rows: synthetic rows that do the same are no closer than they are
        dcr_ratio = 1.0 if dcr_synthetic == 0 else math.inf

    # membership inference: equal numbers of members (train) and non-members (holdout), scored by how
    # close each is to the synthetic table, the only thing the attacker sees
    rng = np.random.default_rng([seed, 1])
    n = min(len(encoded["real_train"]), len(encoded["real_holdout"]))
    members = encoded["real_train"][rng.choice(len(encoded["real_train"]), size=n, replace=False)]
    non_members = encoded["real_holdout"][rng.choice(len(encoded["real_holdout"]), size=n, replace=False)]
    candidates = np.vstack([members, non_members])
    closeness = -_neighbour_distances(encoded["synthetic"], candidates, k=1)[:, 0]
    mia_auc = float(roc_auc_score(np.r_[np.ones(n), np.zeros(n)], closeness))

    values = {
        "exact_copy_share": float(synthetic_copies.mean()),
        "holdout_exact_copy_share": holdout_copies,
        "exact_copy_count": int(synthetic_copies.sum()),
        "dcr_synthetic_median": dcr_synthetic,
        "dcr_synthetic_p5": float(np.percentile(to_train_synthetic[:, 0], 5)),
        "dcr_holdout_median": dcr_holdout,
        "dcr_holdout_p5": float(np.percentile(to_train_holdout[:, 0], 5)),
        "dcr_ratio": dcr_ratio,
        "nndr_synthetic_median": float(np.median(_nndr(to_train_synthetic))),
        "nndr_holdout_median": float(np.median(_nndr(to_train_holdout))),
        "mia_auc": mia_auc,
        "mia_candidates": 2 * n,
    }
    risk, reasons = _privacy_risk(values)
    return {"risk": risk, "reasons": reasons, **values, "thresholds": dict(PRIVACY_THRESHOLDS)}


def _privacy_risk(values: dict[str, float]) -> tuple[str, list[str]]:
    """"high" on either alarm, "low" only when every check is clean, "medium" otherwise, with the reasons."""
    t = PRIVACY_THRESHOLDS
    excess = values["exact_copy_share"] - values["holdout_exact_copy_share"]
    ratio, mia = values["dcr_ratio"], values["mia_auc"]
    high = []
    if mia >= t["high_min_mia_auc"]:
        high.append(f"membership inference AUC {mia:.2f} is at least {t['high_min_mia_auc']:.2f}")
    if excess > t["high_min_excess_copies"]:
        high.append(f"{values['exact_copy_share']:.1%} of synthetic rows copy a training row exactly "
                    f"(new real rows: {values['holdout_exact_copy_share']:.1%})")
    if high:
        return "high", high
    medium = []
    if not excess <= t["low_max_excess_copies"]:
        medium.append(f"exact copies exceed the holdout baseline by {excess:.2%}")
    if math.isnan(ratio) or ratio < t["low_min_dcr_ratio"]:
        medium.append(f"synthetic rows are closer to training rows than new real rows are (DCR ratio {ratio:.2f})")
    if not mia <= t["low_max_mia_auc"]:
        medium.append(f"membership inference AUC {mia:.2f} is above {t['low_max_mia_auc']:.2f}")
    return ("medium", medium) if medium else ("low", [])


# ----------------------------------------------------------------------------------------------------------
# The audit


def audit(
    real_train: pd.DataFrame,
    synthetic: pd.DataFrame,
    real_holdout: pd.DataFrame,
    target: str | None = None,
    *,
    discrete_columns: Sequence[str] | None = None,
    seed: int = 0,
    max_rows: int = 20000,
    dp: dict | None = None,
    identifiers: Sequence[str] | None = None,
) -> AuditReport:
    """Audit ``synthetic`` against the rows it was trained on (``real_train``) and rows it never saw.

    Steps:

    1. Validate: every real_train column must exist in ``synthetic`` and ``real_holdout`` (extra
       columns there are ignored and listed in the protocol); ``target`` must be one of them.
       Identifier columns are left out of everything below: ``identifiers`` names them, or, when it is
       None, :func:`detect_identifiers` finds them in real_train (pass ``[]`` to audit every column).
    2. Sample at most ``max_rows`` rows of each frame with ``seed`` (everything below uses the samples).
    3. Type the columns from real_train (:func:`column_types`).
    4. Fidelity. Column shapes: continuous 1 - KS statistic, discrete 1 - total variation distance of
       category frequencies, both on non-missing values; when either side has missing values, the
       column's shape is the mean of that score and the missing-rate similarity
       1 - |rate_real - rate_synthetic|. Column pair trends: two continuous columns
       1 - |Pearson_real - Pearson_synthetic| / 2 (rows where both are present); otherwise
       1 - TVD of the joint frequency table, continuous columns cut into 10 quantile bins of the real
       data, missing as its own category. Fidelity = mean(shapes mean, pair trends mean).
       Pairs undefined on the real data (a constant column) are left out of the mean.
       ``associated_pair_trends``: the same mean over the pairs associated in real_train (|Pearson| above
       ``ASSOCIATED_CORRELATION``, Cramér's V of the joint table above ``ASSOCIATED_CRAMERS_V``; the
       thresholds of SDMetrics 0.32's QualityReport), with their count in ``associated_pairs``. Only it
       shows lost relationships: on the many near-independent pairs, sampling each column on its own
       scores as well as fresh real rows do.
    5. Utility (with ``target``): HistGradientBoosting with ``random_state=seed`` trained on synthetic
       (TSTR) and on real_train (TRTR), both tested on real_holdout; ROC AUC (macro one-vs-rest for
       several classes) and accuracy, or R², and TSTR / TRTR.
    6. Privacy: distances in :class:`_RowSpace`; exact copies, DCR, NNDR and membership-inference AUC,
       each with its holdout baseline, and a risk level by ``PRIVACY_THRESHOLDS``.
    7. A verdict in words, for readers who will not read the numbers.

    ``dp`` is the generator's differential-privacy claim (e.g. ``{"epsilon": 3, "delta": 1e-5}``);
    it is recorded and quoted, not verified. Raises ConfigError for unusable input.
    """
    frames = {"real_train": real_train, "synthetic": synthetic, "real_holdout": real_holdout}
    discrete = _as_list(discrete_columns)
    named = None if identifiers is None else _as_list(identifiers)
    _validate(frames, target, discrete, max_rows, named)
    if named is None:
        keep = discrete + ([] if target is None else [target])
        left_out = detect_identifiers(real_train, exclude=keep)
    else:
        left_out = {c: "named in identifiers" for c in named}
    columns = [c for c in real_train.columns if c not in left_out]
    if not columns:
        raise ConfigError(f"every column of real_train is an identifier ({list(map(str, left_out))}): nothing "
                          "to audit; pass identifiers=[] (--identifiers none) to audit them anyway")
    audited = set(real_train.columns)
    ignored = {name: [str(c) for c in frames[name].columns if c not in audited] for name in _FRAMES[1:]}
    samples = {name: _sample(frames[name][columns], max_rows, seed) for name in _FRAMES}
    kinds = column_types(samples["real_train"], discrete)
    prepared = {name: {c: _prepare(samples[name][c], kinds[c]) for c in columns} for name in _FRAMES}

    fidelity = _fidelity(prepared["real_train"], prepared["synthetic"], kinds)
    utility = _utility(prepared, kinds, target, seed) if target is not None else None
    privacy = _privacy(prepared, kinds, seed)
    protocol = {
        "definitions_version": METRICS_VERSION,
        "ganforge_version": __version__,
        "seed": seed,
        "max_rows": int(max_rows),
        "rows_given": {name: len(frames[name]) for name in _FRAMES},
        "rows_used": {**{name: len(samples[name]) for name in _FRAMES}, "mia_candidates": privacy["mia_candidates"]},
        "column_types": {str(c): kinds[c] for c in columns},
        "target": None if target is None else str(target),
        "task": None if utility is None else utility["task"],
        "ignored_columns": ignored,
        "identifier_columns": {str(c): why for c, why in left_out.items()},
        "pair_bins": PAIR_BINS,
        "dp": dp,
    }
    verdict = _verdict(fidelity, utility, privacy, protocol)
    return AuditReport(fidelity=fidelity, utility=utility, privacy=privacy, verdict=verdict, protocol=protocol)


# ----------------------------------------------------------------------------------------------------------
# Words


def _pct(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}%}"


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _cell(text: Any) -> str:
    """A table cell: a column named "a|b" must not split the Markdown row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _verdict(fidelity: dict, utility: dict | None, privacy: dict, protocol: dict) -> str:
    sentences = []
    shapes = {c: e["shape"] for c, e in fidelity["columns"].items() if e["shape"] is not None
              and math.isfinite(e["shape"])}
    worst = min(shapes, key=shapes.get) if shapes else None
    sentence = (f"The synthetic table resembles the real one at {_pct(fidelity['score'])} overall "
                f"(single columns {_pct(fidelity['column_shapes'])}, relationships between columns "
                f"{_pct(fidelity['column_pair_trends'])})")
    if worst is not None and len(shapes) > 1 and shapes[worst] < 0.9:  # only worth naming when it lags
        sentence += f"; the least faithful column is '{worst}' ({_pct(shapes[worst])})"
    sentences.append(sentence + ".")

    if utility is not None:
        target = utility["target"]
        if utility.get("synthetic_single_class"):
            only = ", ".join(f"'{c}'" for c in utility.get("synthetic_classes", [])) or "no value"
            sentences.append(f"Its usefulness for predicting '{target}' could not be measured: every synthetic row "
                             f"has the same value ({only}), so no model can learn to tell the classes apart from it.")
        else:
            name = {"roc_auc": "ROC AUC", "r2": "R²"}[utility["headline"]]
            values = utility["metrics"][utility["headline"]]
            sentences.append(f"A model trained on the synthetic rows predicts '{target}' on unseen real rows with "
                             f"{name} {_num(values['tstr'])}, against {_num(values['trtr'])} when trained on the "
                             f"real rows ({_pct(values['ratio'])} of the real-data score).")

    sentences.append(
        f"Privacy risk is {privacy['risk'].upper()}: {_pct(privacy['exact_copy_share'], 1)} of synthetic rows are "
        f"exact copies of training rows ({_pct(privacy['holdout_exact_copy_share'], 1)} for new real rows), "
        f"a typical synthetic row is {_num(privacy['dcr_ratio'])} times as far from its closest training row as a "
        f"new real row is, "
        f"and an attacker holding the synthetic data tells training rows from others with AUC "
        f"{_num(privacy['mia_auc'])} (0.50 is guessing).")
    note = ""
    baseline = privacy["holdout_exact_copy_share"]
    if math.isfinite(baseline) and baseline > PRIVACY_THRESHOLDS["high_min_excess_copies"]:
        # few possible rows (mostly categorical columns): copies are then expected, and judged against this
        note = (f"{_pct(baseline, 1)} of new real rows also repeat a training row, because this table allows few "
                "distinct rows, so copies count only above that share")
    if privacy["reasons"]:
        sentences.append("This rating comes from: " + "; ".join(privacy["reasons"]) + (f" (note: {note})" if note
                                                                                       else "") + ".")
    elif note:
        sentences.append(f"Note that {note}.")

    caveat = (f"These are empirical checks on {protocol['rows_used']['synthetic']} synthetic rows, "
              "not a formal privacy guarantee")
    dp = protocol["dp"]
    if dp:
        claim = ", ".join(f"{k}={v}" for k, v in dp.items()) if isinstance(dp, dict) else str(dp)
        caveat += f"; the generator's differential-privacy claim ({claim}) is recorded here but not verified"
    sentences.append(caveat + ".")
    return " ".join(sentences)


_PRIVACY_MEANINGS = [
    ("exact_copy_share", "share of synthetic rows identical to a training row", "pct"),
    ("holdout_exact_copy_share", "the same for new real rows: the share expected without memorisation", "pct"),
    ("dcr_synthetic_median", "median distance from a synthetic row to its closest training row", "num"),
    ("dcr_holdout_median", "the same for new real rows", "num"),
    ("dcr_synthetic_p5", "5th percentile of the synthetic distances: the closest synthetic rows", "num"),
    ("dcr_holdout_p5", "5th percentile for new real rows", "num"),
    ("dcr_ratio", "synthetic median / holdout median: at least 1 is good, far below 1 means memorisation", "num"),
    ("nndr_synthetic_median", "nearest / second-nearest training distance: near 0 singles out one record", "num"),
    ("nndr_holdout_median", "the same for new real rows", "num"),
    ("mia_auc", "how well an attacker with the synthetic data spots training rows: 0.5 guessing, 1 certain", "num"),
]


def _markdown(report: AuditReport) -> str:
    fidelity, utility, privacy, protocol = report.fidelity, report.utility, report.privacy, report.protocol
    lines = ["# Synthetic table audit", ""]
    headline = f"**Fidelity {_pct(fidelity['score'])}**"
    if utility is not None:
        values = utility["metrics"][utility["headline"]]
        headline += f" · **Utility (TSTR/TRTR {utility['headline']}) {_pct(values['ratio'])}**"
    headline += f" · **Privacy risk: {privacy['risk']}**"
    lines += [headline, "", "## Verdict", "", report.verdict, ""]

    lines += ["## Fidelity", "",
              f"Column shapes {_pct(fidelity['column_shapes'], 1)}, column pair trends "
              f"{_pct(fidelity['column_pair_trends'], 1)}, overall {_pct(fidelity['score'], 1)}. "
              f"Pair trends of the {fidelity['associated_pairs']} associated pair(s) (real |Pearson| above "
              f"{ASSOCIATED_CORRELATION} or Cramér's V above {ASSOCIATED_CRAMERS_V}): "
              f"{_pct(fidelity['associated_pair_trends'], 1) if fidelity['associated_pairs'] else 'none'}.", "",
              "| column | type | shape | metric | missing real / synthetic | out of range | "
              "max category gap (pp) | unseen categories |",
              "|---|---|---:|---|---:|---:|---:|---:|"]
    for column, entry in fidelity["columns"].items():
        out_of_range = "" if entry["kind"] == DISCRETE else _pct(entry["out_of_range"], 1)
        gap = _num(entry.get("max_rate_difference_pp"), 1) if entry["kind"] == DISCRETE else ""
        unseen = str(entry.get("n_unseen_categories", "")) if entry["kind"] == DISCRETE else ""
        lines.append(f"| {_cell(column)} | {entry['kind']} | {_pct(entry['shape'], 1)} | {entry['metric']} | "
                     f"{_pct(entry['missing_real'], 1)} / {_pct(entry['missing_synthetic'], 1)} | {out_of_range} | "
                     f"{gap} | {unseen} |")
    scored = [p for p in fidelity["pairs"] if p["score"] is not None and math.isfinite(p["score"])]
    if scored:
        lines += ["", "Least faithful column pairs:", "", "| columns | metric | score |", "|---|---|---:|"]
        for pair in sorted(scored, key=lambda p: p["score"])[:5]:
            columns = f"{_cell(pair['column_1'])} × {_cell(pair['column_2'])}"
            lines.append(f"| {columns} | {pair['metric']} | {_pct(pair['score'], 1)} |")
    lines.append("")

    if utility is not None:
        lines += ["## Utility", "", f"{utility['task'].capitalize()} of `{utility['target']}` with "
                  f"{utility['model']}, tested on {utility['rows']['test_real_holdout']} held-out real rows.", "",
                  "| metric | trained on synthetic (TSTR) | trained on real (TRTR) | TSTR / TRTR |",
                  "|---|---:|---:|---:|"]
        for metric, values in utility["metrics"].items():
            lines.append(f"| {metric} | {_num(values['tstr'], 3)} | {_num(values['trtr'], 3)} | "
                         f"{_pct(values['ratio'], 1)} |")
        if utility.get("note"):
            lines += ["", f"Note: {utility['note']}."]
        lines.append("")

    lines += ["## Privacy", "", f"Risk: **{privacy['risk']}**" + (f" ({'; '.join(privacy['reasons'])})"
              if privacy["reasons"] else ""), "", "| measure | value | meaning |", "|---|---:|---|"]
    for key, meaning, style in _PRIVACY_MEANINGS:
        value = _pct(privacy[key], 2) if style == "pct" else _num(privacy[key], 3)
        lines.append(f"| {key} | {value} | {meaning} |")
    t = PRIVACY_THRESHOLDS
    lines += ["", f"Low risk: exact copies at most {t['low_max_excess_copies']:.1%} above the holdout baseline, "
              f"DCR ratio at least {t['low_min_dcr_ratio']}, membership AUC at most {t['low_max_mia_auc']}. "
              f"High risk: membership AUC at least {t['high_min_mia_auc']} or exact copies more than "
              f"{t['high_min_excess_copies']:.0%} above the baseline. Medium otherwise.", ""]

    used = protocol["rows_used"]
    lines += ["## Protocol", "",
              f"- definitions version {protocol['definitions_version']}, ganforge {protocol['ganforge_version']}, "
              f"seed {protocol['seed']}",
              f"- rows used: {used['real_train']} train, {used['synthetic']} synthetic, {used['real_holdout']} "
              f"holdout (at most {protocol['max_rows']} each); {used['mia_candidates']} membership candidates",
              "- column types: " + ", ".join(f"{c} ({k})" for c, k in protocol["column_types"].items()),
              f"- differential privacy claimed by the generator: {protocol['dp'] if protocol['dp'] else 'none'}"]
    ignored = {k: v for k, v in protocol["ignored_columns"].items() if v}
    if ignored:
        lines.append("- ignored extra columns: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in ignored.items()))
    identifiers = protocol.get("identifier_columns") or {}
    if identifiers:
        lines.append("- identifier columns, left out of every measure: "
                     + "; ".join(f"{c} ({why})" for c, why in identifiers.items()))
    return "\n".join(lines) + "\n"


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None (null), numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)
