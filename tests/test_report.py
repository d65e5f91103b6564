"""The HTML run report: pure-Python checks of its content, and one check in a real headless browser.

The browser test needs ``selenium``, Chromium and chromedriver (Debian: ``apt-get install
chromium chromium-driver``); it is skipped, with the reason, when any of them is missing.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.report import build_report, write_report
from ganforge.report.html import downsample

FINDING_MESSAGE = "D wins every batch: the generator's samples have collapsed onto a few modes"
EVIL = "<script>alert('x')</script>"

PROTOCOL = {"extractor": "identity", "extractor_hash": "", "n_real": 1000, "n_fake": 1000,
            "reference": "ring8:train", "resize": "none", "seed": 0, "ganforge_version": "0.1.0"}


def _write_jsonl(path: Path, records: list[Any], torn: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + torn, encoding="utf-8")


def _doctor_records(last_step: int) -> list[dict[str, Any]]:
    return [
        {"kind": "finding", "code": "mode_collapse", "severity": "warning", "step": last_step // 3,
         "last_step": last_step // 2, "message": FINDING_MESSAGE,
         "evidence": {"Probe/diversity": 0.08, "D/acc_fake": 1.0},
         "advice": "try --pack 2 or --minibatch-std", "time": 1.5},
        {"kind": "finding", "code": "gradient_explosion", "severity": "error", "step": last_step,
         "last_step": last_step, "message": "Grad/D jumped to inf", "evidence": {"Grad/D": "inf"},
         "advice": "lower --lr-d", "time": 2.0},
        {"kind": "finding", "code": "note", "severity": "info", "step": 10, "last_step": 10,
         "message": "warming up", "evidence": {}, "advice": "", "time": 0.5},
        {"kind": "action", "step": last_step // 2, "time": 1.8, "action": "enable_minibatch_std",
         "detail": {"minibatch_std": True}, "because": "mode_collapse"},
    ]


def _metric_records() -> list[dict[str, Any]]:
    other = dict(PROTOCOL, n_real=500, n_fake=500)
    return [
        {"metric": "fd_identity", "value": 0.9, "step": 20, "checkpoint": "checkpoints/step_000020",
         "protocol": PROTOCOL, "time": "2024-01-01T00:00:00"},
        {"metric": "fd_identity", "value": 0.4, "step": 40, "checkpoint": "checkpoints/step_000040",
         "protocol": PROTOCOL, "time": "2024-01-01T00:01:00"},
        {"metric": "fd_identity", "value": "nan", "step": 60, "checkpoint": None, "protocol": PROTOCOL,
         "time": "2024-01-01T00:02:00"},
        {"metric": "fd_identity", "value": 0.7, "step": 40, "checkpoint": None, "protocol": other,
         "time": "2024-01-01T00:03:00"},
        {"metric": "kid_identity", "value": 0.01, "step": None, "checkpoint": "checkpoints/step_000040",
         "protocol": PROTOCOL, "extra": {"std": 0.002}, "time": "2024-01-01T00:04:00"},
    ]


def _png(path: Path, value: int, size: int = 32) -> None:
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def make_fixture_run(root: Path, n_steps: int = 60, with_nonfinite: bool = True) -> Path:
    """A run directory written by hand: every file the report reads, some of them odd."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"ganforge_version": "0.1.0", "device": "cpu", "data_source": "toy ring of 8 Gaussians",
              "total_steps": 100, "spec": {"shape": [2], "n_classes": 0, "kind": "points"},
              "config": {"model": "mlp", "data": "ring8", "loss": "non_saturating", "lr_g": 2e-4, "lr_d": 2e-4,
                         "betas": [0.5, 0.999], "batch_size": 64, "steps": 100, "seed": 0}}
    (root / "config.json").write_text(json.dumps(config), encoding="utf-8")
    stats = []
    for step in range(1, n_steps + 1):
        stats.append({"step": step, "time": step * 0.01, "Loss/D": 1.3 - step / 100, "Loss/G": 0.7 + step / 100,
                      "D/real": 0.6, "D/fake": 0.4, "D/acc_real": 0.8, "D/acc_fake": 0.7, "D/margin": 0.2,
                      "Grad/D": 0.5 + step, "Grad/G": 0.1 * step, "Probe/diversity": 0.9, "Custom/thing": step})
    if with_nonfinite:
        stats[10]["Loss/D"] = "nan"
        stats[11]["Loss/G"] = "inf"
        stats[12]["Grad/D"] = "-inf"
        stats[13]["Grad/G"] = 0.0  # not drawable on a log scale
    _write_jsonl(root / "stats.jsonl", stats, torn='{"step": 61, "Loss/D": 0.')
    (root / "samples").mkdir(exist_ok=True)
    for step in (20, 40, 60):
        _png(root / "samples" / f"step_{step:06d}.png", step * 4)
    _write_jsonl(root / "doctor.jsonl", _doctor_records(n_steps))
    _write_jsonl(root / "metrics.jsonl", _metric_records())
    checkpoint = root / "checkpoints" / "step_000040"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "meta.json").write_text(json.dumps({"step": 40, "score": 0.25}), encoding="utf-8")
    return root


@pytest.fixture
def fixture_run(tmp_path: Path) -> Path:
    return make_fixture_run(tmp_path / "fixture_run")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) training run, plus a doctor.jsonl and metrics.jsonl written as the doctor and eval would."""
    from ganforge.train import RunConfig
    from ganforge.train.run import train

    out = tmp_path_factory.mktemp("report") / "ring"
    config = RunConfig(model="mlp", data="ring8", steps=60, log_every=10, sample_every=20, progress=False,
                       threads=1, doctor=False, report=False)
    train(config, out=out)
    _write_jsonl(out / "doctor.jsonl", _doctor_records(60))
    _write_jsonl(out / "metrics.jsonl", _metric_records())
    return out


# ---------------------------------------------------------------------------------------------
# pure Python


def test_report_of_a_real_run_has_every_section(trained_run: Path) -> None:
    text = build_report(trained_run)
    for section in ("samples", "curves", "doctor", "metrics", "checkpoints", "config"):
        assert f'<section id="{section}">' in text
    assert "<title>ring — ganforge report</title>" in text
    assert text.count("<svg") >= 4
    assert text.count('src="data:image/png;base64,') == 3  # samples at steps 20, 40 and 60
    assert FINDING_MESSAGE.replace("'", "&#x27;") in text
    assert "try --pack 2 or --minibatch-std" in text
    assert "enable_minibatch_std" in text
    assert '<g class="finding">' in text and '<g class="action">' in text  # on the chart timelines
    assert "60 / 60" in text  # steps done / total


def test_write_report_is_atomic_and_defaults_into_the_run(fixture_run: Path, tmp_path: Path) -> None:
    path = write_report(fixture_run)
    assert path == fixture_run / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in fixture_run.iterdir() if p.name.endswith(".tmp")]
    other = write_report(fixture_run, tmp_path / "elsewhere.html")
    assert other.is_file()


def test_text_from_the_run_is_escaped(fixture_run: Path) -> None:
    records = _doctor_records(60)
    records[0]["message"] = EVIL
    records[0]["evidence"] = {EVIL: 1.0}
    records[0]["advice"] = EVIL
    records[3]["detail"] = {"x": EVIL}
    _write_jsonl(fixture_run / "doctor.jsonl", records)
    config = json.loads((fixture_run / "config.json").read_text())
    config["data_source"] = EVIL
    (fixture_run / "config.json").write_text(json.dumps(config))
    with open(fixture_run / "stats.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 70, EVIL: 1.0}) + "\n")  # a stat name lands in legends and chart data
    text = build_report(fixture_run)
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert" in text
    assert len(re.findall(r"<script\b", text)) == text.count("</script>")  # only our own script elements


def test_only_config_json_gives_a_report_that_says_no_data_yet(tmp_path: Path) -> None:
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"model": "dcgan", "data": "digits", "steps": 10},
                                                 "total_steps": 10}))
    text = build_report(run)
    assert text.count("no data yet") >= 5
    assert "0 / 10" in text
    write_report(run)


def test_empty_missing_and_damaged_run_directories_do_not_raise(tmp_path: Path) -> None:
    assert "no data yet" in build_report(tmp_path / "does-not-exist")
    with pytest.raises(GanforgeError, match="not a directory"):
        write_report(tmp_path / "does-not-exist")
    odd = tmp_path / "odd"
    (odd / "samples").mkdir(parents=True)
    (odd / "config.json").write_text("[1, 2")  # torn
    (odd / "stats.jsonl").write_text('7\n"text"\n{"step": "x", "Loss/D": 1}\n{"step": 3, "Loss/D": [1]}\n'
                                     '{"step": 4, "Loss/D": null, "Loss/G": true}\n')
    (odd / "samples" / "step_000001.png").write_bytes(b"not a png")
    (odd / "samples" / "step_000002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # truncated
    (odd / "doctor.jsonl").write_text('{"kind": "finding", "evidence": [1, 2], "step": "soon"}\n'
                                      '{"kind": "action"}\n{"kind": "finding", "severity": {"a": 1}}\n')
    (odd / "metrics.jsonl").write_text('{"metric": "fd", "value": "high", "protocol": 3, "step": -1}\n'
                                       '{"metric": 5}\n{"metric": "fd", "value": 1.0, "step": 2, "extra": [1]}\n')
    (odd / "checkpoints" / "step_000005").mkdir(parents=True)  # no meta.json: incomplete
    (odd / "checkpoints" / ".tmp-step_000006-1").mkdir()
    text = build_report(odd)
    assert "could not draw" not in text  # every oddity is handled, not caught by the last-resort guard
    assert "unreadable sample file(s) at step 1, 2" in text
    assert "incomplete (no meta.json)" in text
    write_report(odd)


def test_non_finite_values_are_gaps_and_flagged(fixture_run: Path) -> None:
    text = build_report(fixture_run)
    assert "D loss: 1 non-finite value(s) (nan ×1), first at step 11" in text
    assert "G loss: 1 non-finite value(s) (inf ×1), first at step 12" in text
    assert "‖∇D‖: 1 non-finite value(s) (-inf ×1), first at step 13" in text
    assert "‖∇G‖: 1 value(s) ≤ 0 not shown on the log scale" in text
    for d in re.findall(r'<path d="([^"]*)"', text):
        assert re.fullmatch(r"([ML]-?[\d.]+,-?[\d.]+|[hlvz\d.,\- ]+)*", d), d
        assert "nan" not in d.lower() and "inf" not in d.lower()
    # the gap: the D-loss line is broken into two pieces around step 11
    loss_chart = text[text.index("Losses"):text.index("D(x) and D(G(z))")]
    first_path = re.search(r'<path d="([^"]*)" fill="none"', loss_chart).group(1)
    assert first_path.count("M") == 2


def test_the_report_is_self_contained(fixture_run: Path) -> None:
    text = build_report(fixture_run)
    assert not re.search(r"https?://", text)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)  # only embedded data and in-page links
    assert "@import" not in text and "url(" not in text


def test_metrics_are_grouped_by_protocol(fixture_run: Path) -> None:
    text = build_report(fixture_run)
    assert "2 measurement protocols: scores are comparable only within one protocol" in text
    assert "<b>Protocol 1:</b> identity, 1000 fake vs 1000 real from ring8:train" in text
    assert "<b>Protocol 2:</b> identity, 500 fake vs 500 real from ring8:train" in text
    assert "fd_identity, protocol 1" in text and "fd_identity, protocol 2" in text  # separate series, labelled
    assert "the lines are not comparable with each other" in text
    assert "± 0.002" in text  # KID's std
    assert 'class="num flag">nan<' in text


def test_wall_time_adds_up_the_segments_of_a_resumed_run(tmp_path: Path) -> None:
    run = tmp_path / "resumed"
    run.mkdir()
    # the stats clock restarts at 0 in the process that resumes
    _write_jsonl(run / "stats.jsonl", [{"step": s, "time": t, "Loss/D": 1.0}
                                       for s, t in ((10, 1.0), (20, 2.0), (30, 3.0), (40, 1.0), (50, 2.0))])
    assert "<span>wall time</span><b>5.0 s</b>" in build_report(run)


def test_a_loss_that_starts_far_above_where_it_settles_gets_a_log_axis(tmp_path: Path) -> None:
    run = tmp_path / "spiky"
    run.mkdir()
    _write_jsonl(run / "stats.jsonl", [{"step": s, "Loss/D": 500.0 if s == 1 else 1.0 + s / 100, "Loss/G": 0.7}
                                       for s in range(1, 30)])
    assert "Losses (log scale: the values span a wide range)" in build_report(run)


def test_protocol_grouping_matches_the_metrics_protocol_key() -> None:
    from dataclasses import fields

    from ganforge.metrics.protocol import Protocol
    from ganforge.report.html import _PROTOCOL_FIELDS

    protocol = Protocol(**{f.name: PROTOCOL[f.name] for f in fields(Protocol)})
    assert protocol.key() == tuple(PROTOCOL[name] for name in _PROTOCOL_FIELDS)


def test_downsample_keeps_spikes_and_gaps() -> None:
    steps = np.arange(100_000, dtype=np.float64)
    values = np.sin(steps / 1000)
    values[54_321] = 50.0
    values[77_777] = math.nan
    x, y = downsample(steps, values, 2000)
    assert len(x) <= 2 * 2000 and len(x) < 3000
    assert 54_321 in x and 77_777 in x
    assert np.nanmax(y) == 50.0 and np.isnan(y).sum() == 1
    assert x[0] == 0 and x[-1] == 99_999 and np.all(np.diff(x) > 0)


def test_long_runs_are_downsampled_in_the_svg(tmp_path: Path) -> None:
    run = make_fixture_run(tmp_path / "long", n_steps=10_000, with_nonfinite=False)
    text = build_report(run)
    loss_chart = text[text.index("Losses"):text.index("D(x) and D(G(z))")]
    first_path = re.search(r'<path d="([^"]*)" fill="none"', loss_chart).group(1)
    assert first_path.count("L") + first_path.count("M") <= 2001


def test_many_sample_grids_are_thinned_to_about_eight_plus_the_last(tmp_path: Path) -> None:
    run = tmp_path / "many"
    (run / "samples").mkdir(parents=True)
    for step in range(10, 510, 10):
        _png(run / "samples" / f"step_{step:06d}.png", step % 255, size=8)
    text = build_report(run)
    captions = re.findall(r'data-caption="step (\d+)"', text)
    assert 8 <= len(captions) <= 9
    assert captions[0] == "10" and captions[-1] == "500"
    assert "of 50 grids" in text


# ---------------------------------------------------------------------------------------------
# in a real browser


def _browser() -> Any:
    """A headless Chromium driven by Selenium, or pytest.skip saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as e:
        pytest.skip(f"headless chromium did not start: {str(e).splitlines()[0]}")


def test_report_in_a_headless_browser(trained_run: Path) -> None:
    driver = _browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page = write_report(trained_run)
    try:
        driver.get(page.resolve().as_uri())
        assert driver.title == "ring — ganforge report"

        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) >= 4
        for svg in charts:
            assert svg.size["width"] > 100 and svg.size["height"] > 50

        images = driver.find_elements(By.CSS_SELECTOR, ".thumb img.sample")
        assert len(images) == 3
        for img in images:
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        viewer = driver.find_element(By.ID, "sample-main")  # the slider view, filled in by the page's script
        assert viewer.is_displayed() and driver.execute_script("return arguments[0].naturalWidth", viewer) > 0
        assert driver.find_element(By.ID, "sample-caption").text == "step 60"

        doctor = driver.find_element(By.ID, "doctor").text
        assert FINDING_MESSAGE in doctor and "try --pack 2 or --minibatch-std" in doctor

        # hovering a chart shows the read-out at the nearest logged step
        ActionChains(driver).move_to_element(charts[0]).perform()
        tip = driver.find_element(By.CSS_SELECTOR, ".plot .tip")
        assert tip.is_displayed() and tip.text.startswith("step ")

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()
