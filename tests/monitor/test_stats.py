import json

import torch

from ganforge.monitor import Collector, read_stats, report


def test_report_is_noop_without_collector():
    report("x", 1.0)  # must not raise


def test_collector_averages_between_flushes(tmp_path):
    path = tmp_path / "stats.jsonl"
    with Collector(path) as c:
        report("Loss/D", 1.0)
        report("Loss/D", torch.tensor(3.0))
        report("D/real", torch.tensor([0.0, 1.0]))
        first = c.flush(10)
        report("Loss/D", 5.0)
        c.flush(20)
        assert c.flush(30) == {}  # nothing new: no line written
    assert first == {"Loss/D": 2.0, "D/real": 0.5}
    records = list(read_stats(path))
    assert [r["step"] for r in records] == [10, 20]
    assert records[1]["Loss/D"] == 5.0
    assert all("time" in r for r in records)


def test_nonfinite_values_round_trip(tmp_path):
    path = tmp_path / "stats.jsonl"
    with Collector(path) as c:
        report("Loss/G", float("nan"))
        c.flush(1)
    line = path.read_text()
    json.loads(line)  # still strict JSON
    (rec,) = read_stats(path)
    assert rec["Loss/G"] != rec["Loss/G"]


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 1, "time": 0.1, "a": 1}\n{"step": 2, "ti')
    assert [r["step"] for r in read_stats(path)] == [1]
