"""`ganforge eval` and evaluation during training, on 2-D mixtures (no judge needed) and digits."""

import json

import numpy as np
import pytest

from ganforge.cli import main
from ganforge.metrics.protocol import read_scores

TINY_MLP = ["--model", "mlp", "--model-opt", "z_dim=4", "--model-opt", "hidden_g=[32, 32]",
            "--model-opt", "hidden_d=[32, 32]", "--threads", "1", "--no-progress"]


def test_ring8_train_eval_and_metrics_file(tmp_path, capsys):
    out = tmp_path / "ring"
    assert main(["train", "--data", "ring8", "--steps", "40", "--batch-size", "64", "--out", str(out),
                 "--eval-every", "20", "--eval-n", "500", "--eval-metrics", "fd,modes", *TINY_MLP]) == 0
    records = read_scores(out / "metrics.jsonl")
    assert {r["step"] for r in records} == {20, 40}
    assert {r["metric"] for r in records} == {"fd_identity", "modes_captured", "modes_visited", "high_quality",
                                              "kl_modes"}
    assert all(r["protocol"]["n_fake"] == 500 and r["protocol"]["reference"] == "ring8:test" for r in records)
    # checkpoints are ranked by the evaluated metric (fd_identity, the first one), not the pixel SWD
    fd = {r["step"]: r["value"] for r in records if r["metric"] == "fd_identity"}
    for step, value in fd.items():
        meta = json.loads((out / "checkpoints" / f"step_{step:06d}" / "meta.json").read_text())
        assert meta["score"] == pytest.approx(value)
    # the doctor's probe logs the SWD between two real sets of its size (256 points): the floor a perfect G would score
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    floors = {r["Probe/swd_floor"] for r in stats if "Probe/swd" in r}
    assert len(floors) == 1 and 0.03 < floors.pop() < 0.3 < stats[0]["Probe/swd"]
    capsys.readouterr()
    assert main(["eval", str(out), "--n", "1000", "--metrics", "fd,kid,prdc,modes", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    names = {r["metric"] for r in printed}
    assert {"fd_identity", "kid_identity", "precision_identity", "recall_identity", "density_identity",
            "coverage_identity", "modes_captured"} <= names
    assert len(read_scores(out / "metrics.jsonl")) == len(records) + len(printed)
    assert main(["eval", str(out), "--n", "300", "--metrics", "fd", "--checkpoint", "20"]) == 0
    table = capsys.readouterr().out
    assert "step 20" in table and "fd_identity" in table and "300 fake vs 300 real from ring8:test" in table


def test_eval_files_real_vs_real_and_collapse(tmp_path, capsys):
    """Real test points scored as 'fake' match the reference; a collapsed set does not."""
    from ganforge.data import load

    real = load("ring8", split="train").values.numpy()[:2000]
    np.savez(tmp_path / "real.npz", x=real)
    collapsed = np.repeat(real[:1], 2000, axis=0) + np.random.default_rng(0).normal(0, 0.02, (2000, 2))
    np.savez(tmp_path / "collapsed.npz", x=collapsed.astype(np.float32))
    results = {}
    for name in ("real", "collapsed"):
        assert main(["eval", "--real", "ring8", "--fake", str(tmp_path / f"{name}.npz"), "--n", "2000", "--json",
                     "--metrics", "fd,prdc,modes"]) == 0
        results[name] = {r["metric"]: r["value"] for r in json.loads(capsys.readouterr().out)}
    assert results["real"]["modes_captured"] == 8 and results["collapsed"]["modes_captured"] == 1
    assert results["real"]["fd_identity"] < 0.01 < results["collapsed"]["fd_identity"]
    assert results["real"]["recall_identity"] > 0.9 > 0.2 > results["collapsed"]["recall_identity"]


def test_eval_errors(tmp_path, capsys):
    assert main(["eval"]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
    assert main(["eval", "--real", "ring8", "--fake", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", z=np.zeros(3))
    assert main(["eval", "--real", "ring8", "--fake", str(tmp_path / "bad.npz")]) == 2
    assert "expected an array 'x'" in capsys.readouterr().err
    np.savez(tmp_path / "ok.npz", x=np.zeros((10, 2), dtype=np.float32))
    assert main(["eval", "--real", "ring8", "--fake", str(tmp_path / "ok.npz"), "--metrics", "bogus"]) == 2
    assert "unknown metric" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_conditional_eval_with_judge(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--conditional", "--steps", "30", "--batch-size", "32",
                 "--out", str(out), "--model-opt", "ngf=8", "--model-opt", "ndf=8", "--threads", "1",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--n", "297", "--json"]) == 0
    scores = {r["metric"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"fd_digits_cnn", "kid_digits_cnn", "judge_accuracy_digits_cnn", "classes_covered_digits_cnn"} <= set(scores)
    stamp = scores["fd_digits_cnn"]["protocol"]
    assert stamp["reference"] == "digits:test" and len(stamp["extractor_hash"]) == 64
