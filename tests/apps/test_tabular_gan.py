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
    model = TabularGAN(**{**TINY, "steps": 15}, dp=DPConfig(epsilon=2.0, delta=1e-5,
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
                 "--batch-size", "100", "--target", "status", "--no-progress"]) == 0
    assert main(["tabular", "sample", str(tmp_path / "m"), "--n", "200", "--out", str(tmp_path / "s.csv"),
                 "--condition", "status=bad"]) == 0
    synth = pd.read_csv(tmp_path / "s.csv")
    assert len(synth) == 200 and (synth["status"] == "bad").all()
    assert main(["tabular", "sample", str(tmp_path / "m"), "--n", "300", "--out", str(tmp_path / "u.csv")]) == 0
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
        (["tabular", "sample", str(tmp_path / "m"), "--n", "5", "--out", str(tmp_path / "z.csv"), "--condition",
          "status=ugly"], "ugly"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err.lower()
