"""The synthetic-table audit on small seeded tables whose right answers are known by construction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="the tabular audit needs pandas: pip install 'ganforge[tabular]'")

from scipy.stats import ks_2samp  # noqa: E402

from ganforge.errors import ConfigError  # noqa: E402
from ganforge.metrics.tabular import audit, column_types, read_table, write_table  # noqa: E402

N = 1000


def make_table(n: int, seed: int) -> pd.DataFrame:
    """One draw of a fixed generative process: correlated numbers, categories, NaNs, a learnable binary target."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = 0.8 * x1 + 0.6 * rng.normal(size=n)  # Pearson 0.8 with x1
    age = rng.integers(18, 90, size=n)  # 72 distinct integers: continuous
    kids = rng.integers(0, 4, size=n)  # 4 distinct integers: discrete
    colour = np.where(x1 + rng.normal(scale=0.5, size=n) > 0, rng.choice(["red", "green"], size=n), "blue")
    member = rng.random(n) < 0.3
    income = np.exp(1.0 + 0.5 * x1 + 0.3 * rng.normal(size=n))
    income[rng.random(n) < 0.1] = np.nan
    logit = 3.0 * x1 + 2.0 * (colour == "blue") - 2.0 * member
    target = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame({"x1": x1, "x2": x2, "age": age, "kids": kids, "colour": colour, "member": member,
                         "income": income, "target": target})


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_table(N, 0)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return make_table(N, 1)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    """What a perfect generator would produce: new rows from the same process."""
    return make_table(N, 2)


@pytest.fixture(scope="module")
def fresh_report(train, fresh, holdout):
    return audit(train, fresh, holdout, target="target", dp={"epsilon": 3.0, "delta": 1e-5})


@pytest.fixture(scope="module")
def copy_report(train, holdout):
    return audit(train, train.copy(), holdout)


# ---------------------------------------------------------------------------------------------------------
# Fidelity


def test_column_types(train):
    frame = train.assign(when=pd.Timestamp("2024-01-01") + pd.to_timedelta(train["age"], unit="D"))
    kinds = column_types(frame)
    assert kinds == {"x1": "continuous", "x2": "continuous", "age": "continuous", "kids": "discrete",
                     "colour": "discrete", "member": "discrete", "income": "continuous", "target": "discrete",
                     "when": "datetime"}
    assert column_types(frame, discrete_columns=["age"])["age"] == "discrete"


def test_same_process_scores_high_fidelity(fresh_report):
    fidelity = fresh_report.fidelity
    assert fidelity["score"] > 0.9
    assert fidelity["column_shapes"] > 0.9 and fidelity["column_pair_trends"] > 0.85
    assert fidelity["score"] == pytest.approx((fidelity["column_shapes"] + fidelity["column_pair_trends"]) / 2)
    assert len(fidelity["pairs"]) == 8 * 7 // 2
    assert fresh_report.protocol["column_types"]["kids"] == "discrete"


def test_independent_columns_keep_shapes_but_lose_pairs(train, holdout, fresh_report):
    rng = np.random.default_rng(3)
    # each column shuffled on its own: the same values (perfect shapes), no relationships left
    independent = pd.DataFrame({c: rng.permutation(train[c].to_numpy()) for c in train.columns})
    report = audit(train, independent, holdout)
    fidelity = report.fidelity
    assert fidelity["column_shapes"] == pytest.approx(1.0)
    assert fidelity["column_pair_trends"] < fresh_report.fidelity["column_pair_trends"] - 0.05
    pair = next(p for p in fidelity["pairs"] if (p["column_1"], p["column_2"]) == ("x1", "x2"))
    assert pair["metric"] == "CorrelationSimilarity"
    assert pair["real_correlation"] == pytest.approx(0.8, abs=0.05)
    assert pair["score"] == pytest.approx(1 - abs(pair["real_correlation"] - pair["synthetic_correlation"]) / 2)
    assert pair["score"] == pytest.approx(0.6, abs=0.05)


def test_shifted_distribution_scores_lower(train, holdout, fresh, fresh_report):
    shifted = fresh.assign(x1=fresh["x1"] + 1.5, income=fresh["income"] * 3)
    report = audit(train, shifted, holdout)
    assert report.fidelity["score"] < fresh_report.fidelity["score"] - 0.05
    x1 = report.fidelity["columns"]["x1"]
    assert x1["shape"] < 0.6
    assert x1["out_of_range"] > fresh_report.fidelity["columns"]["x1"]["out_of_range"]
    assert x1["out_of_range"] == pytest.approx(float(np.mean(shifted["x1"] > train["x1"].max())))


def test_ks_complement_matches_scipy(train, fresh, fresh_report):
    columns = fresh_report.fidelity["columns"]
    assert columns["x1"]["value_similarity"] == pytest.approx(1 - ks_2samp(train["x1"], fresh["x1"]).statistic)
    assert columns["x1"]["shape"] == columns["x1"]["value_similarity"]  # no missing values: shape is KS alone
    # with missing values the shape averages in 1 - |missing rate difference|
    income = columns["income"]
    ks = ks_2samp(train["income"].dropna(), fresh["income"].dropna()).statistic
    missing_gap = abs(train["income"].isna().mean() - fresh["income"].isna().mean())
    assert income["value_similarity"] == pytest.approx(1 - ks)
    assert income["shape"] == pytest.approx(((1 - ks) + (1 - missing_gap)) / 2)


def test_total_variation_closed_form():
    real = pd.DataFrame({"c": ["a", "a", "b", "c"]})
    synthetic = pd.DataFrame({"c": ["a", "b", "b", "z"]})
    report = audit(real, synthetic, real.copy())
    column = report.fidelity["columns"]["c"]
    # real a .5 b .25 c .25, synthetic a .25 b .5 z .25: TVD = (.25 + .25 + .25 + .25) / 2
    assert column["value_similarity"] == pytest.approx(0.5)
    assert column["max_rate_difference_pp"] == pytest.approx(25.0)
    assert column["unseen_categories"] == ["z"] and column["unseen_share"] == pytest.approx(0.25)
    assert column["category_rates"]["a"] == {"real": 0.5, "synthetic": 0.25}
    assert math.isnan(report.fidelity["column_pair_trends"])  # one column: no pairs, score is the shapes alone
    assert report.fidelity["score"] == pytest.approx(0.5)

    # missing values: TVD of the non-missing values, averaged with 1 - |missing rate difference|
    report = audit(pd.DataFrame({"c": ["a", "a", None, "b"]}), pd.DataFrame({"c": ["a", "b", "b", "b"]}),
                   pd.DataFrame({"c": ["a", "b", "a", "b"]}))
    column = report.fidelity["columns"]["c"]
    tvd = (abs(2 / 3 - 1 / 4) + abs(1 / 3 - 3 / 4)) / 2
    assert column["value_similarity"] == pytest.approx(1 - tvd)
    assert column["shape"] == pytest.approx(((1 - tvd) + (1 - 0.25)) / 2)


def test_categories_match_across_dtypes(train, fresh, holdout):
    """A generator that writes the integer column as floats and booleans as text still matches its categories."""
    retyped = fresh.assign(kids=fresh["kids"].astype(float), member=fresh["member"].astype(str))
    columns = audit(train, retyped, holdout).fidelity["columns"]
    assert columns["kids"]["n_unseen_categories"] == 0 and columns["member"]["n_unseen_categories"] == 0
    assert columns["kids"]["shape"] > 0.9 and columns["member"]["shape"] > 0.9


# ---------------------------------------------------------------------------------------------------------
# Utility


def test_fresh_sample_is_as_useful_as_real(fresh_report):
    utility = fresh_report.utility
    assert utility["task"] == "classification"
    auc = utility["metrics"]["roc_auc"]
    assert auc["trtr"] > 0.8  # the target is learnable, so the comparison means something
    assert auc["tstr"] == pytest.approx(auc["trtr"], abs=0.06)
    assert auc["ratio"] == pytest.approx(auc["tstr"] / auc["trtr"])
    assert 0.5 < utility["metrics"]["accuracy"]["tstr"] <= 1.0


def test_shuffled_labels_are_useless(train, fresh, holdout, fresh_report):
    shuffled = fresh.assign(target=np.random.default_rng(4).permutation(fresh["target"].to_numpy()))
    auc = audit(train, shuffled, holdout, target="target").utility["metrics"]["roc_auc"]
    assert auc["tstr"] == pytest.approx(0.5, abs=0.07)
    assert auc["trtr"] == pytest.approx(fresh_report.utility["metrics"]["roc_auc"]["trtr"])


def test_single_class_synthetic_target_is_reported_not_raised(train, fresh, holdout):
    report = audit(train, fresh.assign(target=True), holdout, target="target")
    metrics = report.utility["metrics"]
    assert math.isnan(metrics["roc_auc"]["tstr"]) and math.isnan(metrics["accuracy"]["tstr"])
    assert metrics["roc_auc"]["trtr"] > 0.8
    assert report.utility["synthetic_single_class"]
    assert "could not be measured" in report.verdict and "'True'" in report.verdict
    json.dumps(report.to_dict(), allow_nan=False)  # the NaNs became nulls
    assert report.to_dict()["utility"]["metrics"]["roc_auc"]["tstr"] is None


def test_regression_target(train, fresh, holdout):
    utility = audit(train, fresh, holdout, target="x2", max_rows=500).utility
    assert utility["task"] == "regression" and list(utility["metrics"]) == ["r2"]
    assert utility["metrics"]["r2"]["trtr"] > 0.4  # x2 = 0.8 x1 + noise: at best 0.64
    assert utility["metrics"]["r2"]["tstr"] == pytest.approx(utility["metrics"]["r2"]["trtr"], abs=0.1)


# ---------------------------------------------------------------------------------------------------------
# Privacy


def test_copy_of_training_data_is_high_risk(copy_report):
    privacy = copy_report.privacy
    assert privacy["exact_copy_share"] == 1.0 and privacy["exact_copy_count"] == N
    assert privacy["holdout_exact_copy_share"] == 0.0
    assert privacy["dcr_ratio"] < 0.01
    assert privacy["nndr_synthetic_median"] < 0.01
    assert privacy["mia_auc"] > 0.9
    assert privacy["risk"] == "high"
    assert "Privacy risk is HIGH" in copy_report.verdict


def test_fresh_sample_is_low_risk(fresh_report):
    privacy = fresh_report.privacy
    assert privacy["exact_copy_share"] == 0.0
    assert privacy["dcr_ratio"] == pytest.approx(1.0, abs=0.1)
    assert privacy["mia_auc"] == pytest.approx(0.5, abs=0.1)
    assert privacy["mia_candidates"] == 2 * N
    assert privacy["risk"] == "low" and privacy["reasons"] == []
    assert "Privacy risk is LOW" in fresh_report.verdict
    assert "epsilon=3.0" in fresh_report.verdict  # the dp claim is quoted, and said to be unverified
    assert fresh_report.protocol["dp"] == {"epsilon": 3.0, "delta": 1e-5}


def test_near_copies_are_caught_without_exact_copies(train, holdout):
    """Jittered training rows are no exact copies, yet sit much closer to the training rows than new rows do."""
    rng = np.random.default_rng(5)
    jittered = train.assign(x1=train["x1"] + rng.normal(scale=0.01, size=N),
                            x2=train["x2"] + rng.normal(scale=0.01, size=N))
    privacy = audit(train, jittered, holdout).privacy
    assert privacy["exact_copy_share"] == 0.0
    assert privacy["dcr_ratio"] < 0.2
    assert privacy["mia_auc"] > 0.8 and privacy["risk"] == "high"


def test_sampling_is_seeded(train, fresh, holdout):
    first = audit(train, fresh, holdout, max_rows=300, seed=7)
    second = audit(train, fresh, holdout, max_rows=300, seed=7)
    assert first.to_dict() == second.to_dict()
    assert first.protocol["rows_used"] == {"real_train": 300, "synthetic": 300, "real_holdout": 300,
                                           "mia_candidates": 600}
    assert first.protocol["rows_given"]["real_train"] == N


# ---------------------------------------------------------------------------------------------------------
# Reports


def test_report_is_json_safe_and_readable(fresh_report, copy_report):
    for report in (fresh_report, copy_report):
        text = json.dumps(report.to_dict(), allow_nan=False)
        assert json.loads(text)["protocol"]["seed"] == 0
    markdown = fresh_report.to_markdown()
    for heading in ("## Verdict", "## Fidelity", "## Utility", "## Privacy", "## Protocol"):
        assert heading in markdown
    for column in fresh_report.protocol["column_types"]:
        assert f"| {column} |" in markdown
    assert "| mia_auc |" in markdown and "Privacy risk: low" in markdown
    assert 2 <= fresh_report.verdict.count(". ") + 1 <= 5
    assert 2 <= copy_report.verdict.count(". ") + 1 <= 5


# ---------------------------------------------------------------------------------------------------------
# Bad input and files


def test_missing_columns_are_named(train, fresh, holdout):
    with pytest.raises(ConfigError, match=r"synthetic lacks column\(s\) \['income', 'target'\]"):
        audit(train, fresh.drop(columns=["income", "target"]), holdout)
    with pytest.raises(ConfigError, match=r"real_holdout lacks column\(s\) \['kids'\]"):
        audit(train, fresh, holdout.drop(columns=["kids"]))


def test_bad_target_names_the_columns(train, fresh, holdout):
    with pytest.raises(ConfigError, match=r"target 'salary' is not a column.*'x1', 'x2'"):
        audit(train, fresh, holdout, target="salary")
    with pytest.raises(ConfigError, match=r"discrete_columns \['nope'\]"):
        audit(train, fresh, holdout, discrete_columns=["nope"])


def test_empty_frames_are_refused(train, fresh, holdout):
    with pytest.raises(ConfigError, match=r"synthetic is empty.*'x1'"):
        audit(train, fresh.iloc[:0], holdout)
    with pytest.raises(ConfigError, match="real_train is empty"):
        audit(pd.DataFrame(), fresh, holdout)


def test_read_and_write_tables(tmp_path, train):
    path = write_table(train, tmp_path / "sub" / "train.csv")
    back = read_table(path)
    assert list(back.columns) == list(train.columns) and len(back) == N
    assert back["x1"].to_numpy() == pytest.approx(train["x1"].to_numpy())

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="no rows"):
        read_table(tmp_path / "header.csv")
    with pytest.raises(ConfigError, match="not found"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="unknown table format .xlsx"):
        read_table(tmp_path / "table.xlsx")


def test_parquet_needs_pyarrow(tmp_path, train):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install pyarrow"):
            write_table(train, tmp_path / "train.parquet")
        (tmp_path / "train.parquet").write_bytes(b"PAR1")
        with pytest.raises(ConfigError, match="pip install pyarrow"):
            read_table(tmp_path / "train.parquet")
        return
    back = read_table(write_table(train, tmp_path / "train.parquet"))
    pd.testing.assert_frame_equal(back, train)


# ---------------------------------------------------------------------------------------------------------
# Identifier columns


def with_ids(frame: pd.DataFrame, start: int) -> pd.DataFrame:
    return frame.assign(customer_id=np.arange(start, start + len(frame)))


def test_identifiers_are_detected_and_left_out(train, fresh, holdout, fresh_report):
    """A fresh id per row (what TabularGAN writes) is neither unfaithful nor private: it is not audited."""
    report = audit(with_ids(train, 0), with_ids(fresh, 50_000), with_ids(holdout, 10_000), target="target",
                   dp={"epsilon": 3.0, "delta": 1e-5})
    assert report.protocol["identifier_columns"] == {
        "customer_id": "named like an identifier, 100% of its values distinct"}
    assert "customer_id" not in report.fidelity["columns"]
    assert not any("customer_id" in (p["column_1"], p["column_2"]) for p in report.fidelity["pairs"])
    # exactly the audit of the same frames without the column
    assert report.fidelity["score"] == fresh_report.fidelity["score"]
    assert report.privacy["dcr_ratio"] == fresh_report.privacy["dcr_ratio"]
    assert report.utility["metrics"]["roc_auc"] == fresh_report.utility["metrics"]["roc_auc"]
    assert "identifier columns, left out of every measure: customer_id" in report.to_markdown()


def test_audited_identifiers_hide_copies(train, fresh, holdout):
    """Why they are left out: a copy of the training rows with new ids has no exact copies once ids count."""
    copied = with_ids(train, 50_000)
    detected = audit(with_ids(train, 0), copied, with_ids(holdout, 10_000))
    assert detected.privacy["exact_copy_share"] == 1.0 and detected.privacy["risk"] == "high"
    scored = audit(with_ids(train, 0), copied, with_ids(holdout, 10_000), identifiers=[])
    assert scored.protocol["identifier_columns"] == {}
    assert scored.privacy["exact_copy_share"] == 0.0
    assert scored.fidelity["columns"]["customer_id"]["shape"] < 0.1  # fresh ids share no range with real ones
    named = audit(train, fresh, holdout, identifiers=["age"])
    assert "age" not in named.fidelity["columns"] and named.protocol["identifier_columns"] == {
        "age": "named in identifiers"}


def test_identifier_detection_rules():
    from ganforge.metrics.tabular import detect_identifiers

    n = 200
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "id": np.repeat(np.arange(n // 2), 2),  # two rows per patient: 50% distinct, named like an id
        "email": [f"user{i}@example.org" for i in range(n)],
        "code": [f"C{i:05d}" for i in range(n)],  # text, all distinct
        "ticket": np.arange(n) * 7,  # integers, all distinct
        "amount": rng.normal(size=n),  # floats are measurements, even all distinct
        "group": rng.integers(0, 3, n),
        "user_id_float": rng.normal(size=n),  # named like an id but floats
        # an id column with missing values reads as float64: integer-valued floats are typed as integers
        "account_id": np.where(np.arange(n) % 10 == 0, np.nan, np.arange(n, dtype=float)),
        "serial": np.arange(n) + 0.5,  # all distinct, but with a fractional part: a measurement
        "visit_id": np.arange(n) % 4,  # named like an id, 4 distinct values: a category (as TabularGAN types it)
        "remarks": [f"called on day {i % 120} about the delivery" for i in range(n)],  # 60% distinct free text
        "city": rng.choice(["a long city name that repeats often", "another long city name"], size=n),
    })
    found = detect_identifiers(frame)
    assert set(found) == {"id", "email", "code", "ticket", "remarks", "account_id"}
    assert found["remarks"].startswith("free text")
    assert detect_identifiers(frame, exclude=["ticket"]).keys() == {"id", "email", "code", "remarks", "account_id"}


def test_identifier_detection_matches_tabulargan_typing():
    """The audit leaves out exactly the columns TabularGAN types as identifiers (and so never learns)."""
    from ganforge.data.tabular import TabularTransformer
    from ganforge.metrics.tabular import detect_identifiers

    n = 120
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "account_id": np.where(np.arange(n) % 10 == 0, np.nan, np.arange(n, dtype=float) * 3),
        "ticket": np.arange(n) * 7,
        "visit_id": np.arange(n) % 4,
        "serial": np.arange(n) + 0.5,
        "amount": rng.normal(size=n),
        "email": [f"user{i}@example.org" for i in range(n)],
        "group": rng.choice(["a", "b"], size=n),
    })
    transformer = TabularTransformer().fit(frame)
    typed = {info.name for info in transformer.columns if info.kind == "identifier"}
    assert typed == set(detect_identifiers(frame)) == {"account_id", "ticket", "email"}
    # a small table: 15 visit ids over 30 rows is half distinct and named like an id, but TabularGAN types
    # integers with at most 20 distinct values as a category first
    small = pd.DataFrame({"visit_id": np.arange(30) // 2, "x": rng.normal(size=30)})
    small_typed = {info.name for info in TabularTransformer().fit(small).columns if info.kind == "identifier"}
    assert small_typed == set(detect_identifiers(small)) == set()


def test_identifier_errors(train, fresh, holdout):
    with pytest.raises(ConfigError, match="nope"):
        audit(train, fresh, holdout, identifiers=["nope"])
    with pytest.raises(ConfigError, match="target 'target' is also named an identifier"):
        audit(train, fresh, holdout, target="target", identifiers=["target"])
    ids = pd.DataFrame({"id": np.arange(100)})
    with pytest.raises(ConfigError, match="every column of real_train is an identifier"):
        audit(ids, ids + 1000, ids + 500)


def test_cli_identifiers_flag(tmp_path, train, fresh, holdout, capsys):
    from ganforge.cli import main

    with_ids(train, 0).to_csv(tmp_path / "train.csv", index=False)
    with_ids(fresh, 50_000).to_csv(tmp_path / "synth.csv", index=False)
    with_ids(holdout, 10_000).to_csv(tmp_path / "holdout.csv", index=False)
    base = ["tabular", "audit", "--real", str(tmp_path / "train.csv"), "--synthetic", str(tmp_path / "synth.csv"),
            "--holdout", str(tmp_path / "holdout.csv"), "--json"]
    capsys.readouterr()
    assert main(base) == 0
    assert "customer_id" not in json.loads(capsys.readouterr().out)["fidelity"]["columns"]
    assert main([*base, "--identifiers", "none"]) == 0
    assert "customer_id" in json.loads(capsys.readouterr().out)["fidelity"]["columns"]


def test_associated_pairs_tell_independent_columns_from_fresh_rows(train, fresh, holdout, fresh_report):
    """x1-x2 (Pearson 0.8) and colour-x1 are associated; sampling each column alone keeps no relationship."""
    from scipy.stats.contingency import association

    fidelity = fresh_report.fidelity
    associated = {(p["column_1"], p["column_2"]) for p in fidelity["pairs"] if p["associated"]}
    assert ("x1", "x2") in associated and ("x1", "colour") in associated and ("kids", "member") not in associated
    assert fidelity["associated_pairs"] == len(associated)
    # Cramer's V: scipy's on the real table of colour against x1's 10 quantile bins
    pair = next(p for p in fidelity["pairs"] if (p["column_1"], p["column_2"]) == ("x1", "colour"))
    bins = pd.qcut(train["x1"], 10, labels=False)
    assert pair["real_cramers_v"] == pytest.approx(association(pd.crosstab(bins, train["colour"]).to_numpy(),
                                                               method="cramer"))
    rng = np.random.default_rng(3)
    shuffled = fresh.apply(lambda column: column.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
                           .to_numpy())
    independent = audit(train, shuffled, holdout).fidelity
    gap_all = fidelity["column_pair_trends"] - independent["column_pair_trends"]
    gap_associated = fidelity["associated_pair_trends"] - independent["associated_pair_trends"]
    assert gap_associated > 0.15 and gap_associated > 2 * gap_all
    assert "associated pair(s)" in fresh_report.to_markdown()
