"""TabularTransformer: column kinds, exact round trips, point masses, clipping, saving, and DP preprocessing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from ganforge.data.tabular import Span, TabularTransformer  # noqa: E402
from ganforge.errors import ConfigError  # noqa: E402

N = 1000
NUMERIC = ["bimodal", "assets", "age", "income"]


def mixed_frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    """One column of each kind the transformer must handle, ~1,000 rows."""
    rng = np.random.default_rng(seed)
    bimodal = np.where(rng.random(n) < 0.4, rng.normal(-5, 1, n), rng.normal(10, 2, n))
    assets = np.where(rng.random(n) < 0.5, 0.0, np.round(rng.lognormal(8, 1, n), 2))  # 50% exact zeros
    colour = rng.choice(np.array(["red", "green", "blue", "violet"], dtype=object), n, p=[0.6, 0.35, 0.05, 0.0])
    colour[7] = "violet"  # a rare class, seen once
    income = rng.normal(50_000, 10_000, n).round(1)
    income[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({
        "bimodal": bimodal,
        "assets": assets,
        "age": rng.integers(18, 91, n),
        "rooms": rng.integers(1, 6, n),  # low cardinality: categorical, still int64 on output
        "colour": colour,
        "flag": rng.random(n) < 0.3,
        "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
        "income": income,
        "customer_id": np.arange(1000, 1000 + n),
        "name": [f"person {i}" for i in rng.permutation(n)],
        "country": "FR",
    })


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return mixed_frame()


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> TabularTransformer:
    return TabularTransformer(seed=0).fit(frame)


def kinds(transformer: TabularTransformer) -> dict[str, str]:
    return {c.name: c.kind for c in transformer.columns}


def spans_of(transformer: TabularTransformer, column: str) -> dict[str, Span]:
    return {s.role: s for s in transformer.spans if s.column == column}


# ----------------------------------------------------------------------------------------------------------
# Kinds, layout, notes


def test_kinds_spans_and_notes(fitted: TabularTransformer, frame: pd.DataFrame) -> None:
    assert kinds(fitted) == {"bimodal": "continuous", "assets": "continuous", "age": "integer",
                             "rooms": "categorical", "colour": "categorical", "flag": "boolean",
                             "when": "datetime", "income": "continuous", "customer_id": "identifier",
                             "name": "identifier", "country": "constant"}
    # spans tile the row, with the activation their role implies
    assert fitted.spans[0].start == 0 and fitted.spans[-1].end == fitted.output_dim
    for before, after in zip(fitted.spans, fitted.spans[1:], strict=False):
        assert before.end == after.start
    for span in fitted.spans:
        assert span.activation == ("tanh" if span.role == "value" else "softmax")
        assert span.end - span.start == {"value": 1, "missing": 2}.get(span.role, span.end - span.start)
    # only the column with NaN has a missing span; identifiers and constants have no span at all
    assert [s.column for s in fitted.spans if s.role == "missing"] == ["income"]
    assert not {"customer_id", "name", "country"} & {s.column for s in fitted.spans}
    assert [s.column for s in fitted.condition_spans()] == ["rooms", "colour", "flag"]
    # categories by frequency, then value
    assert fitted.category_values("colour") == ["red", "green", "blue", "violet"]
    counts = frame["rooms"].value_counts()
    assert fitted.category_values("rooms") == sorted(counts.index, key=lambda v: (-counts[v], v))
    with pytest.raises(ConfigError, match="age"):
        fitted.category_values("age")
    notes = " ".join(fitted.notes)
    for column in ("customer_id", "name", "country"):
        assert repr(column) in notes
    info = {c.name: c for c in fitted.columns}
    assert info["income"].missing_rate == pytest.approx(frame["income"].isna().mean())
    assert info["assets"].point_masses == [0.0]  # the zero-inflation has its own mode slot


def test_overrides_and_more_dtypes() -> None:
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({
        "code": rng.integers(0, 1000, n),
        "day": pd.Series(pd.date_range("2021-01-01", periods=n, freq="D").strftime("%d/%m/%Y")),
        "grade": pd.Categorical(rng.choice(["b", "a", "c"], n), categories=["c", "b", "a", "z"], ordered=True),
        "count": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 60, n)), dtype="Int64"),
        "ok": pd.array(np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.5), dtype="boolean"),
        "level": rng.integers(0, 3, n).astype(float),
    })
    transformer = TabularTransformer(column_types={"code": "integer"}, discrete_columns=["count"]).fit(df)
    assert kinds(transformer) == {"code": "integer", "day": "datetime", "grade": "categorical",
                                  "count": "categorical", "ok": "boolean", "level": "categorical"}
    back = transformer.inverse_transform(transformer.transform(df))
    assert back.dtypes.equals(df.dtypes)
    assert back["day"].tolist() == df["day"].tolist()  # day-first text dates, written back the same way
    assert list(back["grade"].cat.categories) == ["c", "b", "a", "z"] and back["grade"].cat.ordered
    for column in ("grade", "count", "ok", "level"):
        pd.testing.assert_series_equal(back[column], df[column])


# ----------------------------------------------------------------------------------------------------------
# Round trip, point masses, clipping


def test_round_trip(fitted: TabularTransformer, frame: pd.DataFrame) -> None:
    rows = fitted.transform(frame)
    assert rows.dtype == np.float32 and rows.shape == (N, fitted.output_dim)
    np.testing.assert_array_equal(rows, fitted.transform(frame))  # mode sampling is seeded
    back = fitted.inverse_transform(rows)
    assert list(back.columns) == list(frame.columns)
    assert back.dtypes.equals(frame.dtypes)
    for column in ("rooms", "colour", "flag", "country"):
        pd.testing.assert_series_equal(back[column], frame[column])
    for column in NUMERIC:
        pd.testing.assert_series_equal(back[column].isna(), frame[column].isna())  # NaN in the same places
        scale = frame[column].max() - frame[column].min()
        np.testing.assert_allclose(back[column], frame[column], rtol=0, atol=0.01 * scale)
    assert (back["assets"][frame["assets"] == 0] == 0).all()
    pd.testing.assert_series_equal(back["when"], frame["when"])  # whole days come back as whole days


def test_zero_inflated_column_keeps_its_zeros(fitted: TabularTransformer, frame: pd.DataFrame) -> None:
    rows = fitted.transform(frame)
    value, mode = spans_of(fitted, "assets")["value"], spans_of(fitted, "assets")["mode"]
    frequencies = rows[:, mode.start : mode.end].mean(axis=0)  # how often the real rows use each mode slot
    rng = np.random.default_rng(3)
    n = 20_000
    fake = rng.uniform(-1, 1, (n, fitted.output_dim))
    fake[:, mode.start : mode.end] = np.eye(mode.end - mode.start)[rng.choice(len(frequencies), n, p=frequencies)]
    fake[:, value.start] = rng.uniform(-1, 1, n)
    assets = fitted.inverse_transform(fake)["assets"]
    assert (assets == 0).mean() == pytest.approx((frame["assets"] == 0).mean(), abs=0.02)
    assert assets.min() >= 0


def test_random_outputs_stay_in_range(fitted: TabularTransformer, frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    out = fitted.inverse_transform(3 * rng.normal(size=(5000, fitted.output_dim)), seed=1)
    assert out.dtypes.equals(frame.dtypes) and len(out) == 5000
    for column in (*NUMERIC, "when"):
        present = out[column].dropna()
        assert present.min() >= frame[column].min() and present.max() <= frame[column].max()
    assert (out["age"] == out["age"].round()).all()
    assert out["income"].isna().mean() == pytest.approx(0.5, abs=0.05)  # a coin flip on random spans
    for column in ("rooms", "colour", "flag"):
        assert set(out[column]) <= set(frame[column])
    assert (out["country"] == "FR").all()
    # identifiers: fresh, distinct, never a real one
    for column in ("customer_id", "name"):
        assert out[column].is_unique and not set(out[column]) & set(frame[column])
    assert out["name"].iloc[0] == "synthetic-000001"
    assert out["customer_id"].min() > frame["customer_id"].max()


def test_identifier_prefix_avoids_real_values() -> None:
    df = pd.DataFrame({"token": [f"synthetic-{i:06d}" for i in range(1, 101)], "x": np.arange(100) % 3})
    transformer = TabularTransformer().fit(df)
    assert kinds(transformer)["token"] == "identifier"
    out = transformer.inverse_transform(transformer.transform(df))
    assert not set(out["token"]) & set(df["token"])


# ----------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("make, match", [
    (lambda: pd.DataFrame({"a": pd.Series([], dtype=float)}), "0 row"),
    (lambda: pd.DataFrame({"a": [1.5], "b": ["x"]}), "1 row"),
    (lambda: pd.DataFrame({"a": [1.5, 2.5, 3.5], "hollow": [np.nan] * 3}), "column 'hollow' is empty"),
    (lambda: pd.DataFrame({"muddled": ["1", "2", "x", "y", "3.5", "z"] * 10}), "column 'muddled' mixes numbers"),
])
def test_bad_frames_raise(make, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TabularTransformer().fit(make())


def test_unknown_values_at_transform_raise(fitted: TabularTransformer, frame: pd.DataFrame) -> None:
    bad = frame.iloc[:5].copy()
    bad.loc[bad.index[0], "colour"] = "purple"
    with pytest.raises(ConfigError, match="colour.*purple"):
        fitted.transform(bad)
    nan = frame.iloc[:5].copy()
    nan.loc[nan.index[0], "age"] = np.nan
    with pytest.raises(ConfigError, match="'age'.*missing"):
        fitted.transform(nan)
    with pytest.raises(ConfigError, match="lacks"):
        fitted.transform(frame.drop(columns=["flag"]))
    with pytest.raises(ConfigError, match="shape"):
        fitted.inverse_transform(np.zeros((3, fitted.output_dim + 1)))


# ----------------------------------------------------------------------------------------------------------
# Saving


def test_to_dict_json_round_trip(fitted: TabularTransformer, frame: pd.DataFrame) -> None:
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    loaded = TabularTransformer.from_dict(json.loads(text))
    assert loaded.spans == fitted.spans and loaded.notes == fitted.notes
    rows = fitted.transform(frame)
    np.testing.assert_array_equal(loaded.transform(frame), rows)
    pd.testing.assert_frame_equal(loaded.inverse_transform(rows), fitted.inverse_transform(rows))
    with pytest.raises(ConfigError):
        TabularTransformer.from_dict({"format": "something else"})


# ----------------------------------------------------------------------------------------------------------
# Differential privacy


def declared(frame: pd.DataFrame) -> dict:
    """Public knowledge about every column: with it, the DP transformer needs no budget."""
    return {"bounds": {"bimodal": (-20, 30), "assets": (0, 100_000), "age": (0, 120), "rooms": (0, 10),
                       "when": ("2020-01-01", "2023-12-31"), "income": (0, 200_000)},
            "categories": {"colour": ["red", "green", "blue", "violet"], "country": ["FR", "DE"]}}


def test_dp_ledger_sums_to_epsilon(frame: pd.DataFrame) -> None:
    public = declared(frame)
    bounds = {k: v for k, v in public["bounds"].items() if k in ("assets", "when")}
    transformer = TabularTransformer().fit(frame, bounds=bounds, dp=(2.0, 1e-6))
    ledger = transformer.privacy_ledger
    assert sum(entry["epsilon"] for entry in ledger) == pytest.approx(2.0)
    assert transformer.epsilon_spent == pytest.approx(2.0) and transformer.delta_spent == pytest.approx(1e-6)
    # numeric columns buy their range and shape, or only the shape when the range is declared
    assert {entry["column"] for entry in ledger} == {"bimodal", "age", "rooms", "income", "colour", "country",
                                                     "assets"}
    assert [e["what"] for e in ledger if e["column"] == "assets"] == ["shape (16-bin histogram and the two bounds)"]
    assert not {"when", "flag"} & {entry["column"] for entry in ledger}  # declared or public: free
    for entry in ledger:
        assert set(entry) == {"column", "what", "epsilon", "delta", "mechanism"}
    # every encoded column has a missing span; DP mode reports no data-dependent missing rate
    encoded = {s.column for s in transformer.spans}
    assert encoded == {s.column for s in transformer.spans if s.role == "missing"}
    assert all(c.missing_rate is None for c in transformer.columns)
    out = transformer.inverse_transform(transformer.transform(frame))
    assert out.dtypes.equals(frame.dtypes)
    assert (out["assets"] == 0).mean() == pytest.approx((frame["assets"] == 0).mean())  # the bound 0 is exact
    json.dumps(transformer.to_dict(), allow_nan=False)


def test_dp_declared_knowledge_costs_nothing_and_ignores_any_one_row(frame: pd.DataFrame) -> None:
    public = declared(frame)
    changed = frame.copy()
    changed.loc[0, ["bimodal", "assets", "age", "colour"]] = [1e9, 1e12, 10**6, "blue"]
    first = TabularTransformer().fit(frame, dp=(1.0, 1e-6), dp_histograms=False, **public)
    second = TabularTransformer().fit(changed, dp=(1.0, 1e-6), dp_histograms=False, **public)
    assert first.privacy_ledger == [] and first.epsilon_spent == 0
    assert first.to_dict() == second.to_dict()  # the state does not depend on the data at all
    np.testing.assert_array_equal(first.transform(frame)[1:], second.transform(changed)[1:])
    extreme = first.inverse_transform(first.transform(changed)[:1])
    assert extreme["bimodal"].iloc[0] == 30 and extreme["age"].iloc[0] == 120  # clipped to the bounds


def test_dp_histogram_drops_a_category_seen_once(frame: pd.DataFrame) -> None:
    public = declared(frame)
    transformer = TabularTransformer(seed=5).fit(frame, bounds=public["bounds"], categories={"country": ["FR"]},
                                                 dp=(1.0, 1e-6), dp_histograms=False)
    assert [entry["column"] for entry in transformer.privacy_ledger] == ["colour"]
    values = transformer.category_values("colour")
    assert "red" in values and "violet" not in values  # one column: Gaussian threshold ~24 counts (Laplace 28.6)
    rows = transformer.transform(frame)  # the suppressed value reads as missing, without an error
    missing = spans_of(transformer, "colour")["missing"]
    assert rows[7, missing.start + 1] == 1


def test_dp_needs_datetime_bounds(frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="'when'"):
        TabularTransformer().fit(frame, dp=(1.0, 1e-6))


def test_dp_histogram_makes_a_skewed_column_about_uniform() -> None:
    rng = np.random.default_rng(0)
    skewed = pd.DataFrame({"income": rng.lognormal(3, 1, 5000).clip(1, 400)})  # most mass near the low bound
    bounds = {"income": (0.0, 400.0)}
    plain = TabularTransformer().fit(skewed, bounds=bounds, dp=(1.0, 1e-6), dp_histograms=False)
    shaped = TabularTransformer().fit(skewed, bounds=bounds, dp=(1.0, 1e-6))
    assert plain.privacy_ledger == [] and shaped.epsilon_spent == pytest.approx(1.0)
    assert shaped.columns[0].scaling == "quantile" and plain.columns[0].scaling == "minmax"
    value = lambda t: t.transform(skewed)[:, spans_of(t, "income")["value"].start]  # noqa: E731
    # min-max: the scalar is bunched up near -1; through the DP CDF it is close to uniform on [-1, 1]
    assert np.quantile(value(plain), 0.9) < -0.6
    q = np.quantile(value(shaped), [0.1, 0.5, 0.9])
    np.testing.assert_allclose(q, [-0.8, 0.0, 0.8], atol=0.1)
    back = shaped.inverse_transform(shaped.transform(skewed))["income"]
    top = shaped.columns[0].knots[-1]
    assert top < 400 and (skewed["income"] <= top).mean() > 0.99  # the empty end of the range is cut, not the bulk
    assert back.max() <= 400 and np.abs(back - skewed["income"])[skewed["income"] <= top].max() < 0.01  # invertible
    # decoding a uniform scalar gives the column's distribution back, up to the histogram's resolution
    rows = shaped.transform(skewed)
    rows[:, spans_of(shaped, "income")["value"].start] = rng.uniform(-1, 1, len(rows))
    decoded = shaped.inverse_transform(rows)["income"]
    assert abs(decoded.median() - skewed["income"].median()) < 400 / 16


def test_dp_range_covers_the_bulk_and_ignores_an_outlier() -> None:
    rng = np.random.default_rng(1)
    amount = pd.DataFrame({"amount": rng.normal(1000, 300, 3000).clip(100, 5000).round()})  # bulk 500..2000
    outlier = amount.copy()
    outlier.loc[0, "amount"] = -1e9
    fitted = [TabularTransformer(seed=seed).fit(frame, dp=(0.5, 1e-6)) for seed in range(5) for frame in
              (amount, outlier)]
    ranges = [(t.columns[0].minimum, t.columns[0].maximum) for t in fitted]
    for low, high in ranges:  # the log-spaced bins around the bulk, never a far-off empty bin
        assert 200 <= low <= 500 and 1000 <= high <= 5000, (low, high)
    assert ranges[0::2] == ranges[1::2]  # the same noise: one far-off row does not move the range
    ledger = fitted[0].privacy_ledger
    assert [e["what"] for e in ledger] == ["range and shape (public log-spaced bins)"]
    assert sum(e["epsilon"] for e in ledger) == pytest.approx(0.5)


def test_quantile_encoding_is_uniform_invertible_and_keeps_ties(frame: pd.DataFrame) -> None:
    from scipy import stats

    quantile = TabularTransformer(numeric_encoding="quantile", seed=0).fit(frame)
    assert {c.name: c.scaling for c in quantile.columns if c.kind in ("continuous", "integer")} == {
        "bimodal": "quantile", "assets": "quantile", "age": "quantile", "income": "quantile"}
    assert "value" in spans_of(quantile, "bimodal") and "mode" not in spans_of(quantile, "bimodal")  # one scalar
    rows = quantile.transform(frame)
    for column in ("bimodal", "age"):  # age: 73 integers, each shared by ~14 rows, spread over its levels
        scalar = rows[:, spans_of(quantile, column)["value"].start]
        assert stats.kstest(scalar, stats.uniform(loc=-1, scale=2).cdf).pvalue > 0.01
    back = quantile.inverse_transform(rows)
    pd.testing.assert_series_equal(back["age"], frame["age"])  # a tied integer decodes to itself
    scale = frame["bimodal"].max() - frame["bimodal"].min()
    np.testing.assert_allclose(back["bimodal"], frame["bimodal"], rtol=0, atol=1e-4 * scale)
    assert (back["assets"][frame["assets"] == 0] == 0).all()  # the point mass keeps its own slot
    pd.testing.assert_series_equal(back["income"].isna(), frame["income"].isna())
    # a uniform scalar decodes to the column's distribution, bimodal gap included
    rng = np.random.default_rng(5)
    rows[:, spans_of(quantile, "bimodal")["value"].start] = rng.uniform(-1, 1, len(rows))
    decoded = quantile.inverse_transform(rows)["bimodal"]
    assert stats.ks_2samp(decoded, frame["bimodal"]).pvalue > 0.01
    restored = TabularTransformer.from_dict(json.loads(json.dumps(quantile.to_dict())))
    assert restored.numeric_encoding == "quantile"
    np.testing.assert_array_equal(restored.transform(frame), quantile.transform(frame))
    # bins: the level split into equal-share bins, a one-hot for the bin and the scalar inside it
    binned = TabularTransformer(numeric_encoding="quantile", quantile_bins=4, seed=0).fit(frame)
    rows = binned.transform(frame)
    mode = spans_of(binned, "bimodal")["mode"]
    assert mode.end - mode.start == 4
    np.testing.assert_allclose(rows[:, mode.start : mode.end].mean(0), 0.25, atol=0.03)
    assert (np.argmax(rows[:, mode.start : mode.end], 1) == np.digitize(frame["bimodal"],
                                                                          np.quantile(frame["bimodal"], [.25, .5, .75]))
            ).mean() > 0.99  # bin b holds the b-th quarter of the values
    back = binned.inverse_transform(rows)
    pd.testing.assert_series_equal(back["age"], frame["age"])
    np.testing.assert_allclose(back["bimodal"], frame["bimodal"], rtol=0, atol=1e-4 * scale)
    with pytest.raises(ConfigError, match="quantile_bins"):
        TabularTransformer(quantile_bins=0)
    with pytest.raises(ConfigError, match="numeric_encoding must be one of gmm, quantile"):
        TabularTransformer(numeric_encoding="rank")


def test_dp_histogram_cuts_an_empty_end_and_keeps_only_bounds_that_hold_rows() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(10, 1000, 4000)
    values[:1200] = 0.0  # 30% exact zeros at the lower bound: a pile of its own
    frame = pd.DataFrame({"debt": values})
    fitted = TabularTransformer().fit(frame, bounds={"debt": (0.0, 5000.0)}, dp=(1.0, 1e-6))
    info = fitted.columns[0]
    assert info.point_masses == [0.0]  # nobody at 5000: never generated
    assert 1000 <= info.knots[-1] <= 1000 + 5000 / 16  # the bins above the data are cut (one bin of slack)
    rows = fitted.transform(frame)
    span = spans_of(fitted, "debt")
    rows[:, span["mode"].start : span["mode"].end] = 0.0
    rows[:, span["mode"].start] = 1.0  # every row in the continuous mode, at the top of its scalar
    rows[:, span["value"].start] = 1.0
    assert fitted.inverse_transform(rows)["debt"].max() <= info.knots[-1] + 1e-6


def test_dp_categories_of_many_columns_are_released_jointly() -> None:
    """Twelve categorical columns share one Gaussian partition selection: a category of 100 rows clears its
    threshold (~51 rows), where twelve Laplace histograms at a twelfth of epsilon each would need ~216; a
    value one row holds is never released; the ledger splits the one release over the columns."""
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"c{j}": rng.choice(["a", "b", "c"], size=n) for j in range(12)})
    frame.loc[:99, "c0"] = "rare"
    frame.loc[100, "c1"] = "once"
    epsilon, delta = 1.25, 1.6e-4
    released, once = 0, 0
    for seed in range(20):
        t = TabularTransformer().fit(frame, dp=(epsilon, delta), dp_histograms=False, noise_seed=seed)
        released += "rare" in t.category_values("c0")
        once += "once" in t.category_values("c1")
    assert released == 20 and once == 0
    assert sum(e["epsilon"] for e in t.privacy_ledger) == pytest.approx(epsilon)
    assert sum(e["delta"] for e in t.privacy_ledger) == pytest.approx(delta)
    assert len(t.privacy_ledger) == 12 and "on 12 count(s) per row at once" in t.privacy_ledger[0]["mechanism"]
    note = next(note for note in t.notes if "fewer than about" in note)
    threshold = int(note.split("about ")[1].split()[0])
    assert 40 < threshold < 65
    assert 1 + 2 * math.log(12 / delta) / (epsilon / 12) > 200  # what separate Laplace histograms would need


def test_dp_numeric_ranges_join_the_category_release() -> None:
    """Ten categorical columns and two numeric ones without bounds: the numeric columns' range bins (and the
    finer shape bins) get the same joint Gaussian noise (15 counts per row: sensitivity sqrt(15)), so a range
    bin of 120 rows is kept (threshold ~60), where a Laplace histogram at half a numeric column's share of
    epsilon would need ~220 rows."""
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"c{j}": rng.choice(["a", "b", "c"], size=n) for j in range(10)})
    frame["time"] = np.concatenate([rng.integers(300, 500, 120), rng.integers(1000, 2000, n - 120)])
    frame["amount"] = rng.uniform(20, 50, n)
    epsilon, delta = 1.25, 1.6e-4
    lows = []
    for seed in range(10):
        t = TabularTransformer().fit(frame, dp=(epsilon, delta), noise_seed=seed)
        info = {c.name: c for c in t.columns}
        lows.append(info["time"].minimum)
        assert (info["amount"].minimum, info["amount"].maximum) == (20, 50)
    assert all(200 <= low <= 300 for low in lows), lows  # the 300..499 rows' bins are kept: nothing clipped
    ranges = [e for e in t.privacy_ledger if e["what"].startswith("range")]
    assert len(ranges) == 2 and all("on 15 count(s) per row at once" in e["mechanism"] for e in ranges)
    assert all(e["delta"] > 0 for e in ranges)  # the Gaussian noise spends delta too
    assert sum(e["epsilon"] for e in t.privacy_ledger) == pytest.approx(epsilon)
    assert sum(e["delta"] for e in t.privacy_ledger) == pytest.approx(delta)
    assert math.log(116 / 0.001) / (epsilon / 12 / 2) > 200  # what a Laplace range would need


def test_dp_shape_comes_from_the_fine_public_bins_with_zeros_as_a_point_mass() -> None:
    """Without bounds, a numeric column's shape is post-processing of the same joint release: the fine public
    bins (1, 1.2, 1.5, 2, ... x 10^k) inside its range. Half of this column is exact zeros: they become a
    point mass, and the hundred empty bins between 1e-6 and 100 next to them are taken in on at most 3 of 20
    noise draws (the threshold lets any of them through with probability 2.5% per draw); the top stays near
    the data's end; decoding uniform scalars gives the column back."""
    rng = np.random.default_rng(0)
    n = 4000
    debt = np.where(rng.random(n) < 0.5, 0.0, np.round(np.exp(rng.normal(6.5, 0.5, n))))  # ~250..2500
    frame = pd.DataFrame({"debt": debt, "c": rng.choice(["a", "b"], n), "d": rng.choice(["x", "y"], n)})
    bottoms = []
    for seed in range(20):
        t = TabularTransformer().fit(frame, dp=(1.0, 1e-5), noise_seed=seed)
        info = t.columns[0]
        assert info.point_masses == [0.0] and info.scaling == "quantile"
        assert 1990 <= info.knots[-1] <= 6000, info.knots[-1]  # integer-valued: knots 0.5 below the bin edges
        bottoms.append(info.knots[0])
    assert sum(79 <= b <= 300 for b in bottoms) >= 17, bottoms
    t = TabularTransformer().fit(frame, dp=(1.0, 1e-5), noise_seed=int(np.argmax(bottoms)))
    rows = t.transform(frame)
    span = spans_of(t, "debt")
    positive = frame["debt"] > 0
    rows[:, span["value"].start] = rng.uniform(-1, 1, len(rows))
    decoded = t.inverse_transform(rows)["debt"][positive.to_numpy()]  # rows in the continuous mode
    assert abs(decoded.median() - frame["debt"][positive].median()) < 0.1 * frame["debt"][positive].median()


def test_dp_integer_valued_floats_are_found_privately_and_decode_to_their_integers() -> None:
    """A float column holding only 1, 2, 3 (colon's `differ`) costs one more noisy count per row: its rows with
    a fractional part. Under 2% of the rows: it is integer-valued, rounded on output, and the fine bins'
    knots move down by 0.5 so bin [3, 4) decodes to 3, not half to 4. A truly continuous column stays so."""
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"differ": rng.choice([1.0, 2.0, 3.0], n, p=[0.1, 0.7, 0.2]),
                          "dose": rng.uniform(1, 3, n), "c": rng.choice(["a", "b"], n)})
    t = TabularTransformer().fit(frame, dp=(1.0, 1e-5), noise_seed=0)
    info = {c.name: c for c in t.columns}
    assert info["differ"].decimals == 0 and (info["differ"].minimum, info["differ"].maximum) == (1.0, 3.0)
    assert info["dose"].decimals is None
    rows = t.transform(frame)
    rows[:, spans_of(t, "differ")["value"].start] = rng.uniform(-1, 1, len(rows))
    decoded = t.inverse_transform(rows)["differ"]
    assert set(decoded.unique()) == {1.0, 2.0, 3.0}
    shares = decoded.value_counts(normalize=True)
    assert abs(shares[2.0] - 0.7) < 0.1 and abs(shares[3.0] - 0.2) < 0.1
    assert "3 count(s) per row" not in t.privacy_ledger[0]["mechanism"]  # 1 + 3 + 3: seven counts per row
    assert "7 count(s) per row" in t.privacy_ledger[0]["mechanism"]
