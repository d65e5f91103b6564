"""TabularGAN and `ganforge tabular`: fit, sample, conditions, save/load, DP, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")

from ganforge.apps.tabular import DPConfig, TabularGAN  # noqa: E402
from ganforge.cli import main  # noqa: E402
from ganforge.errors import ConfigError  # noqa: E402

TINY = dict(steps=30, batch_size=100, z_dim=8, generator_dims=(32,), discriminator_dims=(32,), pac=10,
            progress=False, threads=1, log_every=10, checkpoint_every=10)


def table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    income = np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(8, 0.5, n)).round(2)  # zero-inflated
    status = np.where(rng.random(n) < 0.2, "bad", "good")
    age = rng.integers(18, 80, n)
    score = rng.normal(600, 50, n)
    score[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"income": income, "status": status, "age": age, "score": score,
                         "member": rng.random(n) < 0.3})


@pytest.fixture(scope="module")
def fitted():
    return TabularGAN(**TINY).fit(table())


def test_sample_has_the_columns_dtypes_and_categories(fitted):
    real = table()
    fake = fitted.sample(300, seed=1)
    assert list(fake.columns) == list(real.columns) and len(fake) == 300
    assert dict(fake.dtypes) == dict(real.dtypes)
    assert set(fake["status"]) <= {"bad", "good"}
    assert fake["income"].min() >= 0 and fake["age"].between(18, 79).all()  # never outside the real range
    assert fake.equals(fitted.sample(300, seed=1))  # seeded
    assert not fake.equals(fitted.sample(300, seed=2))


def test_conditions(fitted):
    bad = fitted.sample(50, conditions={"status": "bad"}, seed=0)
    assert (bad["status"] == "bad").all() and len(bad) == 50
    with pytest.raises(ConfigError, match="unknown value"):
        fitted.sample(5, conditions={"status": "ugly"})
    with pytest.raises(ConfigError, match="no such column"):
        fitted.sample(5, conditions={"colour": "red"})
    with pytest.raises(ConfigError, match="only discrete"):
        fitted.sample(5, conditions={"score": 1.0})
    with pytest.raises(ConfigError, match="positive"):
        fitted.sample(0)


def test_save_load_round_trip_without_pickle(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["generator.safetensors", "tabular_gan.json"]
    json.loads((tmp_path / "m" / "tabular_gan.json").read_text())
    loaded = TabularGAN.load(tmp_path / "m")
    assert loaded.sample(100, seed=3).equals(fitted.sample(100, seed=3))


def test_training_runs_through_the_trainer_and_resumes_exactly(tmp_path):
    straight = TabularGAN(**{**TINY, "steps": 20}).fit(table(), out=tmp_path / "a")
    assert (tmp_path / "a" / "stats.jsonl").is_file() and (tmp_path / "a" / "checkpoints").is_dir()
    TabularGAN(**{**TINY, "steps": 10}).fit(table(), out=tmp_path / "b")
    resumed = TabularGAN(**{**TINY, "steps": 20}).fit(table(), out=tmp_path / "b", resume="auto")
    for (k, v), w in zip(straight.generator.state_dict().items(), resumed.generator.state_dict().values(),
                         strict=True):
        assert torch.equal(v, w), k


def test_differential_privacy_spends_at_most_the_budget(tmp_path):
    model = TabularGAN(**{**TINY, "steps": 15}, dp=DPConfig(noise_seed=1, epsilon=2.0, delta=1e-5,
                                                             bounds={"income": (0, 20000), "age": (0, 100),
                                                                     "score": (0, 1000)},
                                                             categories={"status": ["bad", "good"]}))
    model.fit(table())
    privacy = model.privacy
    assert 0 < privacy["epsilon"] <= 2.0 + 1e-6 and privacy["delta"] <= 1e-5
    assert any("DP-SGD" in e["what"] for e in privacy["ledger"])
    model.save(tmp_path / "dp")
    assert TabularGAN.load(tmp_path / "dp").privacy["epsilon"] == pytest.approx(privacy["epsilon"])
    # (in DP mode every column may be missing: whether a column has gaps is itself private)
    assert set(model.sample(50, seed=0)["status"].dropna()) <= {"bad", "good"}
    with pytest.raises(ConfigError, match="epsilon"):
        DPConfig(epsilon=0)
    with pytest.raises(ConfigError, match="epsilon"):
        DPConfig(epsilon=-1)


def test_bad_tables_are_refused():
    with pytest.raises(ConfigError, match="empty"):
        TabularGAN(**TINY).fit(pd.DataFrame())
    with pytest.raises(ConfigError, match="single row"):
        TabularGAN(**TINY).fit(table().iloc[:1])
    with pytest.raises(ConfigError, match="gone"):
        TabularGAN(**TINY).fit(table().assign(gone=np.nan))
    mixed = table().assign(mixed=["a" if i % 2 else str(i) for i in range(600)])
    with pytest.raises(ConfigError, match="mixed"):
        TabularGAN(**TINY).fit(mixed)


def test_cli_fit_sample_audit_and_errors(tmp_path, capsys):
    real = table(800)
    real.iloc[:600].to_csv(tmp_path / "train.csv", index=False)
    real.iloc[600:].to_csv(tmp_path / "holdout.csv", index=False)
    assert main(["tabular", "fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m"), "--steps", "20",
                 "--batch-size", "100", "--target", "status", "--no-progress", "--numeric-encoding", "gmm",
                 "--moment-weight", "2.5"]) == 0
    saved = json.loads((tmp_path / "m" / "tabular_gan.json").read_text())["hyperparameters"]
    assert (saved["numeric_encoding"], saved["moment_weight"]) == ("gmm", 2.5)
    assert main(["tabular", "sample", str(tmp_path / "m"), "--n", "200", "--out", str(tmp_path / "s.csv"),
                 "--condition", "status=bad"]) == 0
    synth = pd.read_csv(tmp_path / "s.csv")
    assert len(synth) == 200 and (synth["status"] == "bad").all()
    assert main(["tabular", "sample", str(tmp_path / "m"), "--n", "300", "--out", str(tmp_path / "u.csv")]) == 0
    assert main(["tabular", "sample", str(tmp_path / "m"), "--n", "300", "--out", str(tmp_path / "r.csv"),
                 "--no-match-rates"]) == 0
    matched, raw = pd.read_csv(tmp_path / "u.csv"), pd.read_csv(tmp_path / "r.csv")
    rate = (real.iloc[:600]["member"]).mean()
    assert abs(matched["member"].mean() - rate) <= 1 / 300 < abs(raw["member"].mean() - rate)
    capsys.readouterr()
    assert main(["tabular", "audit", "--real", str(tmp_path / "train.csv"), "--synthetic", str(tmp_path / "u.csv"),
                 "--holdout", str(tmp_path / "holdout.csv"), "--target", "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"fidelity", "utility", "privacy", "verdict"} <= set(report)
    # bad input: one clear message each, exit status 2
    (tmp_path / "empty.csv").write_text("")
    cases = [
        (["tabular", "fit", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "x1")], "empty"),
        (["tabular", "fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "x2"), "--target", "nope"], "nope"),
        (["tabular", "fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "x3"), "--epsilon", "0"], "epsilon"),
        (["tabular", "fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "x4"), "--epsilon", "1",
          "--moment-share", "0.9"], "moment_share"),
        (["tabular", "sample", str(tmp_path / "m"), "--n", "5", "--out", str(tmp_path / "z.csv"), "--condition",
          "status=ugly"], "ugly"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err.lower()


def test_target_share_conditions_that_share_of_training_rows_on_the_target():
    from ganforge.data.tabular import TabularTransformer
    from ganforge.train.tabular_step import TabularStream

    transformer = TabularTransformer(discrete_columns=["status"]).fit(table())
    spans = transformer.condition_spans()  # status and member
    assert [s.column for s in spans] == ["status", "member"]
    rows = torch.from_numpy(transformer.transform(table())).float()
    plain = TabularStream(rows, spans, 500, 0, torch.device("cpu"))
    aimed = TabularStream(rows, spans, 500, 0, torch.device("cpu"), target=0, target_share=0.6)
    share = lambda s: np.mean([(s.next()[1].column == 0).float().mean().item() for _ in range(20)])  # noqa: E731
    assert share(plain) == pytest.approx(0.5, abs=0.03)
    assert share(aimed) == pytest.approx(0.6 + 0.4 * 0.5, abs=0.03)  # its own share plus the uniform one
    real, cond = aimed.next()
    status = real[:, spans[0].start : spans[0].end].argmax(1)
    on_target = cond.column == 0
    assert torch.equal(status[on_target], cond.category[on_target])  # each real row has the asked-for category
    with pytest.raises(ConfigError, match="target"):
        TabularStream(rows, spans, 500, 0, torch.device("cpu"), target=5)
    # training-by-sampling: a category comes with probability in proportion to log(count + 1), every row matches
    counts = np.bincount(plain.categories[0], minlength=2)
    batches = [plain.next() for _ in range(40)]
    asked = torch.cat([c.category[c.column == 0] for _, c in batches]).numpy()
    assert np.bincount(asked, minlength=2) / len(asked) == pytest.approx(np.log(counts + 1) / np.log(counts + 1).sum(),
                                                                         abs=0.03)
    for real, cond in batches[:5]:
        for c, span in enumerate(spans):
            on = cond.column == c
            assert torch.equal(real[on, span.start : span.end].argmax(1), cond.category[on])


def test_target_is_sampled_at_its_real_rate_and_saved(tmp_path):
    real = table(n=2000, seed=3)
    model = TabularGAN(**{**TINY, "steps": 5}).fit(real, target="status")
    assert model.target == "status"
    fake = model.sample(4000, seed=0)
    rate = (real["status"] == "bad").mean()
    assert abs((fake["status"] == "bad").mean() - rate) <= 1 / 4000  # allotted, not drawn: no sampling noise
    # an untrained generator decides the category itself: without a target its rate is far from the real one
    free = TabularGAN(**{**TINY, "steps": 5}).fit(real).sample(4000, seed=0, match_rates=False)
    assert abs((free["status"] == "bad").mean() - rate) > 0.02
    model.save(tmp_path / "m")
    assert TabularGAN.load(tmp_path / "m").target == "status"
    assert TabularGAN.load(tmp_path / "m").sample(300, seed=1).equals(model.sample(300, seed=1))
    numeric = TabularGAN(**{**TINY, "steps": 2}).fit(real, target="score")
    assert numeric.target is None and any("not discrete" in n for n in numeric.notes)
    with pytest.raises(ConfigError, match="not a column"):
        TabularGAN(**TINY).fit(real, target="colour")
    with pytest.raises(ConfigError, match="target_share"):
        TabularGAN(target_share=1.5)


def test_moment_loss_is_the_distance_between_means_and_covariances():
    from ganforge.train.tabular_step import TabularStep

    rng = np.random.default_rng(0)
    real = torch.as_tensor(rng.normal(size=(400, 3)))
    assert TabularStep._moment_loss(real, real).item() == 0.0
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=real.dtype)
    assert TabularStep._moment_loss(real, real + shift).item() == pytest.approx(1 + 4 + 0.25)  # same covariance
    cov = np.cov(real.numpy().T, bias=True)
    assert TabularStep._moment_loss(real, 2 * real).item() == pytest.approx(
        float(np.sum(real.numpy().mean(0) ** 2) + np.sum((3 * cov) ** 2)))


def test_moment_weight_makes_the_generator_match_a_correlation(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=800)
    df = pd.DataFrame({"a": x, "b": x + 0.3 * rng.normal(size=800)})  # correlation 0.96
    settings = {**TINY, "steps": 80, "log_every": 5, "numeric_encoding": "quantile", "lr_g": 1e-3}
    model = TabularGAN(**settings, moment_weight=10.0).fit(df, out=tmp_path / "run")
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    moment = [s["Loss/G/moment"] for s in stats if "Loss/G/moment" in s]
    assert len(moment) >= 10 and np.mean(moment[-3:]) < 0.5 * np.mean(moment[:3])
    with_moments = model.sample(2000, seed=0).corr().loc["a", "b"]
    without = TabularGAN(**settings, moment_weight=0.0).fit(df).sample(2000, seed=0).corr().loc["a", "b"]
    assert with_moments > without + 0.1 and with_moments > 0.6
    assert TabularGAN.load(model.save(tmp_path / "m")).moment_weight == 10.0
    with pytest.raises(ConfigError, match="moment_share"):
        TabularGAN(**settings, moment_weight=1.0, dp=DPConfig(epsilon=1.0, moment_share=0.0))
    assert TabularGAN(dp=DPConfig(epsilon=1.0, moment_share=0.0)).moment_weight == 0.0
    assert TabularGAN(dp=DPConfig(epsilon=1.0)).moment_weight == 1.0
    with pytest.raises(ConfigError, match="moment_share"):
        DPConfig(epsilon=1.0, preprocessing_share=0.5, moment_share=0.5)


def test_differential_privacy_conditions_on_the_target_at_released_frequencies():
    real = table(n=2000, seed=4)
    rate = (real["status"] == "bad").mean()
    declared = DPConfig(noise_seed=1, epsilon=20.0, delta=1e-5,
                        bounds={"income": (0, 20000), "age": (0, 100), "score": (0, 1000)},
                        categories={"status": ["bad", "good"]})
    model = TabularGAN(**{**TINY, "steps": 4}, dp=declared).fit(real, target="status")
    assert model.target == "status" and [s.column for s in model._cond_spans] == ["status"]
    entry = next(e for e in model.privacy["ledger"] if e["what"] == "target frequencies")
    assert entry["epsilon"] == pytest.approx(0.05 * 20.0)  # declared categories: a histogram bought for it
    assert model.privacy["epsilon"] <= 20.0 + 1e-6
    released = model.condition_frequencies[0][0]
    assert released != rate and released == pytest.approx(rate, abs=0.01)  # Laplace noise of scale 1 on counts
    fake = model.sample(3000, seed=0)
    assert abs((fake["status"] == "bad").mean() - released) <= 1 / 3000  # sampled at the released rate
    # categories released with DP: their noisy counts are reused (post-processing), nothing more is spent
    estimated = DPConfig(noise_seed=1, epsilon=20.0, delta=1e-5, bounds=declared.bounds)
    model = TabularGAN(**{**TINY, "steps": 4}, dp=estimated).fit(real, target="status")
    assert model.target == "status"
    assert not any(e["what"] == "target frequencies" for e in model.privacy["ledger"])
    counts = next(c for c in model.transformer.columns if c.name == "status").noisy_counts
    bad = model.transformer.category_values("status").index("bad")
    assert model.condition_frequencies[0][bad] == pytest.approx(counts[bad] / sum(counts), abs=1e-5)


def test_dp_step_draws_fake_conditions_of_a_fixed_count():
    from ganforge.train import tabular_step

    calls = []
    original = tabular_step.TabularStep.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        draw = self.fake_conditions
        self.fake_conditions = lambda m: (calls.append(m), draw(m))[1]

    real = table(n=500, seed=5)
    dp = DPConfig(noise_seed=1, epsilon=5.0, delta=1e-5,
                  bounds={"income": (0, 20000), "age": (0, 100), "score": (0, 1000)},
                  categories={"status": ["bad", "good"]})
    try:
        tabular_step.TabularStep.__init__ = spy
        TabularGAN(**{**TINY, "steps": 6}, dp=dp).fit(real, target="status")
    finally:
        tabular_step.TabularStep.__init__ = original
    assert calls == [100] * 6  # the batch size, whatever the Poisson sample's size (about 100, never fixed)


def test_select_matching_hits_every_rate_and_keeps_how_columns_relate():
    from ganforge.apps.tabular import _largest_remainder, select_matching

    rng = np.random.default_rng(0)
    pool = 6000
    a = (rng.random(pool) < 0.3).astype(int)  # the "generator" makes a=1 30% of the time; the real rate is 50%
    b = np.where(rng.random(pool) < np.where(a == 1, 0.8, 0.2), 1, 0)  # b follows a
    c = rng.integers(0, 3, pool)
    codes = np.stack([a, b, c], 1)
    rates = [np.array([0.5, 0.5]), np.array([0.45, 0.55]), np.array([0.2, 0.3, 0.5])]
    keep = select_matching(codes, rates, 2000, np.random.default_rng(1))
    assert len(keep) == len(set(keep)) == 2000
    for column, rate in enumerate(rates):
        counts = np.bincount(codes[keep, column], minlength=len(rate))
        assert np.abs(counts - _largest_remainder(rate, 2000)).max() <= 1
    # raking changes the rates with the smallest change to the joint: b given a is kept (0.8 and 0.2 in the pool)
    chosen = codes[keep]
    assert chosen[chosen[:, 0] == 1, 1].mean() == pytest.approx(0.8, abs=0.06)
    assert chosen[chosen[:, 0] == 0, 1].mean() == pytest.approx(0.2, abs=0.06)
    # an exact column is never traded off: its counts are the largest-remainder counts from the start
    keep = select_matching(codes, rates, 999, np.random.default_rng(2), exact=2)
    assert (np.bincount(codes[keep, 2], minlength=3) == _largest_remainder(rates[2], 999)).all()
    with pytest.raises(ConfigError, match="pool"):
        select_matching(codes, rates, pool + 1, rng)


def test_sample_matches_every_category_rate_and_the_missing_rate(tmp_path):
    real = table(n=1500, seed=5)
    real["home"] = pd.Series(np.random.default_rng(5).choice(["own", "rent", "other"], 1500, p=[.5, .35, .15]),
                             dtype=object)
    real.loc[real.index[:150], "home"] = None  # 10% missing
    model = TabularGAN(**{**TINY, "steps": 5}).fit(real)  # barely trained: its own rates are off
    codes = model.transformer.category_codes(model.transformer.transform(real))
    assert (codes["home"][:150] == 3).all()  # missing is the code after the categories
    assert list(codes["status"]) == [model.transformer.category_values("status").index(v) for v in real["status"]]

    def off(fake):
        return max(abs(fake[c].astype(str).value_counts(normalize=True)
                       .reindex(real[c].astype(str).unique(), fill_value=0)
                       - real[c].astype(str).value_counts(normalize=True)).max() for c in ("status", "member", "home"))

    assert off(model.sample(1500, seed=0, match_rates=False)) > 0.05
    matched = model.sample(1500, seed=0)
    assert off(matched) <= 1 / 1500 + 1e-9  # every category and the missing share, exactly
    assert matched.equals(model.sample(1500, seed=0))  # seeded
    loaded = TabularGAN.load(model.save(tmp_path / "m"))
    assert loaded.category_rates == model.category_rates
    assert loaded.sample(200, seed=4).equals(model.sample(200, seed=4))


def test_dp_sample_matches_only_released_counts():
    real = table(n=2000, seed=6)
    model = TabularGAN(**{**TINY, "steps": 3}, dp=DPConfig(noise_seed=1, epsilon=20.0, delta=1e-5, bounds={
        "income": (0, 20000), "age": (0, 100), "score": (0, 1000)})).fit(real)
    # no exact counts (they would leak around the guarantee): only rates read off the released moments, for the
    # column whose categories were not counted (a boolean's are public)
    assert [c for c, _ in model.category_rates] == ["member"]
    info = next(c for c in model.transformer.columns if c.name == "status")
    released = np.maximum(info.noisy_counts, 0) / np.maximum(info.noisy_counts, 0).sum()
    assert abs(released[info.categories.index("bad")] - (real["status"] == "bad").mean()) > 1e-4  # noisy
    fake = model.sample(2000, seed=0)
    present = fake["status"].dropna()
    assert (present == "bad").mean() == pytest.approx(released[info.categories.index("bad")], abs=2 / len(present))
    # a boolean's categories are public and were not counted: it is matched to the moments' noisy rate
    member = dict(model.category_rates)["member"]
    true_rate = float(real["member"].mean())
    assert abs(member[model.transformer.category_values("member").index(True)] - true_rate) > 1e-4  # noisy
    assert (fake["member"] == True).mean() == pytest.approx(  # noqa: E712
        member[model.transformer.category_values("member").index(True)], abs=2 / len(fake))


def test_dp_generator_matches_moments_released_with_their_share_of_the_budget(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=3000)
    df = pd.DataFrame({"a": x, "b": x + 0.3 * rng.normal(size=3000)})  # correlation 0.96
    dp = DPConfig(noise_seed=1, epsilon=20.0, delta=1e-5, bounds={"a": (-4, 4), "b": (-4, 4)})
    settings = {**TINY, "steps": 60, "log_every": 5, "lr_g": 1e-3}
    model = TabularGAN(**settings, dp=dp, moment_weight=10.0).fit(df, out=tmp_path / "run")
    entry = next(e for e in model.privacy["ledger"] if e["what"].startswith("mean and covariance"))
    assert entry["epsilon"] == pytest.approx(0.25 * 20.0) and entry["delta"] == pytest.approx(1e-5 / 4)
    critic = next(e for e in model.privacy["ledger"] if e["what"].startswith("critic"))
    assert critic["epsilon"] <= 0.75 * 20.0 + 1e-6 and critic["delta"] == pytest.approx(1e-5 / 4)
    assert model.privacy["epsilon"] <= 20.0 + 1e-6 and model.privacy["delta"] <= 1e-5 * (1 + 1e-9)
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    moment = [s["Loss/G/moment"] for s in stats if "Loss/G/moment" in s]
    assert len(moment) >= 5 and np.mean(moment[-3:]) < 0.5 * np.mean(moment[:3])

    def scalar_correlation(model):  # of the two columns' encoded scalars, in 2,000 generated rows
        from ganforge.nets.tabular import activate

        values = [s.start for s in model.transformer.spans if s.role == "value"]
        with torch.no_grad():
            z = torch.randn(2000, model.generator.z_dim, generator=torch.Generator().manual_seed(0))
            rows = activate(model.generator(z, None), model.transformer.spans, hard=True)
        return np.corrcoef(rows[:, values].numpy().T)[0, 1]

    off = DPConfig(noise_seed=1, epsilon=20.0, delta=1e-5, bounds=dp.bounds, moment_share=0.0)
    without = TabularGAN(**settings, dp=off).fit(df)
    assert scalar_correlation(model) > 0.8 and scalar_correlation(without) < 0.5


def test_dp_noise_is_secret_kept_for_resume_and_never_saved(tmp_path):
    real = table(n=1500, seed=7)
    settings = {**TINY, "steps": 4, "checkpoint_every": 2}

    def noisy_counts(model):
        return next(c for c in model.transformer.columns if c.name == "status").noisy_counts

    first = TabularGAN(**settings, dp=DPConfig(epsilon=5.0, delta=1e-5)).fit(real, out=tmp_path / "a")
    second = TabularGAN(**settings, dp=DPConfig(epsilon=5.0, delta=1e-5)).fit(real)
    assert noisy_counts(first) != noisy_counts(second)  # same public seed 0, different secret noise
    fixed = [TabularGAN(**settings, dp=DPConfig(epsilon=5.0, delta=1e-5, noise_seed=42)).fit(real) for _ in range(2)]
    assert noisy_counts(fixed[0]) == noisy_counts(fixed[1])  # a given noise_seed reproduces (experiments only)
    secret = json.loads((tmp_path / "a" / "config.json").read_text())["dp_noise_seed"]
    saved = (first.save(tmp_path / "m") / "tabular_gan.json").read_text()
    assert "noise_seed" not in saved and str(secret) not in saved
    # a resumed fit reads the secret back: the same released statistics, nothing spent twice
    resumed = TabularGAN(**{**settings, "steps": 6}, dp=DPConfig(epsilon=5.0, delta=1e-5)).fit(
        real, out=tmp_path / "a", resume="auto")
    assert noisy_counts(resumed) == noisy_counts(first)
    assert resumed.transformer.to_dict() == first.transformer.to_dict()


def test_cli_audit_leaves_out_the_models_identifiers(tmp_path, capsys):
    """`tabular audit --model` leaves out the columns the model treated as identifiers (never learned)."""
    real = table(400).assign(patient_id=np.arange(400) // 2)  # two rows per patient: 50% distinct
    real.iloc[:300].to_csv(tmp_path / "train.csv", index=False)
    real.iloc[300:].to_csv(tmp_path / "holdout.csv", index=False)
    model = TabularGAN(**TINY).fit(real.iloc[:300])
    assert any(c.kind == "identifier" and c.name == "patient_id" for c in model.transformer.columns)
    model.save(tmp_path / "m")
    model.sample(300, seed=0).to_csv(tmp_path / "s.csv", index=False)
    base = ["tabular", "audit", "--real", str(tmp_path / "train.csv"), "--synthetic", str(tmp_path / "s.csv"),
            "--holdout", str(tmp_path / "holdout.csv"), "--json"]
    capsys.readouterr()
    assert main([*base, "--model", str(tmp_path / "m")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"]["identifier_columns"] == {"patient_id": "named in identifiers"}
    assert "patient_id" not in report["fidelity"]["columns"]
