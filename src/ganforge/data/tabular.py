"""A reversible transformer for mixed-type tables: the rows a tabular GAN reads and writes.

Each original column becomes one or more *spans* of the transformed row (see :class:`Span`):

- continuous, integer and datetime columns: CTGAN's mode-specific normalisation. A Bayesian Gaussian
  mixture finds the modes; a value becomes ``alpha = (x - mu_k) / (4 sigma_k)`` (a "value" span, tanh)
  and a one-hot of its mode ``k`` (a "mode" span, softmax). Unlike CTGAN, any single value holding at
  least ``point_mass_threshold`` of the rows (the exact zeros of an amount, a default date) gets its own
  mode slot and comes back exactly, so zero-inflation survives.
- categorical and boolean columns: a one-hot "category" span (the conditions of a conditional GAN).
- any column with missing values: a 2-wide "missing" span ``[present, missing]``, so the missing rate
  is learned instead of imputed away.
- identifiers (nearly all values distinct, or named like ``id``/``email``) and constant columns are not
  encoded; they come back as fresh, obviously synthetic ids and as the constant.

``inverse_transform`` returns a frame with the fit frame's columns, order and dtypes, values clipped to
the training range, integers rounded and categories from the fitted set only. ``to_dict`` is plain JSON
(no pickle), so a saved model can be loaded without running code from the file.

With ``dp=(epsilon, delta)`` the transformer looks at the data only through differentially private
mechanisms (column types then come from dtypes and the caller's declarations), and each spend is
recorded in ``privacy_ledger``; see :meth:`TabularTransformer.fit`.

>>> from ganforge.data.tabular import TabularTransformer
>>> transformer = TabularTransformer().fit(df)                      # doctest: +SKIP
>>> rows = transformer.transform(df)                                # (N, transformer.output_dim) float32
>>> back = transformer.inverse_transform(rows)                      # doctest: +SKIP

Needs pandas (``pip install 'ganforge[tabular]'``); ``import ganforge.data`` does not import this module.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np

try:
    import pandas as pd
    from pandas.api import types as ptypes
except ImportError as error:  # an optional dependency: say how to get it
    raise ImportError("ganforge.data.tabular needs pandas: pip install 'ganforge[tabular]'") from error

from ganforge.errors import ConfigError

__all__ = ["KINDS", "ColumnInfo", "Span", "TabularTransformer"]

KINDS = ("continuous", "integer", "categorical", "boolean", "datetime", "identifier", "constant")
NUMERIC_KINDS = ("continuous", "integer", "datetime")  # mode-specific normalisation
DISCRETE_KINDS = ("categorical", "boolean")  # one-hot; usable as conditions

FORMAT = "ganforge.tabular_transformer"
FORMAT_VERSION = 1
NUMERIC_ENCODINGS = ("gmm", "quantile")
QUANTILE_KNOTS = 100  # "quantile" encoding: the empirical CDF at this many + 1 evenly spaced quantiles
RANGE_FALSE_BIN = 0.001  # DP ranges: the chance that any empty public bin of a column clears the threshold
INTEGRAL_SHARE = 0.02  # DP: a float column is integer-valued when under this share of its noisy rows are not
EXTEND_FALSE_BIN = 0.025  # DP ranges and shapes: the chance that one empty bin next to the bulk is taken in
RANGE_MANTISSAS = (1, 2, 5)  # DP ranges: public bin edges 0, +-m x 10^k
SHAPE_MANTISSAS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)  # DP shapes: finer public edges (a superset)
DP_HISTOGRAM_BINS = 16  # DP mode: a numeric column's shape is a Laplace histogram of this many equal bins

MAX_DISCRETE_INTEGERS = 20  # as ganforge.metrics.tabular: at most this many distinct integers is a category
GMM_MAX_ROWS = 2_000  # the mixture sees at most this many evenly spaced quantiles of a column (speed)
ALPHA_LIMIT = 0.99  # CTGAN's clip of the normalised value inside a Gaussian mode
ID_UNIQUE_SHARE, ID_MIN_DISTINCT = 0.95, 50  # "nearly all values distinct"
ID_NAMED_UNIQUE_SHARE = 0.5  # enough for a column whose name says it is an identifier
FREE_TEXT_MIN_LENGTH, FREE_TEXT_UNIQUE_SHARE = 25, 0.5  # long, mostly distinct strings are free text
MIXED_MIN_SHARE = 0.05  # numbers and text both at least this share of a column: ambiguous
DATE_MIN_SHARE, DATE_SAMPLE = 0.95, 200  # strings are dates when this share of a sample parses
ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "ssn", "email", "mail", "phone", "telephone", "mobile", "name",
                      "names", "firstname", "lastname", "surname", "fullname", "username", "userid", "customerid",
                      "passport", "iban"})
_NS_STEPS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3)  # day ... microsecond
_NAT = np.iinfo(np.int64).min


@dataclass
class Span:
    """One block of a transformed row: ``row[start:end]`` encodes part of ``column``.

    ``role`` is "value" (1 dim, tanh: the normalised value within a mode), "mode" (one-hot over a
    numeric column's modes and point masses), "category" (one-hot over a discrete column's
    categories) or "missing" (2-dim one-hot ``[present, missing]``). ``activation`` is what the
    generator's output layer applies to the block: "tanh" or "softmax".
    """

    column: Any
    role: str
    start: int
    end: int
    activation: str


@dataclass
class ColumnInfo:
    """What the transformer learned about one original column, everything needed to encode and decode it.

    Numeric kinds: Gaussian modes (``means``/``stds``/``weights``, in the column's units; datetimes in
    int64 nanoseconds), then ``point_masses``, form the mode span in that order; ``scaling`` is "gmm"
    or "quantile" (the level F(x) for the piecewise-linear CDF ``knots``/``cdf``, empirical, or in DP mode a DP
    histogram's over ``[minimum, maximum]``, whose two ends are then point masses; with K ``means``, the
    levels are K equal-share bins, the mode is the bin and the scalar the position inside it, 2 (K F - b) - 1)
    or "minmax" (DP mode, for datetimes and without histograms: the same single mode, linear). Values decoded
    from a Gaussian mode are clipped to ``mode_range``, so only a point mass's own slot produces its value:
    clipping must not add zeros to a zero-inflated column. Discrete kinds: ``categories`` in span order.
    ``fill_slot`` is the mode slot or category written for missing rows (the commonest), so a missing row
    still looks like a generator's output.
    ``missing_rate`` is None in DP mode, where it would leak.
    """

    name: Any
    kind: str
    dtype: str
    missing_rate: float | None
    missing: bool = False  # has a "missing" span
    scaling: str | None = None
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    point_masses: list[float | int] = field(default_factory=list)
    minimum: float | int | None = None
    maximum: float | int | None = None
    mode_range: list | None = None  # [low, high] of the values the Gaussian modes stand for (inside min/max)
    knots: list[float] = field(default_factory=list)  # "quantile" scaling: bin edges ...
    cdf: list[float] = field(default_factory=list)  # ... and the (DP) cumulative share at each
    decimals: int | None = None  # continuous output rounded to this many decimals (the data's own precision)
    step: int | None = None  # datetime output rounded to a multiple of this many nanoseconds
    fill_slot: int = 0
    categories: list = field(default_factory=list)
    noisy_counts: list[float] | None = None  # DP mode: the released Laplace counts of ``categories``
    dtype_categories: list | None = None  # a pandas category dtype's categories and order
    ordered: bool = False
    as_text: bool = False  # numbers or dates stored as strings in the frame
    date_format: str | None = None  # strftime format of dates stored as text
    constant: Any = None  # datetimes as int64 nanoseconds
    id_prefix: str | None = None  # string identifiers: prefix + running number
    id_start: int | None = None  # integer identifiers: id_start, id_start + id_step, ...
    id_step: int = 1


class TabularTransformer:
    """Encode a DataFrame as float32 rows for a GAN, and decode generated rows back to a DataFrame.

    Hyperparameters (public, saved by ``to_dict``):

    - ``column_types``: ``{column: kind}`` overriding the inferred kind (one of :data:`KINDS`).
    - ``discrete_columns``: columns to treat as categorical whatever their dtype (CTGAN's argument).
    - ``max_modes``, ``weight_threshold``: mixture components tried per numeric column, and the weight
      below which a component is dropped (CTGAN's 10 and 0.005).
    - ``point_mass_threshold``: a single value holding at least this share of a numeric column's
      present values gets its own exact mode slot.
    - ``numeric_encoding``: "gmm" (CTGAN's mode-specific normalisation: a scalar within one of up to
      ``max_modes`` Gaussian modes, plus a one-hot over the modes) or "quantile" (one scalar, 2 F(x) - 1 for
      the column's empirical CDF F at ``QUANTILE_KNOTS`` quantiles: no mode for the generator to pick, so
      two related columns are related through one smooth function of two scalars). Point masses and
      missing values are encoded the same way in both. In DP mode the CDF is always a DP histogram.
      ``quantile_bins`` > 1 splits the CDF's levels into that many equal-share bins: a one-hot says which
      bin (a sharp, discrete handle, e.g. for "nodes > 4" or "students earn less") and the scalar where
      inside it.
    - ``seed``: the mixture's ``random_state`` and the mode sampling of ``transform``.
    """

    def __init__(self, *, column_types: dict[str, str] | None = None, discrete_columns: Sequence[str] | None = None,
                 max_modes: int = 10, weight_threshold: float = 0.005, point_mass_threshold: float = 0.05,
                 numeric_encoding: str = "gmm", quantile_bins: int = 1, seed: int = 0) -> None:
        self.column_types = dict(column_types or {})
        self.discrete_columns = [discrete_columns] if isinstance(discrete_columns, str) else list(
            discrete_columns or [])
        self.max_modes = int(max_modes)
        self.weight_threshold = float(weight_threshold)
        self.point_mass_threshold = float(point_mass_threshold)
        self.seed = int(seed)
        self.numeric_encoding = str(numeric_encoding)
        self.quantile_bins = int(quantile_bins)
        if self.quantile_bins < 1:
            raise ConfigError(f"quantile_bins must be at least 1, got {quantile_bins}")
        if self.numeric_encoding not in NUMERIC_ENCODINGS:
            raise ConfigError(f"numeric_encoding must be one of {', '.join(NUMERIC_ENCODINGS)}, got "
                              f"{numeric_encoding!r}")
        bad = {c: k for c, k in self.column_types.items() if k not in KINDS}
        if bad:
            raise ConfigError(f"column_types {bad}: kinds must be one of {', '.join(KINDS)}")
        if self.max_modes < 1:
            raise ConfigError(f"max_modes must be at least 1, got {max_modes}")
        if not 0 < self.point_mass_threshold <= 1:
            raise ConfigError(f"point_mass_threshold must be in (0, 1], got {point_mass_threshold}")
        self.columns: list[ColumnInfo] = []
        self.spans: list[Span] = []
        self.output_dim = 0
        self.notes: list[str] = []
        self.privacy_ledger: list[dict] = []
        self.dp: tuple[float, float] | None = None
        self._dp_histograms = True
        self._layout: dict[Any, dict[str, Span]] = {}

    # ------------------------------------------------------------------------------------------------------
    # Public API

    @property
    def epsilon_spent(self) -> float:
        """Total epsilon of the preprocessing (basic composition: the sum of the ledger)."""
        return float(sum(entry["epsilon"] for entry in self.privacy_ledger))

    @property
    def delta_spent(self) -> float:
        """Total delta of the preprocessing (the sum of the ledger)."""
        return float(sum(entry["delta"] for entry in self.privacy_ledger))

    def fit(self, df: pd.DataFrame, *, bounds: dict[str, tuple[Any, Any]] | None = None,
            categories: dict[str, list] | None = None,
            dp: tuple[float, float] | None = None, dp_histograms: bool = True,
            noise_seed: int | None = None) -> TabularTransformer:
        """Learn how to encode ``df``; returns self.

        ``bounds`` ``{column: (low, high)}`` and ``categories`` ``{column: [values...]}`` are public
        knowledge about the columns (a range from the data dictionary, the list of possible values): they
        replace the training min/max and observed categories, and cost no privacy budget. Values outside
        ``bounds`` are clipped; datetime bounds may be timestamps or strings. ``noise_seed`` seeds the DP noise
        below (default: ``seed``); anyone who knows it can take the noise back out, so `TabularGAN` passes a
        secret one.

        With ``dp=(epsilon, delta)``, the data is only seen through differentially private mechanisms
        (neighbouring tables differ by adding or removing one row):

        1. Column kinds come from dtypes, names and the declarations above, never from the values: bool
           dtype is boolean, datetime dtype datetime, integers integer, floats continuous, text
           categorical, a column named like an id identifier. No constant detection.
        2. The budget is split evenly over the columns that need it: every continuous and integer column
           and categorical columns without ``categories``. Without ``bounds``, a numeric column's range and
           shape come from noisy counts of public log-spaced bins (coarse ones for the range: the outer edges
           of the bins whose noisy count clears a threshold; fine ones inside it for the shape); with
           ``bounds``, its shape is a Laplace histogram of DP_HISTOGRAM_BINS equal bins between them. The
           shares of the categories and the undeclared numeric columns are pooled into one Gaussian release
           over all of them (`_dp_release_domain`; all of delta goes to it). Datetime columns need ``bounds``.
           Each spend is an entry of ``privacy_ledger``. With ``dp_histograms=False`` numeric columns get no
           shape (min-max scaling), so a fully declared table costs nothing.
        3. Numeric columns get one mode (no mixture, which would look at the data) whose scalar is the
           value mapped through the DP histogram's piecewise-linear CDF (about uniform, whatever the
           column's skew; datetimes: min-max scaled); point masses come back exactly: with declared bounds,
           a bound whose own bin clears a threshold (exact zeros of a non-negative column with bounds
           (0, ...), clipped tails); without, zero when the bin [0, 1e-6) clears one.
        4. Every encoded column gets a missing span. Values outside the known categories are encoded as
           missing rather than raising, since an error would reveal them. On decoding, a column whose
           dtype cannot hold missing values (int64, bool) ignores its missing span.
        """
        _check_frame(df)
        bounds, categories = dict(bounds or {}), dict(categories or {})
        self._check_arguments(df, bounds, categories, dp)
        self.dp = None if dp is None else (float(dp[0]), float(dp[1]))
        self._dp_histograms = dp_histograms
        # DP noise must be unpredictable: TabularGAN passes a secret seed (never saved with the transformer)
        self._noise_seed = self.seed if noise_seed is None else int(noise_seed)
        self.columns, self.notes, self.privacy_ledger = [], [], []
        try:
            self._fit_columns(df, bounds, categories)
        except BaseException:
            self.columns, self.spans, self.output_dim = [], [], 0  # not half fitted
            raise
        self._build_spans()
        return self

    def _fit_columns(self, df: pd.DataFrame, bounds: dict, categories: dict) -> None:
        kinds = {name: self._kind(df[name], name, categories) for name in df.columns}
        budget = self._plan_budget(df, kinds, bounds, categories)
        self._released, ranges = self._dp_release_domain(df, kinds, bounds, categories, budget)
        for index, name in enumerate(df.columns):
            series = df[name]
            kind, note = kinds[name]
            info = ColumnInfo(name=name, kind=kind, dtype=str(series.dtype),
                              missing_rate=None if self.dp else float(series.isna().mean()))
            if isinstance(series.dtype, pd.CategoricalDtype):
                info.dtype_categories = [_plain(v) for v in series.cat.categories]
                info.ordered = bool(series.cat.ordered)
            if kind in NUMERIC_KINDS:
                self._fit_numeric(info, series, index, bounds.get(name), budget.get(name), ranges.get(name))
            elif kind in DISCRETE_KINDS:
                self._fit_discrete(info, series, categories.get(name), budget.get(name))
            elif kind == "identifier":
                self._fit_identifier(info, series, bounds.get(name))
            else:
                self._fit_constant(info, series)
            if note:
                self.notes.append(note)
            self.columns.append(info)
        if self.dp is not None:
            spent = f"epsilon {self.epsilon_spent:.4g}, delta {self.delta_spent:.3g}"
            self.notes.append(f"differentially private preprocessing: {spent} spent on "
                              f"{len(budget)} column(s); the rest was declared public (bounds, categories, dtypes)")

    def condition_spans(self) -> list[Span]:
        """The "category" spans of categorical and boolean columns: what a conditional generator conditions on."""
        self._check_fitted()
        return [span for span in self.spans if span.role == "category"]

    def category_values(self, column: Any) -> list:
        """The categories of a discrete column, in the order of its category span."""
        info = self._info(column)
        if info.kind not in DISCRETE_KINDS:
            raise ConfigError(f"column {column!r} is {info.kind}, not categorical or boolean: it has no categories")
        return list(info.categories)

    def category_codes(self, data: np.ndarray) -> dict[Any, np.ndarray]:
        """Each discrete column's value in encoded rows ``data`` (N, output_dim) as an integer code, the way
        `inverse_transform` decodes it: the category's index in `category_values`, or ``len(categories)``
        where the row says missing. Columns with no category span (none kept) are left out."""
        self._check_fitted()
        data = np.asarray(data)
        codes = {}
        for info in self.columns:
            spans = self._layout[info.name]
            if info.kind not in DISCRETE_KINDS or "category" not in spans or not info.categories:
                continue
            code = _block(data, spans["category"]).argmax(1)
            if "missing" in spans and _can_hold_missing(info):
                code = np.where(_block(data, spans["missing"]).argmax(1) == 1, len(info.categories), code)
            codes[info.name] = code.astype(np.int64)
        return codes

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode ``df`` (the fitted columns, in any order; extra columns are ignored) as float32 ``(N, output_dim)``.

        Modes of numeric values are sampled from their posterior (as CTGAN does) with a generator seeded
        by ``seed`` and the column's position, so the same frame always gives the same rows. Only modes
        that can represent the value without clipping are sampled.
        """
        self._check_fitted()
        if not isinstance(df, pd.DataFrame):
            raise ConfigError(f"transform needs a pandas DataFrame, got {type(df).__name__}")
        absent = [str(c.name) for c in self.columns if c.name not in df.columns]
        if absent:
            raise ConfigError(f"the frame lacks fitted column(s) {absent}")
        out = np.zeros((len(df), self.output_dim), dtype=np.float32)
        for index, info in enumerate(self.columns):
            if info.kind == "identifier" or (info.kind == "constant" and not info.missing):
                continue
            series, spans = df[info.name], self._layout[info.name]
            if info.kind in NUMERIC_KINDS:
                missing = self._encode_numeric(info, series, spans, out, np.random.default_rng([self.seed, index]))
            elif info.kind in DISCRETE_KINDS:
                missing = self._encode_discrete(info, series, spans, out)
            else:
                missing = series.isna().to_numpy()
            if "missing" in spans:
                span = spans["missing"]
                out[:, span.start] = ~missing
                out[:, span.start + 1] = missing
            elif missing.any():
                raise ConfigError(f"column {info.name!r} has {int(missing.sum())} missing value(s) but had none when "
                                  "the transformer was fitted: fill them, or fit on data with missing values")
        return out

    def inverse_transform(self, data: np.ndarray, *, seed: int = 0) -> pd.DataFrame:
        """Decode rows (activated generator outputs, or ``transform``'s) into a frame like the fitted one.

        Modes, categories and missingness are the argmax of their spans (ties broken at random with
        ``seed``), values are clipped to the training range (or the declared bounds), integers rounded.
        Identifiers are numbered afresh in each call: ``synthetic-000001``... for text, and above the
        training maximum for integers.
        """
        self._check_fitted()
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.output_dim:
            raise ConfigError(f"inverse_transform needs an array of shape (N, {self.output_dim}), "
                              f"got {data.shape}")
        if not np.isfinite(data).all():
            raise ConfigError("inverse_transform got NaN or infinite values: the generator has diverged")
        n = len(data)
        result = {}
        for index, info in enumerate(self.columns):
            spans = self._layout[info.name]
            rng = np.random.default_rng([seed, index])
            missing = np.zeros(n, dtype=bool)
            if "missing" in spans and _can_hold_missing(info):
                missing = _argmax(_block(data, spans["missing"]), rng) == 1
            if info.kind in NUMERIC_KINDS:
                values: np.ndarray = self._decode_numeric(info, data, spans, rng)
            elif info.kind in DISCRETE_KINDS:
                if info.categories:
                    codes = _argmax(_block(data, spans["category"]), rng) if "category" in spans else np.zeros(n, int)
                    values = np.array(info.categories + [None], dtype=object)[codes]
                else:  # DP mode kept no category: nothing to say but "missing"
                    values, missing = np.full(n, None, dtype=object), np.ones(n, dtype=bool)
            elif info.kind == "identifier":
                values = _identifiers(info, n)
            else:
                values = np.full(n, info.constant, dtype=object)
            result[info.name] = _restore(info, values, missing)
        return pd.DataFrame(result, columns=[c.name for c in self.columns])

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-safe builtins (no pickle): settings, columns, notes and privacy ledger."""
        self._check_fitted()
        state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "settings": {"column_types": [[c, k] for c, k in self.column_types.items()],
                         "discrete_columns": list(self.discrete_columns), "max_modes": self.max_modes,
                         "weight_threshold": self.weight_threshold,
                         "point_mass_threshold": self.point_mass_threshold,
                         "numeric_encoding": self.numeric_encoding, "quantile_bins": self.quantile_bins,
                         "seed": self.seed},
            "dp": None if self.dp is None else list(self.dp),
            "columns": [asdict(info) for info in self.columns],
            "notes": list(self.notes),
            "privacy_ledger": [dict(entry) for entry in self.privacy_ledger],
        }
        return _json_ready(state, "transformer")

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TabularTransformer:
        """Rebuild a fitted transformer from :meth:`to_dict` (after a JSON round trip, too)."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ConfigError("not a saved TabularTransformer (expected a dict from TabularTransformer.to_dict)")
        if state.get("version") != FORMAT_VERSION:
            raise ConfigError(f"saved TabularTransformer has format version {state.get('version')}; this ganforge "
                              f"reads version {FORMAT_VERSION}")
        settings = dict(state["settings"])
        settings["column_types"] = {c: k for c, k in settings["column_types"]}
        transformer = cls(**settings)
        known = {f.name for f in fields(ColumnInfo)}
        transformer.columns = [ColumnInfo(**{k: v for k, v in c.items() if k in known}) for c in state["columns"]]
        transformer.dp = None if state["dp"] is None else (float(state["dp"][0]), float(state["dp"][1]))
        transformer.notes = list(state["notes"])
        transformer.privacy_ledger = [dict(entry) for entry in state["privacy_ledger"]]
        transformer._build_spans()
        return transformer

    # ------------------------------------------------------------------------------------------------------
    # Checks

    def _check_fitted(self) -> None:
        if not self.columns:
            raise ConfigError("this TabularTransformer is not fitted: call fit(df) or TabularTransformer.from_dict")

    def _info(self, column: Any) -> ColumnInfo:
        self._check_fitted()
        for info in self.columns:
            if info.name == column:
                return info
        raise ConfigError(f"no column {column!r}; columns are {[c.name for c in self.columns]}")

    def _check_arguments(self, df: pd.DataFrame, bounds: dict, categories: dict, dp: Any) -> None:
        names = set(df.columns)
        for what, keys in (("column_types", self.column_types), ("discrete_columns", self.discrete_columns),
                           ("bounds", bounds), ("categories", categories)):
            unknown = [str(c) for c in keys if c not in names]
            if unknown:
                raise ConfigError(f"{what} names {unknown}, not columns of the frame; columns are "
                                  f"{[str(c) for c in df.columns]}")
        for name in self.discrete_columns:
            if self.column_types.get(name, "categorical") not in DISCRETE_KINDS:
                raise ConfigError(f"column {name!r} is in discrete_columns but column_types says "
                                  f"{self.column_types[name]}")
        for name, pair in bounds.items():
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise ConfigError(f"bounds[{name!r}] must be a (low, high) pair, got {pair!r}")
        for name, values in categories.items():
            if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
                raise ConfigError(f"categories[{name!r}] must be a non-empty list of values, got {values!r}")
            if len(set(values)) != len(values):
                raise ConfigError(f"categories[{name!r}] has repeated values")
        if dp is not None:
            if not isinstance(dp, Sequence) or len(dp) != 2:
                raise ConfigError(f"dp must be an (epsilon, delta) pair, got {dp!r}")
            epsilon, delta = dp
            if not (isinstance(epsilon, numbers.Real) and math.isfinite(epsilon) and epsilon > 0):
                raise ConfigError(f"dp epsilon must be a positive number, got {epsilon!r}")
            if not (isinstance(delta, numbers.Real) and 0 < delta < 1):
                raise ConfigError(f"dp delta must be in (0, 1), got {delta!r}")

    # ------------------------------------------------------------------------------------------------------
    # Column kinds

    def _kind(self, series: pd.Series, name: Any, categories: dict) -> tuple[str, str | None]:
        """The kind of a column, and a note for the user when the choice is worth telling."""
        dtype = series.dtype
        if ptypes.is_timedelta64_dtype(dtype) or ptypes.is_complex_dtype(dtype):
            raise ConfigError(f"column {name!r} has dtype {dtype}, which is not supported: convert it to numbers "
                              "(e.g. seconds) or drop it")
        declared = self.column_types.get(name)
        if declared is None and (name in self.discrete_columns or name in categories):
            declared = "boolean" if ptypes.is_bool_dtype(dtype) else "categorical"
        if self.dp is not None:
            return self._schema_kind(series, name, declared)
        present = series.dropna()
        if present.empty:
            raise ConfigError(f"column {name!r} is empty (all {len(series)} values missing): drop it")
        counts = present.value_counts(sort=False)
        counts = counts[counts > 0]  # a category dtype lists unused categories with count 0
        if declared is not None:
            if declared == "constant" and len(counts) > 1:
                raise ConfigError(f"column {name!r} is declared constant but holds {len(counts)} distinct values")
            if declared == "identifier":
                return declared, _identifier_note(name, "declared an identifier")
            return declared, None
        if len(counts) == 1:
            value = _plain(counts.index[0])
            return "constant", (f"column {name!r} holds a single value ({value!r}"
                                + (f", missing in {series.isna().mean():.0%} of rows" if series.isna().any() else "")
                                + "): it is not learned, and comes back as that value")
        if ptypes.is_bool_dtype(dtype):
            return "boolean", None
        if ptypes.is_datetime64_any_dtype(dtype):
            return "datetime", None
        if isinstance(dtype, pd.CategoricalDtype):
            return "categorical", None
        if ptypes.is_numeric_dtype(dtype):
            values = present.to_numpy(dtype=float)
            return self._numeric_kind(name, values, ptypes.is_integer_dtype(dtype), len(counts))
        return self._object_kind(name, counts)

    def _schema_kind(self, series: pd.Series, name: Any, declared: str | None) -> tuple[str, str | None]:
        """DP mode: the kind from the dtype, the name and the declarations only (the values are private)."""
        dtype = series.dtype
        if declared == "constant":
            raise ConfigError(f"column {name!r}: constant columns cannot be declared in DP mode; declare "
                              f"categories={{{name!r}: [value]}} instead")
        if declared is not None:
            return declared, (_identifier_note(name, "declared an identifier") if declared == "identifier" else None)
        if ptypes.is_bool_dtype(dtype):
            return "boolean", None
        if ptypes.is_datetime64_any_dtype(dtype):
            return "datetime", None
        if _id_like_name(name) and not ptypes.is_float_dtype(dtype):
            return "identifier", _identifier_note(name, "named like an identifier")
        if ptypes.is_integer_dtype(dtype):
            return "integer", None
        if ptypes.is_numeric_dtype(dtype):
            return "continuous", None
        return "categorical", None

    def _numeric_kind(self, name: Any, values: np.ndarray, integer_dtype: bool,
                      distinct: int) -> tuple[str, str | None]:
        if not np.isfinite(values).all():
            raise ConfigError(f"column {name!r} holds infinite values: replace them with NaN or finite numbers")
        kind = numeric_kind(name, values, integer_dtype, distinct)
        if kind == "identifier":
            return kind, _identifier_note(name, f"{distinct / len(values):.0%} of its values are distinct")
        return kind, None

    def _object_kind(self, name: Any, counts: pd.Series) -> tuple[str, str | None]:
        """Text (or mixed Python objects): boolean, numbers, mixed (an error), dates, identifier or categorical."""
        values = list(counts.index)
        weights = counts.to_numpy(dtype=float)
        total = weights.sum()
        if all(isinstance(v, bool | np.bool_) for v in values):
            return "boolean", None
        is_number = np.array([isinstance(v, numbers.Number) and not isinstance(v, bool | np.bool_) for v in values])
        if is_number.all():  # an object column of Python numbers: treat it as a numeric column
            numeric = np.repeat(np.array(values, dtype=float), counts.to_numpy())
            return self._numeric_kind(name, numeric, False, len(values))
        texts = [str(v) for v in values]
        parses = is_number | pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").notna().to_numpy()
        numeric_share = weights[parses].sum() / total
        if MIXED_MIN_SHARE <= numeric_share <= 1 - MIXED_MIN_SHARE:
            examples = [texts[i] for i in np.flatnonzero(parses)[:3]] + [texts[i] for i in np.flatnonzero(~parses)[:3]]
            raise ConfigError(f"column {name!r} mixes numbers ({numeric_share:.0%}) and text "
                              f"({1 - numeric_share:.0%}), e.g. {examples}: clean it, or declare its kind with "
                              f"column_types={{{name!r}: 'categorical'}} (or 'continuous' after removing the text)")
        if numeric_share < MIXED_MIN_SHARE and _date_format(texts) is not None:
            return "datetime", None
        distinct, n = len(values), total
        share = distinct / n
        mean_length = float(np.dot([len(t) for t in texts], weights) / total)
        rule = identifier_rule(name, distinct, n, mean_length)
        if rule in ("named", "distinct"):
            return "identifier", _identifier_note(name, f"{share:.0%} of its values are distinct")
        if rule == "free_text":
            return "identifier", _identifier_note(name, f"it looks like free text ({share:.0%} distinct, "
                                                        f"{mean_length:.0f} characters on average)")
        return "categorical", None

    def _plan_budget(self, df: pd.DataFrame, kinds: dict, bounds: dict, categories: dict) -> dict[Any, tuple]:
        """DP mode: ``{column: (epsilon, delta)}`` for each column that must look at its values (basic composition)."""
        if self.dp is None:
            return {}
        needs = []
        for name in df.columns:
            kind = kinds[name][0]
            if kind == "datetime" and name not in bounds:
                raise ConfigError(f"column {name!r} is a datetime: in DP mode give its range, "
                                  f"bounds={{{name!r}: ('2000-01-01', '2030-12-31')}}")
            if kind in ("continuous", "integer") and (name not in bounds or self._dp_histograms):
                needs.append((name, "bounds" if name not in bounds else "histogram"))  # the range, the shape
            elif name not in categories and (kind == "categorical" or (
                    kind == "boolean" and not ptypes.is_bool_dtype(df[name].dtype))):
                needs.append((name, "categories"))
        if not needs:
            return {}
        epsilon, delta = self.dp
        n_joint = sum(1 for _, what in needs if what != "histogram")  # the columns of `_dp_release_domain`
        return {name: (epsilon / len(needs), delta / n_joint if what != "histogram" else 0.0)
                for name, what in needs}

    def _dp_release_domain(self, df: pd.DataFrame, kinds: dict, bounds: dict, categories: dict,
                           budget: dict[Any, tuple]) -> tuple[dict[Any, list[tuple[Any, float]]], dict[Any, dict]]:
        """DP mode: the domain of every column that needs it, released in one go: the categories of each
        undeclared discrete column, and the range and shape of each numeric column without declared bounds.
        Returns ``({column: [(value, noisy count), ...]}, {column: {"low", "high", "shape", "integral"}})``
        (``shape`` as `_shape_from_noisy_bins` returns it, None without ``dp_histograms``).

        One row adds 1 to exactly one count per discrete column (its (column, value) partition) and to up to
        three per numeric column: one coarse public bin, between consecutive points of 0, +-{1, 2, 5} x 10^k,
        for the range; one fine public bin, at the SHAPE_MANTISSAS (1, 1.2, 1.5, 2, ... x 10^k), for the shape;
        and, for a float column, the count of rows with a fractional part (integer-valued when under
        INTEGRAL_SHARE of the rows). Without ``dp_histograms`` only the coarse count. The vector of all
        counts therefore has L2 sensitivity sqrt(k) for k
        counts per row, and Gaussian noise of std sigma (the analytic calibration of
        `ganforge.privacy.gaussian_sigma` for the columns' summed epsilon) grows as sqrt(k) where separate
        Laplace histograms would grow as k.

        - Categories: Gaussian partition selection (Korolova et al. 2009; Wilson et al. 2020, "Differentially
          private SQL with bounded user contribution"). A value is kept when its noisy count exceeds
          tau = 1 + sigma * Phi^-1(1 - (delta/2) / k_c) for k_c discrete columns: a value that only the added
          row holds (count 1) passes with probability at most (delta/2)/k_c, so all of them at most delta/2;
          the noise gets the other half of delta.
        - Ranges: the public bins exist with or without any row, so they need no delta of their own. The range
          is the outer edges of the coarse bins whose noisy count exceeds sigma * Phi^-1(1 - 0.001 / bins),
          which an empty bin does with probability under 0.1% over the column's bins, widened by the
          neighbouring bins that clear sigma * Phi^-1(1 - 0.025) (a thin tail next to the bulk).
        - Shapes: `_shape_from_noisy_bins`, post-processing of the fine counts inside the range.

        For colon's 11 discrete and 4 numeric columns at epsilon 5 (25% preprocessing share) a category needs
        ~52 rows and a range bin ~50 (noise std 11.6), against ~268 and ~280 with one Laplace histogram per
        column, and the shape's bins get noise of std 11.6 where a 16-bin Laplace histogram at half the
        column's share had 34. Where per-column Laplace mechanisms need fewer rows in sum (one or two
        columns), they are used instead (a numeric column's epsilon split between its coarse and fine
        counts; categories kept above 1 + 2 ln(1/delta)/epsilon). The choice depends on the budget and the
        column count only. The spend is entered in the ledger per column."""
        from scipy.stats import norm

        from ganforge.privacy import gaussian_sigma

        index_of = {name: index for index, name in enumerate(df.columns)}  # column -> its index (the noise stream)
        discrete = [name for name in df.columns
                    if name in budget and kinds[name][0] in DISCRETE_KINDS and name not in categories]
        numeric = [name for name in df.columns
                   if name in budget and kinds[name][0] in ("continuous", "integer") and name not in bounds]
        if not discrete and not numeric:
            return {}, {}
        eps = {name: budget[name][0] for name in discrete + numeric}
        coarse, fine = _range_bin_edges(RANGE_MANTISSAS), _range_bin_edges(SHAPE_MANTISSAS)
        n_coarse = len(coarse) + 1
        shapes = self._dp_histograms  # numeric columns also release counts in the fine bins: a second count,
        # and a continuous one a third: its rows with a fractional part (integer-valued floats are then rounded)
        per_row = {name: 1 if not shapes else 2 if kinds[name][0] == "integer" else 3 for name in numeric}
        k = len(discrete) + sum(per_row.values())  # counts one row adds to (the squared L2 sensitivity)
        epsilon, delta = sum(eps.values()), sum(budget[name][1] for name in discrete + numeric)
        sigma = gaussian_sigma(epsilon, delta / 2 if discrete else delta, math.sqrt(k))
        tau = 1 + sigma * float(norm.isf(delta / 2 / max(len(discrete), 1)))
        range_tau = sigma * float(norm.isf(RANGE_FALSE_BIN / n_coarse))
        # per-column Laplace: a numeric column splits its epsilon between its coarse and its fine counts
        scale = {name: per_row.get(name, 1) / eps[name] for name in discrete + numeric}
        laplace_tau = {name: 1 + 2 * math.log(1 / budget[name][1]) / eps[name] for name in discrete}
        laplace_range_tau = {name: math.log(n_coarse / RANGE_FALSE_BIN) * scale[name] for name in numeric}
        gaussian = k > 1 and (tau * len(discrete) + range_tau * len(numeric)
                              < sum(laplace_tau.values()) + sum(laplace_range_tau.values()))
        joint = (f"Gaussian noise on {k} count(s) per row at once (std {sigma:.3g}; {len(discrete)} discrete "
                 f"column(s), {len(numeric)} numeric)")
        released: dict[Any, list[tuple[Any, float]]] = {}
        for name in discrete:
            counts = df[name].value_counts(sort=False)
            rng = np.random.default_rng([self._noise_seed, index_of[name], 2])
            if gaussian:
                noisy = counts.to_numpy(dtype=float) + rng.normal(scale=sigma, size=len(counts))
                threshold, mechanism = tau, f"{joint}, partition selection above {tau:.1f} rows"
            else:
                noisy = counts.to_numpy(dtype=float) + rng.laplace(scale=scale[name], size=len(counts))
                threshold, mechanism = laplace_tau[name], "Laplace histogram with a threshold (stability-based)"
            released[name] = sorted(((v, float(c)) for v, c in zip(counts.index, noisy, strict=True) if c > threshold),
                                    key=lambda p: (-p[1], _sort_key(p[0])))
            self.privacy_ledger.append({"column": name, "what": "categories", "epsilon": eps[name],
                                        "delta": budget[name][1], "mechanism": mechanism})
        if discrete:
            needed = math.ceil(tau if gaussian else max(laplace_tau.values()))
            self.notes.append(f"categories of {len(discrete)} column(s) released with differential privacy: a value "
                              f"held by fewer than about {needed} rows is not released (it comes back as missing); "
                              "declare categories={column: [...]} where the values are public")
        ranges = {}
        for name in numeric:
            values = self._range_values(name, kinds[name][0], df[name])
            rng = np.random.default_rng([self._noise_seed, index_of[name], 3])
            draw = partial(rng.normal, scale=sigma) if gaussian else partial(rng.laplace, scale=scale[name])
            def extend(n: int, b: float = scale[name]) -> float:  # any of n empty bins clears it w.p. 2.5%
                return sigma * float(norm.isf(EXTEND_FALSE_BIN / n)) if gaussian else math.log(
                    0.5 * n / EXTEND_FALSE_BIN) * b

            noisy = _bin_counts(coarse, values) + draw(size=n_coarse)
            low, high = _range_from_noisy_bins(coarse, noisy, range_tau if gaussian else laplace_range_tau[name],
                                               extend(1))
            shape, integral = None, kinds[name][0] == "integer"
            if shapes:  # the coarse edges are fine edges too, so [low, high] is a run of fine bins
                fine_noisy = _bin_counts(fine, values) + draw(size=len(fine) + 1)
                if not integral:  # integer-valued when under 2% of the (noisy) rows have a fractional part
                    fractional = float(np.sum(values != np.round(values))) + float(draw(size=1)[0])
                    integral = fractional < INTEGRAL_SHARE * max(float(np.maximum(noisy, 0).sum()), 1.0)
                shape = _shape_from_noisy_bins(fine, fine_noisy, low, high, extend, integral)
                low, high = shape["low"], shape["high"]
            ranges[name] = {"low": low, "high": high, "shape": shape, "integral": integral}
            what = "range and shape (public log-spaced bins)" if shapes else "range (bins of the bulk)"
            self.privacy_ledger.append({"column": name, "what": what, "epsilon": eps[name], "delta": budget[name][1],
                                        "mechanism": joint if gaussian else "Laplace histograms over public "
                                        "log-spaced bins, thresholded"})
            self.notes.append(f"column {name!r}: range [{low:g}, {high:g}] estimated with differential privacy; "
                              f"declare bounds={{{name!r}: (low, high)}} to spend nothing on it and clip less")
        return released, ranges

    def _range_values(self, name: Any, kind: str, series: pd.Series) -> np.ndarray:
        """The present values of a numeric column, parsed as `_fit_numeric` parses them (DP mode)."""
        info = ColumnInfo(name=name, kind=kind, dtype=str(series.dtype), missing_rate=None)
        info.as_text = not (ptypes.is_numeric_dtype(series.dtype) or ptypes.is_bool_dtype(series.dtype))
        values, _ = self._numeric_values(info, series)
        return values[~np.isnan(values)]

    # ------------------------------------------------------------------------------------------------------
    # Fitting one column

    def _fit_numeric(self, info: ColumnInfo, series: pd.Series, index: int, declared: tuple | None,
                     budget: tuple | None, released: dict | None = None) -> None:
        dtype = series.dtype
        text_dtype = not (ptypes.is_numeric_dtype(dtype) or ptypes.is_datetime64_any_dtype(dtype)
                          or ptypes.is_bool_dtype(dtype))
        if text_dtype and self.dp is None:  # an object column may hold Python numbers rather than text
            present = series.dropna()
            text_dtype = present.empty or isinstance(present.iloc[0], str)
        info.as_text = text_dtype
        if info.kind == "datetime" and info.as_text:
            info.date_format = _date_format(_sample_texts(series)) if self.dp is None else None
            info.date_format = info.date_format or "%Y-%m-%d %H:%M:%S"
            if declared is not None and self.dp is not None:
                info.date_format = _guess_format(str(declared[0])) or info.date_format
        values, exact = self._numeric_values(info, series)
        present = ~np.isnan(values)
        info.missing = self.dp is not None or not present.all()
        integral = info.kind in ("integer", "datetime")
        rng = np.random.default_rng([self._noise_seed, index, 1])
        if declared is not None:
            low, high = (_to_ns(b, series, info.name) for b in declared) if info.kind == "datetime" else (
                float(declared[0]), float(declared[1]))
        elif released is not None:  # DP: bought by `_dp_release_domain`, with the shape
            low, high = released["low"], released["high"]
            if released["integral"] and info.kind == "continuous":  # integer-valued floats: rounded on output
                info.decimals, low, high = 0, float(math.ceil(low)), float(math.floor(high))
        else:
            if info.kind == "datetime":
                low, high = int(exact[present].min()), int(exact[present].max())
            else:
                low, high = float(values[present].min()), float(values[present].max())
        if integral:
            low, high = int(math.ceil(low)), int(math.floor(high))
        if low > high:
            raise ConfigError(f"column {info.name!r}: bounds ({low}, {high}) are empty (low above high)")
        info.minimum, info.maximum = low, high
        if self.dp is not None:
            info.scaling = "minmax"
            bound_masses = [low, high]
            if released is not None and released["shape"] is not None and high > low:
                shape = released["shape"]
                info.scaling, info.knots, info.cdf = "quantile", shape["knots"], shape["cdf"]
                bound_masses = shape["masses"]
            elif budget is not None and self._dp_histograms and info.kind != "datetime" and high > low:
                bound_masses = self._dp_histogram(info, values[present], budget[0], rng)
            if info.kind == "datetime":  # round to the dtype's unit (public), seconds for text
                unit = getattr(dtype, "unit", "s") if not info.as_text else "s"
                info.step = {"s": 10**9, "ms": 10**6, "us": 10**3}.get(unit)
            if high > low:
                info.means, info.stds, info.weights = [(low + high) / 2], [(high - low) / 8], [1.0]
                info.mode_range = [low, high]
                info.point_masses = [int(b) if integral else b for b in bound_masses]
            else:
                info.point_masses = [low]
            return
        info.scaling = self.numeric_encoding
        if info.kind == "continuous":
            info.decimals = _decimals(values[present])
        elif info.kind == "datetime":
            info.step = next((s for s in _NS_STEPS if np.all(exact[present] % s == 0)), None)
        kept = values[present]
        kept_exact = exact[present] if exact is not None else kept
        kept_exact = np.clip(kept_exact, low, high)
        kept = np.clip(kept, low, high)
        # point masses: single values with a large share of the rows, each an exact slot of the mode span
        distinct, counts = np.unique(kept_exact, return_counts=True)
        masses = distinct[counts >= self.point_mass_threshold * len(kept_exact)]
        rest = ~np.isin(kept_exact, masses)
        if np.unique(kept_exact[rest]).size < 2:  # too little left for a mixture: exact slots as well
            masses, rest = np.unique(kept_exact), np.zeros(len(kept), dtype=bool)
        info.point_masses = [int(m) if integral else float(m) for m in masses]
        shares = [float(np.mean(kept_exact == m)) for m in masses]
        if rest.any():
            if info.scaling == "quantile":  # quantile_bins equal-share bins: their medians stand in for means
                info.knots, info.cdf = _quantile_knots(kept[rest])
                bins = self.quantile_bins
                info.means = [float(np.interp((b + 0.5) / bins, info.cdf, info.knots)) for b in range(bins)]
                info.stds, info.weights = [0.0] * bins, [1.0 / bins] * bins
            else:
                info.means, info.stds, info.weights = _fit_mixture(kept[rest], self.max_modes,
                                                                   self.weight_threshold, self.seed)
            shares = [w * float(rest.mean()) for w in info.weights] + shares
            modelled = kept_exact[rest]
            info.mode_range = [int(modelled.min()), int(modelled.max())] if integral else [
                float(modelled.min()), float(modelled.max())]
        info.fill_slot = int(np.argmax(shares))

    def _dp_histogram(self, info: ColumnInfo, values: np.ndarray, epsilon: float,
                      rng: np.random.Generator) -> list[float]:
        """The column's shape between its bounds as a Laplace histogram (scale 1/epsilon): the values strictly
        inside them in equal bins, plus one bin for the values at or below the lower bound and one at or above
        the upper (a row is in exactly one bin: sensitivity 1). Post-processing, all free:

        - a piecewise-linear CDF of the inside bins that the encoding maps values through ("quantile"
          scaling), so the generator's scalar is about uniform, not bunched up in a corner of [-1, 1] as a
          skewed column's min-max value is;
        - the outer bins whose noisy count does not clear ``ln(bins / 0.05) / epsilon`` (all empty bins stay
          under it with 95% probability) are cut from both ends, so the generator cannot make values beyond
          the data's bulk: a coarse public range such as [0, 5000] for values that end at 2,654 would
          otherwise give a few synthetic outliers up to 5,000;
        - returned: the bounds whose own bin clears that threshold, which become point masses (values
          clipped there, or a real pile such as exact zeros); a bound that holds nobody is never generated.
        """
        low, high = float(info.minimum), float(info.maximum)
        knots = np.linspace(low, high, DP_HISTOGRAM_BINS + 1)
        inside = values[(values > low) & (values < high)]
        counts = np.histogram(inside, bins=knots)[0].astype(float)
        ends = np.array([np.sum(values <= low), np.sum(values >= high)], dtype=float)
        noise = rng.laplace(scale=1.0 / epsilon, size=DP_HISTOGRAM_BINS + 2)
        noisy, noisy_ends = counts + noise[:DP_HISTOGRAM_BINS], ends + noise[DP_HISTOGRAM_BINS:]
        threshold = math.log((DP_HISTOGRAM_BINS + 2) / 0.05) / epsilon
        significant = np.flatnonzero(noisy > threshold)
        first, last = (int(significant[0]), int(significant[-1])) if significant.size else (0, DP_HISTOGRAM_BINS - 1)
        kept = np.maximum(noisy[first : last + 1], 0.0) + 0.5  # no empty bin inside the bulk
        cdf = np.concatenate([[0.0], np.cumsum(kept) / kept.sum()])
        knots = knots[first : last + 2]
        info.scaling, info.knots, info.cdf = "quantile", [float(k) for k in knots], [float(c) for c in cdf]
        self.privacy_ledger.append({"column": info.name, "what": f"shape ({DP_HISTOGRAM_BINS}-bin histogram and "
                                    "the two bounds)", "epsilon": epsilon, "delta": 0.0,
                                    "mechanism": "Laplace histogram, empty tails cut at a threshold"})
        return [b for b, c in zip((low, high), noisy_ends, strict=True) if c > threshold]

    def _fit_discrete(self, info: ColumnInfo, series: pd.Series, declared: list | None,
                      budget: tuple | None) -> None:
        missing = series.isna().to_numpy()
        info.missing = self.dp is not None or bool(missing.any())
        if declared is not None:
            info.categories = [_plain(v) for v in declared]
            if self.dp is None:
                codes = pd.Index(info.categories).get_indexer(series.to_numpy(dtype=object)[~missing])
                if (codes < 0).any():
                    unknown = pd.unique(series.to_numpy(dtype=object)[~missing][codes < 0])[:5]
                    raise ConfigError(f"column {info.name!r} holds values missing from categories[{info.name!r}]: "
                                      f"{list(unknown)}")
                info.fill_slot = int(np.argmax(np.bincount(codes, minlength=len(info.categories))))
        elif budget is not None:
            kept = self._released[info.name]  # (value, noisy count) pairs, from the joint release
            info.categories = [_plain(v) for v, _ in kept]
            info.noisy_counts = [float(c) for _, c in kept]  # released with them: free to reuse
            if not info.categories:
                self.notes.append(f"column {info.name!r}: no category is frequent enough to be released under "
                                  f"differential privacy, so the column comes back empty; declare "
                                  f"categories={{{info.name!r}: [...]}} if its values are public")
            else:
                self.notes.append(f"column {info.name!r}: {len(info.categories)} categories released with "
                                  "differential privacy; rarer values are treated as missing")
        elif self.dp is not None:
            info.categories = [True, False]  # a bool dtype holds nothing else: public
        else:
            counts = series.value_counts(sort=False)
            counts = counts[counts > 0]
            pairs = sorted(zip(counts.index, counts.to_numpy(), strict=True), key=lambda p: (-p[1], _sort_key(p[0])))
            info.categories = [_plain(v) for v, _ in pairs]
        if self.dp is not None and info.dtype_categories is not None:
            info.dtype_categories = list(info.categories)  # the dtype's own list may hold rare values

    def _fit_identifier(self, info: ColumnInfo, series: pd.Series, declared: tuple | None) -> None:
        dtype = series.dtype
        if ptypes.is_bool_dtype(dtype) or ptypes.is_datetime64_any_dtype(dtype):
            raise ConfigError(f"column {info.name!r} has dtype {dtype}: identifiers must be text or integers")
        present = series.dropna()
        numeric = ptypes.is_numeric_dtype(dtype) or (
            self.dp is None and len(present) > 0 and all(isinstance(v, numbers.Number) for v in present.to_numpy()))
        if numeric:
            if declared is not None:
                info.id_start = int(math.floor(float(declared[1]))) + 1
            elif self.dp is None:
                info.id_start = int(np.nanmax(pd.to_numeric(present).to_numpy(dtype=float))) + 1
            elif ptypes.is_unsigned_integer_dtype(dtype):
                raise ConfigError(f"column {info.name!r} is an unsigned integer identifier: in DP mode give "
                                  f"bounds={{{info.name!r}: (low, high)}} so new ids can start above high")
            else:  # the real maximum is private: negative ids cannot collide with non-negative real ones
                info.id_start, info.id_step = -1, -1
            return
        prefix = "synthetic-"
        if self.dp is None:
            texts = present.astype(str)
            k = 1
            while texts.str.startswith(prefix).any():
                k += 1
                prefix = f"synthetic{k}-"
        info.id_prefix = prefix

    def _fit_constant(self, info: ColumnInfo, series: pd.Series) -> None:
        present = series.dropna()
        value = present.iloc[0]
        if ptypes.is_datetime64_any_dtype(series.dtype):
            value = int(_datetime_ns(present)[0][0])
        info.constant = _plain(value)
        info.missing = bool(series.isna().any())

    # ------------------------------------------------------------------------------------------------------
    # Encoding and decoding one column

    def _numeric_values(self, info: ColumnInfo, series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        """Float values with NaN for missing, and for datetimes the exact int64 nanoseconds too."""
        name = info.name
        if info.kind == "datetime":
            if info.as_text:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parsed = pd.to_datetime(series, format=info.date_format, errors="coerce")
                    if parsed.isna().sum() > series.isna().sum():  # not all in one format: let pandas try each
                        parsed = pd.to_datetime(series, format="mixed", errors="coerce")
                self._check_parsed(info, series, parsed.isna().to_numpy(), "dates")
                series = parsed
            try:
                exact, missing = _datetime_ns(series)
            except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as error:
                raise ConfigError(f"column {name!r}: dates outside 1677-2262 are not supported ({error})") from None
            values = exact.astype(np.float64)
            values[missing] = np.nan
            return values, exact
        if ptypes.is_numeric_dtype(series.dtype):
            values = np.array(series.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64, copy=True)
        else:
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan).copy()
            self._check_parsed(info, series, np.isnan(values), "numbers")
        if self.dp is None and np.isinf(values).any():
            raise ConfigError(f"column {name!r} holds infinite values: replace them with NaN or finite numbers")
        return values, None

    def _check_parsed(self, info: ColumnInfo, series: pd.Series, failed: np.ndarray, what: str) -> None:
        bad = failed & ~series.isna().to_numpy()
        if bad.any() and self.dp is None:  # in DP mode they are treated as missing: an error would leak them
            examples = list(pd.unique(series.to_numpy(dtype=object)[bad])[:5])
            raise ConfigError(f"column {info.name!r} is {info.kind} but {int(bad.sum())} value(s) are not {what}, "
                              f"e.g. {examples}: clean them or declare another kind with column_types")

    def _encode_numeric(self, info: ColumnInfo, series: pd.Series, spans: dict[str, Span], out: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
        values, exact = self._numeric_values(info, series)
        missing = np.isnan(values)
        rows = np.flatnonzero(~missing)
        x = np.clip(values[rows], info.minimum, info.maximum)
        exact_x = np.clip(exact[rows], info.minimum, info.maximum) if exact is not None else x
        n_modes = len(info.means)
        slots = np.full(len(rows), -1)
        for j, mass in enumerate(info.point_masses):
            slots[exact_x == mass] = n_modes + j
        alpha = np.zeros(len(rows))
        rest = slots < 0
        if rest.any():
            if info.scaling == "quantile":  # through the empirical (or DP histogram's) CDF, into n_modes bins
                level = _encode_quantile(x[rest], info.knots, info.cdf, rng) * n_modes
                slots[rest] = np.minimum(level.astype(np.int64), n_modes - 1)
                alpha[rest] = np.clip(2 * (level - slots[rest]) - 1, -1, 1)
            elif n_modes:
                limit = 1.0 if info.scaling == "minmax" else ALPHA_LIMIT
                slots[rest], alpha[rest] = _sample_modes(x[rest], info, limit, rng)
            else:  # a value between point masses (unseen at fit): the nearest one
                slots[rest] = n_modes + np.argmin(np.abs(x[rest, None] - np.asarray(info.point_masses, float)), axis=1)
        if "value" in spans:
            out[rows, spans["value"].start] = alpha
        if "mode" in spans:
            start = spans["mode"].start
            out[rows, start + slots] = 1.0
            out[missing, start + info.fill_slot] = 1.0  # missing rows look like the commonest mode
        return missing

    def _decode_numeric(self, info: ColumnInfo, data: np.ndarray, spans: dict[str, Span],
                        rng: np.random.Generator) -> np.ndarray:
        n = len(data)
        slots = _argmax(_block(data, spans["mode"]), rng) if "mode" in spans else np.zeros(n, dtype=int)
        alpha = np.clip(data[:, spans["value"].start], -1, 1) if "value" in spans else np.zeros(n)
        n_modes = len(info.means)
        values = np.zeros(n)
        gaussian = slots < n_modes
        if info.scaling == "quantile":
            level = (slots[gaussian] + (alpha[gaussian] + 1) / 2) / n_modes
            values[gaussian] = np.interp(level, info.cdf, info.knots)
        elif n_modes:
            means, stds = np.asarray(info.means), np.asarray(info.stds)
            values[gaussian] = means[slots[gaussian]] + 4 * stds[slots[gaussian]] * alpha[gaussian]
        masses = ~gaussian
        if info.kind == "continuous":
            if info.decimals is not None:
                values = np.round(values, info.decimals)
            if n_modes:
                values = np.clip(values, *info.mode_range)
            values[masses] = np.asarray(info.point_masses, dtype=float)[slots[masses] - n_modes]
            return values
        # integers and datetimes: exact int64 arithmetic after rounding
        step = info.step or 1
        ints = (np.round(values / step) * step).astype(np.int64) if info.kind == "datetime" else np.rint(
            values).astype(np.int64)
        if n_modes:
            ints = np.clip(ints, *info.mode_range)
        ints[masses] = np.asarray(info.point_masses, dtype=np.int64)[slots[masses] - n_modes]
        return ints

    def _encode_discrete(self, info: ColumnInfo, series: pd.Series, spans: dict[str, Span],
                         out: np.ndarray) -> np.ndarray:
        missing = series.isna().to_numpy()
        rows = np.flatnonzero(~missing)
        present = series.to_numpy(dtype=object)[rows]
        codes = pd.Index(info.categories, dtype=object).get_indexer(present) if info.categories else np.full(
            len(rows), -1)
        unknown = codes < 0
        if unknown.any():
            if self.dp is None:
                examples = list(pd.unique(present[unknown])[:5])
                raise ConfigError(f"column {info.name!r} holds value(s) unseen when fitting: {examples}; fitted "
                                  f"categories are {info.categories[:20]}")
            missing = missing.copy()
            missing[rows[unknown]] = True  # DP mode: suppressed (rare) categories read as missing
            rows, codes = rows[~unknown], codes[~unknown]
        if "category" in spans:
            start = spans["category"].start
            out[rows, start + codes] = 1.0
            out[missing, start + info.fill_slot] = 1.0
        return missing

    # ------------------------------------------------------------------------------------------------------
    # Layout

    def _build_spans(self) -> None:
        spans: list[Span] = []
        layout: dict[Any, dict[str, Span]] = {}

        def add(info: ColumnInfo, role: str, width: int, activation: str) -> None:
            start = spans[-1].end if spans else 0
            span = Span(column=info.name, role=role, start=start, end=start + width, activation=activation)
            spans.append(span)
            layout[info.name][role] = span

        for info in self.columns:
            layout[info.name] = {}
            if info.kind in NUMERIC_KINDS:
                if info.means:
                    add(info, "value", 1, "tanh")
                if len(info.means) + len(info.point_masses) > 1:
                    add(info, "mode", len(info.means) + len(info.point_masses), "softmax")
            elif info.kind in DISCRETE_KINDS and info.categories:
                add(info, "category", len(info.categories), "softmax")
            if info.missing and info.kind != "identifier":
                add(info, "missing", 2, "softmax")
        self.spans, self._layout = spans, layout
        self.output_dim = spans[-1].end if spans else 0


# ----------------------------------------------------------------------------------------------------------
# Helpers: checks and kinds


def _check_frame(df: Any) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"fit needs a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise ConfigError("the frame has no columns")
    if len(df) < 2:
        raise ConfigError(f"the frame has {len(df)} row(s): at least 2 are needed to learn anything")
    if df.columns.duplicated().any():
        duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise ConfigError(f"the frame has duplicated column names: {duplicated}")
    odd = [repr(c) for c in df.columns if not isinstance(c, str | int)]
    if odd:
        raise ConfigError(f"column names must be strings or integers, got {odd}: rename them")


def identifier_rule(name: Any, distinct: int, n: float, mean_length: float | None = None) -> str | None:
    """Which identifier rule a column of ``n`` present values, ``distinct`` of them different, meets, or None.

    "named": a name like ``id`` or ``email`` (`_id_like_name`) with at least ID_NAMED_UNIQUE_SHARE distinct;
    "distinct": at least ID_UNIQUE_SHARE distinct and more than ID_MIN_DISTINCT values; "free_text" (text
    only: pass ``mean_length``): FREE_TEXT_MIN_LENGTH characters on average, FREE_TEXT_UNIQUE_SHARE distinct,
    more than ID_MIN_DISTINCT values. The one rule of TabularGAN's column typing and of the audit
    (`ganforge.metrics.tabular.detect_identifiers`), which leaves out what the model never learns."""
    share = distinct / n
    if _id_like_name(name) and share >= ID_NAMED_UNIQUE_SHARE:
        return "named"
    if share >= ID_UNIQUE_SHARE and distinct > ID_MIN_DISTINCT:
        return "distinct"
    if (mean_length is not None and mean_length >= FREE_TEXT_MIN_LENGTH and share >= FREE_TEXT_UNIQUE_SHARE
            and distinct > ID_MIN_DISTINCT):
        return "free_text"
    return None


def numeric_kind(name: Any, values: np.ndarray, integer_dtype: bool, distinct: int) -> str:
    """How TabularGAN types a numeric column of present ``values`` (``distinct`` of them different):
    "continuous" when some value has a fractional part (or is not finite), else "categorical" for at most
    MAX_DISCRETE_INTEGERS distinct values, "identifier" when `identifier_rule` says so, else "integer".
    Integer-valued floats count as integers (an id column with missing values reads as float64). Shared by
    TabularTransformer and the audit's `ganforge.metrics.tabular.detect_identifiers`."""
    if not (integer_dtype or (np.isfinite(values).all() and np.all(values == np.round(values)))):
        return "continuous"
    if distinct <= MAX_DISCRETE_INTEGERS:
        return "categorical"
    return "identifier" if identifier_rule(name, distinct, len(values)) is not None else "integer"


def _id_like_name(name: Any) -> bool:
    """Whether a column's name says it identifies a person or a record (``customer_id``, ``userEmail``, ``name``)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    return any(word in ID_WORDS for word in re.split(r"[^a-z0-9]+", words))


def _identifier_note(name: Any, why: str) -> str:
    return (f"column {name!r} is treated as an identifier ({why}): it is not learned, and synthetic rows get new "
            f"values that match no real one; declare column_types={{{name!r}: 'categorical'}} (or another kind) "
            "to learn it instead")


def _date_format(texts: Sequence[str]) -> str | None:
    """The strftime format of strings that are dates (at least 95% of a sample parse), else None.

    Day-first and month-first guesses are both tried ("02/01/2020"), and the one that reads more of the
    sample wins; dates in several formats get ISO 8601 (they are parsed one by one).
    """
    sample = [str(t) for t in texts[:DATE_SAMPLE]]
    if not sample or np.mean([any(ch.isdigit() for ch in t) for t in sample]) < DATE_MIN_SHARE:
        return None  # dateutil reads "May" or "March" as dates: real dates have digits
    series = pd.Series(sample, dtype=object)
    # month-first guesses first: on a tie (no day above 12 in the sample) the usual reading wins
    guesses = [_guess_format(t, dayfirst) for dayfirst in (False, True) for t in sample[:5]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shares = {fmt: pd.to_datetime(series, format=fmt, errors="coerce").notna().mean()
                  for fmt in dict.fromkeys(guesses) if fmt is not None}
        best = max(shares, key=shares.get, default=None)
        if best is not None and shares[best] >= DATE_MIN_SHARE:
            return best
        try:
            parsed = pd.to_datetime(series, format="mixed", errors="coerce")
        except (ValueError, TypeError, OverflowError):
            return None
    return "%Y-%m-%d %H:%M:%S" if parsed.notna().mean() >= DATE_MIN_SHARE else None


def _guess_format(text: str, dayfirst: bool = False) -> str | None:
    from pandas.tseries.api import guess_datetime_format

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return guess_datetime_format(text, dayfirst=dayfirst)


def _sample_texts(series: pd.Series) -> list[str]:
    return [str(v) for v in series.dropna().unique()[:DATE_SAMPLE]]


def _sort_key(value: Any) -> tuple:
    """Orders categories of any types: numbers numerically, then everything else as text."""
    if isinstance(value, numbers.Real):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (JSON and ``==`` friendly)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _can_hold_missing(info: ColumnInfo) -> bool:
    return not (info.dtype == "bool" or re.fullmatch(r"u?int\d+", info.dtype))


# ----------------------------------------------------------------------------------------------------------
# Helpers: numbers


def _datetime_ns(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Datetimes as int64 nanoseconds since the epoch (UTC for tz-aware columns) and the missing mask."""
    series = pd.Series(series)
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = series.astype("datetime64[ns]").to_numpy().view(np.int64).copy()
    return ns, ns == _NAT


def _to_ns(value: Any, series: pd.Series, name: Any) -> int:
    """A datetime bound (timestamp, string or nanoseconds) as the int64 nanoseconds ``_datetime_ns`` uses."""
    if isinstance(value, numbers.Real):
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"bounds[{name!r}]: {value!r} is not a date ({error})") from None
    tz = getattr(series.dt, "tz", None) if ptypes.is_datetime64_any_dtype(series.dtype) else None
    if tz is not None:
        stamp = (stamp.tz_localize(tz) if stamp.tz is None else stamp).tz_convert("UTC").tz_localize(None)
    elif stamp.tz is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.as_unit("ns").value)


def _decimals(values: np.ndarray) -> int | None:
    """The fewest decimals (up to 6) that represent every value: the data's own precision, kept on output."""
    for decimals in range(7):
        if np.all(np.abs(np.round(values, decimals) - values) <= 1e-9 * np.maximum(1.0, np.abs(values))):
            return decimals
    return None


def _fit_mixture(values: np.ndarray, max_modes: int, weight_threshold: float,
                 seed: int) -> tuple[list[float], list[float], list[float]]:
    """CTGAN's Bayesian Gaussian mixture on ``values``: the kept modes' means, stds and weights.

    A large column is summarised by GMM_MAX_ROWS evenly spaced quantiles rather than a random subsample:
    the same shape for the mixture (a mode of weight 0.5% still gets 10 points) at a fraction of the time,
    which is most of ``fit``'s cost.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    if len(values) > GMM_MAX_ROWS:
        ordered = np.sort(values)
        values = ordered[((np.arange(GMM_MAX_ROWS) + 0.5) * len(ordered) / GMM_MAX_ROWS).astype(np.int64)]
    # standardised first: the mixture's covariance floor (reg_covar) then means the same for every scale
    center, scale = float(values.mean()), float(values.std()) or 1.0
    z = ((values - center) / scale).reshape(-1, 1)  # (N, 1)
    # CTGAN's settings; "diag" is the same model as the default "full" for one dimension (equal to 1e-13),
    # without a Cholesky factorisation per component and iteration: twice as fast
    mixture = BayesianGaussianMixture(n_components=min(max_modes, len(z)),
                                      weight_concentration_prior_type="dirichlet_process",
                                      weight_concentration_prior=0.001, n_init=1, random_state=seed,
                                      covariance_type="diag")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(z)
    weights = mixture.weights_
    keep = weights > weight_threshold
    if not keep.any():
        keep = weights == weights.max()
    order = np.argsort(mixture.means_[keep, 0], kind="stable")  # modes listed from low to high
    means = mixture.means_[keep, 0][order] * scale + center
    stds = np.sqrt(mixture.covariances_[keep].reshape(-1))[order] * scale
    kept = weights[keep][order] / weights[keep].sum()
    return [float(m) for m in means], [float(s) for s in stds], [float(w) for w in kept]


def _quantile_knots(values: np.ndarray) -> tuple[list[float], list[float]]:
    """The empirical CDF of ``values`` at QUANTILE_KNOTS + 1 evenly spaced levels: ``knots`` (non-decreasing;
    a value shared by many rows repeats, and the encoding spreads its rows over the levels it spans) and
    ``cdf`` (the levels, strictly increasing, so decoding maps a level range back onto the shared value)."""
    levels = np.linspace(0.0, 1.0, QUANTILE_KNOTS + 1)
    return [float(k) for k in np.quantile(values, levels)], [float(c) for c in levels]


def _encode_quantile(x: np.ndarray, knots: list[float], cdf: list[float], rng: np.random.Generator) -> np.ndarray:
    """F(x) through the piecewise-linear CDF; a value equal to a repeated knot gets a uniform draw over the
    levels it spans (so the level is about uniform on [0, 1], with no spike for the GAN to copy)."""
    k, c = np.asarray(knots, dtype=float), np.asarray(cdf, dtype=float)
    u = np.interp(x, k, c)
    left, right = np.searchsorted(k, x, side="left"), np.searchsorted(k, x, side="right")
    tied = right - left >= 2
    if tied.any():
        low, high = c[left[tied]], c[right[tied] - 1]
        u[tied] = low + (high - low) * rng.random(int(tied.sum()))
    return np.clip(u, 0.0, 1.0)


def _sample_modes(x: np.ndarray, info: ColumnInfo, limit: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample each value's mode from its posterior among modes that reach it without clipping; its alpha."""
    means, stds, weights = (np.asarray(v, dtype=float) for v in (info.means, info.stds, info.weights))
    alpha = (x[:, None] - means) / (4 * stds)  # (N, K)
    log_posterior = np.log(weights) - np.log(stds) - 8 * alpha**2  # + const; (x - mu)^2 / (2 sigma^2) = 8 alpha^2
    reachable = np.abs(alpha) <= limit
    log_posterior = np.where(reachable, log_posterior, -np.inf)
    slots = np.argmax(log_posterior + rng.gumbel(size=alpha.shape), axis=1)  # Gumbel-max: a posterior sample
    stranded = ~reachable.any(axis=1)  # beyond every mode's reach: the nearest, clipped
    slots[stranded] = np.argmin(np.abs(alpha[stranded]), axis=1)
    return slots, np.clip(alpha[np.arange(len(x)), slots], -limit, limit)


def _bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of sorted ``edges``: bin b holds [edges[b - 1], edges[b]), the outer two
    are open-ended (len(edges) + 1 bins; a row is in exactly one)."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(float)


def _shape_from_noisy_bins(edges: np.ndarray, noisy: np.ndarray, low: float, high: float,
                           extend: Callable[[int], float], integral: bool = False) -> dict[str, Any]:
    """A numeric column's shape inside its DP range from noisy counts of the fine public bins (post-processing):
    the bins between ``low`` and ``high``, less the outer ones whose noisy count is at most ``extend(n)`` for a
    run of n bins (a threshold that any of n empty bins clears with probability EXTEND_FALSE_BIN: the hundred
    empty bins between 1e-6 and 100 next to a column's zeros must not be taken in by one lucky draw), so the
    generator makes no values beyond the bulk; a piecewise-linear CDF of the rest (noisy counts clipped at 0,
    plus 0.5 so no bin inside the bulk is empty); and the exact zeros of the bin [0, 1e-6) as a point mass
    when that bin clears the threshold (zero-inflated columns: 59% of credit_data's Assets). For an
    ``integral`` column the knots move down by 0.5, so the values of bin [a, b) decode to the integers it
    holds once rounded ([3, 4) holds 3: knots 2.5..3.5, not 3..4, which would round half of them to 4)."""
    first = int(np.searchsorted(edges, low)) + 1  # bin first holds [edges[first - 1], edges[first]) = [low, ...)
    last = int(np.searchsorted(edges, high))  # bin last ends at edges[last] = high
    bins = np.arange(first, last + 1)
    if bins.size == 0:
        return {"low": low, "high": high, "knots": [low, high], "cdf": [0.0, 1.0], "masses": [low, high]}

    def trim(bins: np.ndarray) -> np.ndarray:
        above = np.flatnonzero(noisy[bins] > extend(len(bins)))
        return bins[above[0] : above[-1] + 1] if above.size else bins

    bins = trim(bins)
    zero = int(np.searchsorted(edges, 0.0)) + 1  # the bin [0, 1e-6): exact zeros
    masses = []
    if bins.size > 1 and bins[0] == zero:
        masses = [0.0] if noisy[zero] > extend(len(bins)) else []
        bins = trim(bins[1:])
    counts = noisy[bins]
    knots = edges[np.concatenate([[bins[0] - 1], bins])] - (0.5 if integral else 0.0)
    kept = np.maximum(counts, 0.0) + 0.5
    cdf = np.concatenate([[0.0], np.cumsum(kept) / kept.sum()])
    return {"low": 0.0 if masses else float(knots[0]), "high": float(knots[-1]),
            "knots": [float(x) for x in knots], "cdf": [float(c) for c in cdf], "masses": masses}


def _range_from_noisy_bins(edges: np.ndarray, noisy: np.ndarray, threshold: float,
                           extend: float | None = None) -> tuple[float, float]:
    """The range of a column's bulk from noisy counts of the public bins (``noisy[b]`` counts
    ``[edges[b - 1], edges[b])``, the outer two open-ended): the outer edges of the bins above ``threshold``, or
    of the fullest noisy bin when none is. Coarse by design: the bulk's bins are kept, a thin tail is clipped.

    (The exponential mechanism for the 1st/99th percentiles, used before, cannot tell a candidate just below
    the data from one at -10^12: both are q*n ranks away, a difference that a small epsilon cannot resolve.
    It gave credit_data's Amount, 100..5000, the range -487..-166.)"""
    kept = np.flatnonzero(noisy > threshold)
    if kept.size == 0:
        kept = np.array([int(np.argmax(noisy))])
    lowest, highest = int(kept.min()), int(kept.max())
    if extend is not None:  # take in the bins next to the bulk that clear the lower threshold ``extend``
        while lowest > 0 and noisy[lowest - 1] > extend:
            lowest -= 1
        while highest < len(noisy) - 1 and noisy[highest + 1] > extend:
            highest += 1
    return float(edges[max(lowest - 1, 0)]), float(edges[min(highest, len(edges) - 1)])


def _range_bin_edges(mantissas: Sequence[float] = RANGE_MANTISSAS) -> np.ndarray:
    """Public bin edges for DP ranges and shapes: 0 and +-m x 10^k (k = -6..12), sorted."""
    magnitudes = [m * 10.0**k for k in range(-6, 13) for m in mantissas]
    return np.unique(np.array([0.0] + magnitudes + [-m for m in magnitudes]))


# ----------------------------------------------------------------------------------------------------------
# Helpers: decoding


def _block(data: np.ndarray, span: Span) -> np.ndarray:
    return data[:, span.start : span.end]


def _argmax(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax with ties broken at random (an all-equal row must not always pick slot 0)."""
    best = block >= block.max(axis=1, keepdims=True)
    return np.argmax(np.where(best, 1.0 + rng.random(block.shape), 0.0), axis=1)


def _identifiers(info: ColumnInfo, n: int) -> np.ndarray:
    if info.id_prefix is not None:
        width = max(6, len(str(n)))
        return np.array([f"{info.id_prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)
    return info.id_start + info.id_step * np.arange(n, dtype=np.int64)


def _restore(info: ColumnInfo, values: np.ndarray, missing: np.ndarray) -> pd.Series:
    """Decoded values (+ missing mask) as a Series of the fitted column's dtype."""
    if info.kind == "datetime" or (info.kind == "constant" and info.dtype.startswith("datetime64")):
        ns = np.asarray(values, dtype=np.int64).copy()
        ns[missing] = _NAT
        stamps = pd.Series(ns.view("datetime64[ns]"))
        if info.as_text:
            texts = stamps.dt.strftime(info.date_format).to_numpy(dtype=object)
            texts[missing] = None
            return pd.Series(texts, dtype=_dtype(info.dtype))
        target = _dtype(info.dtype)
        if isinstance(target, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(target.tz)
        return stamps.astype(target)
    if info.kind == "identifier" and info.dtype == "category":
        return pd.Series(pd.Categorical(values))
    objects = np.empty(len(values), dtype=object)
    if info.kind == "integer" or (info.kind == "identifier" and info.id_prefix is None):
        objects[:] = [int(v) for v in values]
    elif info.kind == "continuous":
        objects[:] = [float(v) for v in values]
    else:
        objects[:] = list(values)
    if info.as_text:
        objects = np.array([_number_text(v) for v in objects], dtype=object)
    objects[missing] = None
    if info.dtype == "category":
        categories = info.dtype_categories if info.dtype_categories is not None else info.categories
        return pd.Series(pd.Categorical(objects, categories=categories, ordered=info.ordered))
    target = _dtype(info.dtype)
    if missing.any() and not _can_hold_missing(info):  # only when a DP column kept no category at all
        target = "boolean" if info.dtype == "bool" else info.dtype.capitalize().replace("Uint", "UInt")
    return pd.Series(objects, dtype=target)


def _number_text(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if value is None else str(value)


def _dtype(name: str) -> Any:
    try:
        return ptypes.pandas_dtype(name)
    except TypeError:
        return object


def _json_ready(value: Any, where: str) -> Any:
    """Builtins only, finite floats only: what ``json.dumps(..., allow_nan=False)`` accepts."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v, where) for v in value]
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: cannot save the non-finite number {value}")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(f"{where}: cannot save {value!r} ({type(value).__name__}) as JSON; categories and constants "
                      "must be text, numbers or booleans")
