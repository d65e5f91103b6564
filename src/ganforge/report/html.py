"""One HTML file that shows a run: samples over time, training curves, doctor findings, metrics.

The page is self-contained: sample grids are embedded as base64 PNGs, charts are inline SVG
drawn here, and a few lines of inline JavaScript add hover read-outs and a sample slider (the
page reads fine without them). Nothing is fetched from the network.

Everything is read from the run directory's files (``config.json``, ``stats.jsonl``,
``samples/``, ``metrics.jsonl``, ``doctor.jsonl``, ``checkpoints/*/meta.json``), never from
the trainer, so a report can be built while a run is still writing, after it was killed, or
from a copy. A missing or damaged file empties its section ("no data yet"); it never raises.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganforge import __version__
from ganforge.errors import GanforgeError
from ganforge.monitor.stats import read_jsonl

REPORT_FILE = "report.html"
MAX_POINTS = 2000  # per series in an SVG; longer series are min/max-decimated (spikes survive)
MAX_SAMPLE_GRIDS = 9  # ~8 evenly spaced grids plus the last
MAX_EMBED_BYTES = 1_500_000  # larger sample PNGs are downscaled before embedding

_STEP_FILE = re.compile(r"^step_(\d+)\.png$")
_STEP_DIR = re.compile(r"^step_(\d+)$")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_SEVERITIES = ("error", "warning", "info")
_SEVERITY_COLOURS = {"error": "#c62828", "warning": "#e08600", "info": "#1e6fb8"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_FLAG_COLOUR = "#c62828"  # non-finite values


def _e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------------
# reading the run directory (tolerant: a damaged line or file is skipped, never raised)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file (see `read_jsonl`); a missing or unreadable file gives none."""
    try:
        return list(read_jsonl(path))
    except OSError:
        return []


def _number(value: Any) -> float | None:
    """A float from a JSON value: numbers, and the strings "nan"/"inf"/"-inf" that stand for non-finite ones."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _NONFINITE.get(value)
    return None


def _step(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _fmt(value: Any, digits: int = 4) -> str:
    """A number for display (non-finite values spelled out); anything else as text."""
    number = _number(value)
    if number is None:
        return str(value)
    if not math.isfinite(number):
        return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.{digits}g}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class Series:
    """One logged stat over steps; ``values`` keeps non-finite entries (drawn as gaps, flagged)."""

    name: str
    steps: np.ndarray
    values: np.ndarray


@dataclass
class Run:
    """What the report shows, read from one run directory."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    wall_time: float | None = None
    samples: list[tuple[int, Path]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        settings = self.config.get("config")
        return settings if isinstance(settings, dict) else {}

    @property
    def total_steps(self) -> int | None:
        return _step(self.config.get("total_steps")) or _step(self.settings.get("steps"))

    @property
    def steps_done(self) -> int | None:
        """The furthest step anything in the run directory shows."""
        seen = [int(s.steps[-1]) for s in self.series.values() if len(s.steps)]
        seen += [step for step, _ in self.samples]
        seen += [c["step"] for c in self.checkpoints if c.get("complete")]
        return max(seen) if seen else None


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read everything the report needs from ``run_dir``; missing pieces stay empty."""
    run = Run(Path(run_dir))
    run.config = _read_json(run.path / "config.json") or {}
    run.series, run.wall_time = _read_stats(run.path / "stats.jsonl")
    run.samples = _list_samples(run.path / "samples")
    run.metrics = [r for r in _read_jsonl(run.path / "metrics.jsonl") if isinstance(r.get("metric"), str)]
    run.findings, run.actions = _read_doctor(run.path / "doctor.jsonl")
    run.checkpoints = _list_checkpoints(run.path / "checkpoints")
    return run


def _read_stats(path: Path) -> tuple[dict[str, Series], float | None]:
    columns: dict[str, tuple[list[float], list[float]]] = {}
    wall, last_time = 0.0, None
    for record in _read_jsonl(path):
        step = _step(record.pop("step", None))
        if step is None:
            continue
        t = _number(record.pop("time", None))
        if t is not None and math.isfinite(t):
            if last_time is not None and t < last_time:  # the clock restarts when a run is resumed
                wall += last_time
            last_time = t
        for name, value in record.items():
            kind = type(value)
            if kind is float or kind is int:  # the common case first: long runs have many lines
                number = float(value)
            elif (number := _number(value)) is None:
                continue
            column = columns.get(name)
            if column is None:
                column = columns[name] = ([], [])
            column[0].append(step)
            column[1].append(number)
    series = {}
    for name, (steps, values) in columns.items():
        x = np.asarray(steps, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        series[name] = Series(name, x[order], np.asarray(values, dtype=np.float64)[order])
    return series, (wall + last_time if last_time is not None else None)


def _list_samples(folder: Path) -> list[tuple[int, Path]]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        match = _STEP_FILE.match(p.name)
        if match and p.is_file():
            found.append((int(match.group(1)), p))
    return sorted(found)


def _read_doctor(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    findings: dict[tuple[Any, int | None], dict[str, Any]] = {}
    actions = []
    for record in _read_jsonl(path):
        if record.get("kind") == "finding":
            # a finding still going on may be written again with a later last_step: keep the newest
            findings[(str(record.get("code")), _step(record.get("step")))] = record
        elif record.get("kind") == "action":
            actions.append(record)
    by_step = sorted(findings.values(), key=lambda r: (_step(r.get("step")) or 0))
    return by_step, sorted(actions, key=lambda r: (_step(r.get("step")) or 0))


def _list_checkpoints(folder: Path) -> list[dict[str, Any]]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        match = _STEP_DIR.match(p.name)
        if not (match and p.is_dir()):
            continue
        meta = _read_json(p / "meta.json")
        found.append({"name": p.name, "step": int(match.group(1)), "complete": meta is not None,
                      "score": (meta or {}).get("score")})
    return sorted(found, key=lambda c: c["step"])


# ---------------------------------------------------------------------------------------------
# SVG charts


@dataclass
class Line:
    label: str
    steps: np.ndarray
    values: np.ndarray
    colour: str


@dataclass
class Marker:
    """A doctor finding (a shaded span) or action (a dashed line) on the timeline."""

    start: float
    end: float
    colour: str
    text: str
    kind: str  # "finding" | "action"


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most about ``max_points`` points: the min and max of each bucket, and one non-finite per bucket.

    Min/max decimation keeps the spikes a plain stride would skip; keeping a non-finite entry
    keeps the gap it leaves in the line.
    """
    n = len(steps)
    if n <= max_points:
        return steps, values
    finite = np.isfinite(values)
    edges = np.linspace(0, n, max_points // 2 + 1).astype(int)
    keep = [0, n - 1]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        ok = finite[a:b]
        if not ok.all():
            keep.append(a + int(np.argmin(ok)))
        if ok.any():
            idx = a + np.flatnonzero(ok)
            seg = values[idx]
            keep += [int(idx[np.argmin(seg)]), int(idx[np.argmax(seg)])]
    index = np.unique(keep)
    return steps[index], values[index]


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + 1e-9 * span:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades in [lo, hi] (10**k); 2x and 5x as well when the range spans less than two decades."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    multiples = (1, 2, 5) if k1 - k0 <= 2 else (1,)
    ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in multiples]
    inside = [t for t in ticks if lo <= t * (1 + 1e-9) and t <= hi * (1 + 1e-9)]
    if len(inside) >= 2:
        return inside
    return [lo, hi]


_W, _H = 600, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 14, 14, 30  # plot-area margins inside the SVG


class _Scale:
    """Maps steps and values to SVG coordinates."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], log: bool):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.log = log
        self.px0, self.px1 = _LEFT, _W - _RIGHT
        self.py_top, self.py_bottom = _TOP, _H - _BOTTOM

    def x(self, steps: np.ndarray | float) -> np.ndarray:
        span = self.x1 - self.x0 or 1.0
        return self.px0 + (np.asarray(steps, dtype=np.float64) - self.x0) / span * (self.px1 - self.px0)

    def y(self, values: np.ndarray | float) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        lo, hi = self.y0, self.y1
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v, lo, hi = np.log10(v), math.log10(lo), math.log10(hi)
        span = hi - lo or 1.0
        return self.py_bottom - (v - lo) / span * (self.py_bottom - self.py_top)


def _value_range(lines: Sequence[Line], log: bool, fixed: tuple[float, float] | None) -> tuple[float, float] | None:
    parts = [ln.values[_plottable(ln.values, log)] for ln in lines]
    values = np.concatenate(parts) if parts else np.empty(0)
    if fixed is not None:
        values = np.concatenate([values, np.asarray(fixed, dtype=np.float64)])
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    if log:
        if hi <= lo:
            return lo / 2, hi * 2
        pad = (hi / lo) ** 0.04
        return lo / pad, hi * pad
    if hi <= lo:
        delta = abs(lo) * 0.1 or 1.0
        return lo - delta, hi + delta
    if fixed is not None and fixed[0] <= lo and hi <= fixed[1]:
        return fixed
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _plottable(values: np.ndarray, log: bool) -> np.ndarray:
    ok = np.isfinite(values)
    if log:
        ok &= values > 0
    return ok


def _path(xs: np.ndarray, ys: np.ndarray, ok: np.ndarray) -> str:
    parts = []
    pen_up = True
    for x, y, good in zip(xs.tolist(), ys.tolist(), ok.tolist(), strict=True):
        if not good:
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{x:.1f},{y:.1f}")
        pen_up = False
    return "".join(parts)


def _json_for_script(data: Any) -> str:
    """JSON safe inside a <script> element (no "</script>", no HTML specials)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _tooltip_value(v: float) -> float | str:
    return float(f"{v:.5g}") if math.isfinite(v) else _fmt(v)


def chart(
    title: str,
    lines: Sequence[Line],
    x_range: tuple[float, float],
    markers: Sequence[Marker] = (),
    log: bool = False,
    y_fixed: tuple[float, float] | None = None,
    note: str = "",
) -> str:
    """A figure: legend, an inline SVG line chart over steps, and notes on values it could not draw."""
    lines = [ln for ln in lines if len(ln.steps)]
    if not log and y_fixed is None and _needs_log(lines):
        log, title = True, f"{title} (log scale: the values span a wide range)"
    legend = "".join(f'<span class="key"><i style="background:{ln.colour}"></i>{_e(ln.label)}</span>' for ln in lines)
    flags_html = []
    for ln in lines:
        bad = ~np.isfinite(ln.values)
        if bad.any():
            first = int(ln.steps[np.argmax(bad)])
            kinds = ", ".join(f"{_fmt(v)} ×{c}" for v, c in _count_kinds(ln.values[bad]))
            flags_html.append(f"{_e(ln.label)}: {int(bad.sum())} non-finite value(s) ({_e(kinds)}), first at step "
                              f"{first}; drawn as gaps and ▼ marks")
        if log:
            nonpositive = int((np.isfinite(ln.values) & (ln.values <= 0)).sum())
            if nonpositive:
                flags_html.append(f"{_e(ln.label)}: {nonpositive} value(s) ≤ 0 not shown on the log scale")
    y_range = _value_range(lines, log, y_fixed)
    caption = f'<figcaption><span class="chart-title">{_e(title)}</span>{legend}</figcaption>'
    if y_range is None:
        body = '<p class="empty">no finite values to draw</p>'
        flags = "".join(f'<p class="flag">{f}</p>' for f in flags_html)
        return f'<figure class="chart-box">{caption}{body}{flags}</figure>'
    scale = _Scale(x_range, y_range, log)
    svg = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(title)}">']
    svg.append(_axes(scale))
    svg.extend(_marker_svg(m, scale) for m in markers)
    tooltip_series = []
    for ln in lines:
        steps, values = downsample(ln.steps, ln.values)
        ok = _plottable(values, log)
        xs, ys = scale.x(steps), scale.y(np.where(ok, values, 1.0))
        svg.append(f'<path d="{_path(xs, ys, ok)}" fill="none" stroke="{ln.colour}" stroke-width="1.6" '
                   'stroke-linejoin="round"/>')
        if len(steps) <= 60:  # few points (e.g. metric evaluations): show each one
            svg.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{ln.colour}"/>'
                       for x, y, good in zip(xs.tolist(), ys.tolist(), ok.tolist(), strict=True) if good)
        svg.append(_nonfinite_marks(ln, scale))
        tooltip_series.append({"label": ln.label, "x": [_fmt(s) for s in steps.tolist()],
                               "y": [_tooltip_value(v) for v in values.tolist()]})
    svg.append(f'<line class="cursor" x1="0" x2="0" y1="{_TOP}" y2="{_H - _BOTTOM}" visibility="hidden"/>')
    svg.append("</svg>")
    data = {"w": _W, "px0": scale.px0, "px1": scale.px1, "x0": scale.x0, "x1": scale.x1, "series": tooltip_series}
    notes = "".join(f'<p class="flag">{f}</p>' for f in flags_html)
    if note:
        notes += f'<p class="note">{_e(note)}</p>'
    return (f'<figure class="chart-box">{caption}<div class="plot">{"".join(svg)}<div class="tip" hidden></div>'
            f'<script type="application/json" class="chart-data">{_json_for_script(data)}</script></div>'
            f"{notes}</figure>")


def _needs_log(lines: Sequence[Line]) -> bool:
    """True when a linear axis would flatten most of the curve (e.g. a loss that starts 100x above where it settles)."""
    parts = [ln.values[np.isfinite(ln.values)] for ln in lines]
    values = np.concatenate(parts) if parts else np.empty(0)
    if values.size < 5 or values.min() <= 0:
        return False
    return bool(values.max() / np.median(values) > 50 or np.median(values) / values.min() > 50)


def _count_kinds(values: np.ndarray) -> list[tuple[float, int]]:
    kinds = [(math.nan, int(np.isnan(values).sum())), (math.inf, int((values == np.inf).sum())),
             (-math.inf, int((values == -np.inf).sum()))]
    return [(v, c) for v, c in kinds if c]


def _axes(scale: _Scale) -> str:
    parts = [f'<rect class="frame" x="{scale.px0}" y="{scale.py_top}" width="{scale.px1 - scale.px0}" '
             f'height="{scale.py_bottom - scale.py_top}"/>']
    y_ticks = _log_ticks(scale.y0, scale.y1) if scale.log else _nice_ticks(scale.y0, scale.y1)
    for t in y_ticks:
        y = float(scale.y(t))
        parts.append(f'<line class="grid" x1="{scale.px0}" x2="{scale.px1}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{scale.px0 - 5}" y="{y + 3.5:.1f}" text-anchor="end">{_fmt(t, 3)}</text>')
    for t in _nice_ticks(scale.x0, scale.x1, 6):
        x = float(scale.x(t))
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{scale.py_top}" y2="{scale.py_bottom}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{scale.py_bottom + 14}" text-anchor="middle">'
                     f"{_fmt(t, 4)}</text>")
    parts.append(f'<text class="tick" x="{scale.px1}" y="{_H - 2}" text-anchor="end">step</text>')
    return "".join(parts)


def _marker_svg(marker: Marker, scale: _Scale) -> str:
    lo, hi = scale.px0, scale.px1
    x0 = float(np.clip(scale.x(marker.start), lo, hi))
    x1 = float(np.clip(scale.x(marker.end), lo, hi))
    title = f"<title>{_e(marker.text)}</title>"
    if marker.kind == "action":
        y = scale.py_bottom
        return (f'<g class="action">{title}<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{scale.py_top}" y2="{y}" '
                f'stroke="{marker.colour}" stroke-dasharray="4 3" stroke-width="1.2"/>'
                f'<path d="M{x0:.1f},{y - 12}l5,6l-5,6l-5,-6z" fill="{marker.colour}"/></g>')
    width = max(x1 - x0, 2.0)
    return (f'<g class="finding">{title}<rect x="{x0:.1f}" y="{scale.py_top}" width="{width:.1f}" '
            f'height="{scale.py_bottom - scale.py_top}" fill="{marker.colour}" fill-opacity="0.13"/>'
            f'<rect x="{x0:.1f}" y="{scale.py_top}" width="{width:.1f}" height="5" fill="{marker.colour}"/></g>')


def _nonfinite_marks(line: Line, scale: _Scale) -> str:
    bad = ~np.isfinite(line.values)
    if not bad.any():
        return ""
    steps, values = line.steps[bad], line.values[bad]
    columns = np.round(scale.x(steps)).astype(int)
    _, first = np.unique(columns, return_index=True)  # one mark per pixel column
    marks = []
    for i in first.tolist():
        x = float(scale.x(steps[i]))
        marks.append(f'<path d="M{x - 4:.1f},{scale.py_top}h8l-4,7z" fill="{_FLAG_COLOUR}">'
                     f"<title>{_e(line.label)}: {_fmt(values[i])} at step {int(steps[i])}</title></path>")
    return "".join(marks)


# ---------------------------------------------------------------------------------------------
# sections

# (title, [(stat name, legend label)], options); stats not named here get a chart each
_CHARTS: list[tuple[str, list[tuple[str, str]], dict[str, Any]]] = [
    ("Losses", [("Loss/D", "D loss"), ("Loss/G", "G loss")], {}),
    ("D(x) and D(G(z))", [("D/real", "D(x), real"), ("D/fake", "D(G(z)), fake")], {}),
    ("D accuracy on real and fake", [("D/acc_real", "real"), ("D/acc_fake", "fake")], {"y_fixed": (0.0, 1.0)}),
    ("Gradient norms (log scale)", [("Grad/D", "‖∇D‖"), ("Grad/G", "‖∇G‖")], {"log": True}),
    ("Sample diversity (probe; 1 = as spread as real data)", [("Probe/diversity", "diversity")], {}),
    ("Sliced Wasserstein distance to real (probe)",
     [("Probe/swd", "swd"), ("Probe/swd_floor", "real vs real (what a perfect G scores)")], {}),
    ("Regularisers", [("Loss/D/gp", "gradient penalty"), ("Loss/D/r1", "R1 penalty")], {}),
]
_ALWAYS = 4  # the first charts are shown (as "no data yet") even when their stats are missing


def _x_range(run: Run) -> tuple[float, float]:
    steps = [float(s.steps[0]) for s in run.series.values() if len(s.steps)]
    steps += [float(s.steps[-1]) for s in run.series.values() if len(s.steps)]
    steps += [float(s) for r in run.findings + run.actions for s in (_step(r.get("step")), _step(r.get("last_step")))
              if s is not None]
    steps += [float(s) for r in run.metrics if (s := _step(r.get("step"))) is not None]
    if not steps:
        return 0.0, 1.0
    lo, hi = min(min(steps), 0.0), max(steps)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _markers(run: Run) -> list[Marker]:
    markers = []
    for f in run.findings:
        step = _step(f.get("step"))
        if step is None:
            continue
        last = _step(f.get("last_step"))
        last = step if last is None or last < step else last
        severity = str(f.get("severity"))
        span = f"step {step}" if last == step else f"steps {step}–{last}"
        markers.append(Marker(step, last, _SEVERITY_COLOURS.get(severity, "#777"),
                              f"{span}: {severity} {f.get('code')}: {f.get('message', '')}", "finding"))
    for a in run.actions:
        step = _step(a.get("step"))
        if step is None:
            continue
        because = f" (because {a.get('because')})" if a.get("because") else ""
        markers.append(Marker(step, step, "#444", f"step {step}: action {a.get('action')}{because}", "action"))
    return markers


def _section_curves(run: Run) -> str:
    if not run.series:
        return '<p class="empty">no data yet (no stats.jsonl, or nothing logged in it)</p>'
    x_range = _x_range(run)
    markers = _markers(run)
    figures = []
    used = set()
    for i, (title, names, options) in enumerate(_CHARTS):
        used.update(name for name, _ in names)
        present = [(name, label) for name, label in names if name in run.series]
        if not present:
            if i < _ALWAYS:
                figures.append(f'<figure class="chart-box"><figcaption><span class="chart-title">{_e(title)}'
                               '</span></figcaption><p class="empty">no data yet</p></figure>')
            continue
        lines = [Line(label, run.series[name].steps, run.series[name].values, _PALETTE[k % len(_PALETTE)])
                 for k, (name, label) in enumerate(present)]
        figures.append(chart(title, lines, x_range, markers, **options))
    for name in sorted(set(run.series) - used):
        s = run.series[name]
        figures.append(chart(name, [Line(name, s.steps, s.values, _PALETTE[0])], x_range, markers))
    legend = ""
    if markers:
        legend = ('<p class="note">Shaded spans: doctor findings (<span style="color:#c62828">error</span>, '
                  '<span style="color:#e08600">warning</span>, <span style="color:#1e6fb8">info</span>); dashed '
                  "lines: doctor actions. Hover a span or a line for details.</p>")
    return legend + f'<div class="charts">{"".join(figures)}</div>'


def _section_samples(run: Run) -> str:
    if not run.samples:
        return '<p class="empty">no data yet (no samples/step_*.png)</p>'
    picked = _pick(run.samples, MAX_SAMPLE_GRIDS)
    thumbs = []
    skipped = []
    for step, path in picked:
        embedded = _embed_png(path)
        if embedded is None:
            skipped.append(step)
            continue
        uri, width, height = embedded
        pixelated = " pixelated" if width < 300 else ""
        thumbs.append(f'<figure class="thumb"><img class="sample{pixelated}" src="{uri}" width="{width}" '
                      f'height="{height}" alt="samples at step {step}" data-caption="step {step}">'
                      f"<figcaption>step {step}</figcaption></figure>")
    shown = f"{len(thumbs)} of {len(run.samples)} grids" if len(run.samples) > len(thumbs) else f"{len(thumbs)} grids"
    notes = f'<p class="note">{shown}, from one fixed noise batch, so they show the same latent points over time.</p>'
    if skipped:
        notes += f'<p class="flag">unreadable sample file(s) at step {", ".join(map(str, skipped))} (skipped)</p>'
    if not thumbs:
        return notes
    viewer = ('<div class="viewer" hidden><img id="sample-main" alt="selected sample grid">'
              f'<div><input type="range" id="sample-slider" min="0" max="{len(thumbs) - 1}" value="{len(thumbs) - 1}" '
              'aria-label="training step"> <span id="sample-caption"></span></div></div>')
    return notes + viewer + f'<div class="strip">{"".join(thumbs)}</div>'


def _pick(items: list[Any], count: int) -> list[Any]:
    """About ``count`` evenly spaced items, always including the last."""
    if len(items) <= count:
        return items
    index = np.unique(np.round(np.linspace(0, len(items) - 2, count - 1)).astype(int)).tolist()
    return [items[i] for i in index] + [items[-1]]


def _embed_png(path: Path) -> tuple[str, int, int] | None:
    """A data URI, width and height of a PNG (downscaled when large); None when it is not a readable PNG."""
    from PIL import Image

    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as image:
            if image.format != "PNG":
                return None
            width, height = image.size
            image.verify()  # catches a truncated file (a grid still being written)
        if len(raw) > MAX_EMBED_BYTES:
            with Image.open(io.BytesIO(raw)) as image:
                image.thumbnail((1024, 1024))
                buffer = io.BytesIO()
                image.save(buffer, format="PNG", optimize=True)
                raw, (width, height) = buffer.getvalue(), image.size
    except Exception:  # noqa: BLE001 - any damaged image is skipped, never fatal
        return None
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii"), width, height


def _section_doctor(run: Run) -> str:
    if not run.findings and not run.actions:
        if (run.path / "doctor.jsonl").exists():
            return '<p class="empty">the doctor found nothing to report</p>'
        return '<p class="empty">no data yet (no doctor.jsonl)</p>'
    parts = []
    if run.findings:
        items = [_finding_html(f) for f in run.findings]
        parts.append(f'<h3>Findings</h3><ul class="findings">{"".join(items)}</ul>')
    if run.actions:
        rows = []
        for a in run.actions:
            detail = a.get("detail")
            detail_text = json.dumps(detail, sort_keys=True, default=str) if detail not in (None, {}) else ""
            rows.append(f"<tr><td class=num>{_e(_fmt(a.get('step', '')))}</td><td><code>{_e(a.get('action', ''))}"
                        f"</code></td><td><code>{_e(a.get('because') or '')}</code></td>"
                        f"<td class=detail>{_e(_shorten(detail_text))}</td></tr>")
        parts.append('<h3>Actions taken</h3><table class="data"><thead><tr><th>step</th><th>action</th>'
                     f'<th>because</th><th>detail</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return "".join(parts)


def _finding_html(finding: dict[str, Any]) -> str:
    severity = str(finding.get("severity", ""))
    css = severity if severity in _SEVERITIES else "other"
    step, last = _step(finding.get("step")), _step(finding.get("last_step"))
    where = "" if step is None else (f"step {step}" if last in (None, step) else f"steps {step}–{last}")
    evidence = finding.get("evidence")
    chips = ""
    if isinstance(evidence, dict) and evidence:
        chips = '<div class="evidence">' + "".join(
            f"<span><b>{_e(k)}</b> {_e(_fmt(v))}</span>" for k, v in evidence.items()) + "</div>"
    advice = finding.get("advice")
    advice_html = f'<p class="advice"><b>What to do:</b> {_e(advice)}</p>' if advice else ""
    return (f'<li class="finding sev-{css}"><div class="finding-head"><span class="badge">{_e(severity or "?")}'
            f'</span> <code>{_e(finding.get("code", ""))}</code> <span class="where">{_e(where)}</span></div>'
            f'<p class="message">{_e(finding.get("message", ""))}</p>{chips}{advice_html}</li>')


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_PROTOCOL_FIELDS = ("extractor", "extractor_hash", "n_real", "n_fake", "reference", "resize", "seed")


def _protocol_key(protocol: Any) -> tuple:
    """What must match for two scores to be comparable (as ``Protocol.key``: the version may differ)."""
    if not isinstance(protocol, dict):
        return ("unknown",)
    return tuple(json.dumps(protocol.get(name), sort_keys=True) for name in _PROTOCOL_FIELDS)


def _describe_protocol(protocol: Any) -> str:
    if not isinstance(protocol, dict):
        return "protocol not recorded"
    get = protocol.get
    digest = f" {str(get('extractor_hash'))[:12]}" if get("extractor_hash") else ""
    text = (f"{get('extractor', '?')}{digest}, {get('n_fake', '?')} fake vs {get('n_real', '?')} real from "
            f"{get('reference', '?')}, resize {get('resize', '?')}, seed {get('seed', '?')}")
    if get("ganforge_version"):
        text += f" (ganforge {get('ganforge_version')})"
    return text


def _section_metrics(run: Run) -> str:
    if not run.metrics:
        return '<p class="empty">no data yet (no metrics.jsonl; see <code>ganforge eval</code> and --eval-every)</p>'
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in run.metrics:
        groups.setdefault(_protocol_key(record.get("protocol")), []).append(record)
    numbered = {key: i + 1 for i, key in enumerate(groups)}
    parts = []
    if len(groups) > 1:
        parts.append(f'<p class="note">{len(groups)} measurement protocols: scores are comparable only within one '
                     "protocol.</p>")
    for key, records in groups.items():
        records = sorted(records, key=lambda r: (str(r.get("metric")), _step(r.get("step")) or -1))
        rows = []
        for r in records:
            value = _number(r.get("value"))
            flag = ' class="num flag"' if value is not None and not math.isfinite(value) else ' class="num"'
            extra = r.get("extra")
            extra_text = ""
            if isinstance(extra, dict) and extra:
                extra_text = f"± {_fmt(extra['std'])}" if "std" in extra else _shorten(json.dumps(extra, default=str))
            step = _fmt(r.get("step")) if r.get("step") is not None else "–"
            rows.append(f"<tr><td><code>{_e(r.get('metric'))}</code></td><td{flag}>{_e(_fmt(r.get('value')))}</td>"
                        f"<td>{_e(extra_text)}</td><td class=num>{_e(step)}</td>"
                        f"<td>{_e(r.get('checkpoint') or '–')}</td><td>{_e(r.get('time', ''))}</td></tr>")
        label = f"Protocol {numbered[key]}" if len(groups) > 1 else "Protocol"
        parts.append(f'<div class="protocol"><p><b>{label}:</b> {_e(_describe_protocol(records[0].get("protocol")))}'
                     '</p><table class="data"><thead><tr><th>metric</th><th>value</th><th></th><th>step</th>'
                     f'<th>checkpoint</th><th>measured</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    parts.append(_metric_curves(run, groups, numbered))
    return "".join(parts)


def _metric_curves(run: Run, groups: dict[tuple, list[dict[str, Any]]], numbered: dict[tuple, int]) -> str:
    # one value per step: after a doctor's rollback the later line (the branch kept) wins
    by_metric: dict[str, dict[tuple, dict[int, float]]] = {}
    for r in run.metrics:
        step, value = _step(r.get("step")), _number(r.get("value"))
        if step is not None and value is not None:
            key = _protocol_key(r.get("protocol"))
            by_metric.setdefault(str(r["metric"]), {}).setdefault(key, {})[step] = value
    if not by_metric:
        return ""
    x_range = _x_range(run)
    markers = _markers(run)
    figures = []
    for metric, per_protocol in sorted(by_metric.items()):
        lines = []
        for k, (key, points) in enumerate(per_protocol.items()):
            steps = sorted(points)
            label = f"{metric}, protocol {numbered[key]}" if len(groups) > 1 else metric
            lines.append(Line(label, np.array(steps, dtype=np.float64),
                              np.array([points[s] for s in steps], dtype=np.float64), _PALETTE[k % len(_PALETTE)]))
        note = ""
        if len(per_protocol) > 1:
            note = "one line per protocol: the lines are not comparable with each other"
        else:
            note = "protocol: " + _describe_protocol(groups[next(iter(per_protocol))][0].get("protocol"))
        figures.append(chart(metric, lines, x_range, markers, note=note))
    return f'<h3>Metrics over training</h3><div class="charts">{"".join(figures)}</div>'


def _section_checkpoints(run: Run) -> str:
    if not run.checkpoints:
        return '<p class="empty">no data yet (no checkpoints/step_*)</p>'
    rows = []
    for c in run.checkpoints:
        state = "" if c["complete"] else '<span class="flag">incomplete (no meta.json)</span>'
        score = _fmt(c["score"]) if c.get("score") is not None else "–"
        rows.append(f"<tr><td><code>{_e(c['name'])}</code></td><td class=num>{c['step']}</td>"
                    f"<td class=num>{_e(score)}</td><td>{state}</td></tr>")
    settings = run.settings
    if _step(settings.get("eval_every")):
        metrics = settings.get("eval_metrics")
        first = metrics[0] if isinstance(metrics, list) and metrics else "?"
        meaning = f"the evaluation score {settings.get('best_metric') or first} (see Metrics)"
    else:
        meaning = "the built-in sliced Wasserstein distance to real data (lower is better)"
    return ('<table class="data"><thead><tr><th>checkpoint</th><th>step</th><th>score</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><p class="note">score: the value that ranks checkpoints, '
            f"here {_e(meaning)}.</p>")


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _shorten(json.dumps(value, default=str))


def _section_config(run: Run) -> str:
    if not run.config:
        return '<p class="empty">no data yet (no readable config.json)</p>'
    tables = []
    top = {k: v for k, v in run.config.items() if k not in ("config", "spec")}
    for title, mapping in (("Run", top), ("Training settings", run.settings), ("Data", run.config.get("spec"))):
        if not isinstance(mapping, dict) or not mapping:
            continue
        rows = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(_value_text(v))}</code></td></tr>"
                       for k, v in mapping.items())
        tables.append(f'<div><h3>{_e(title)}</h3><table class="config">{rows}</table></div>')
    return f'<div class="config-grid">{"".join(tables)}</div>'


def _header(run: Run, name: str) -> str:
    settings = run.settings
    spec = run.config.get("spec") if isinstance(run.config.get("spec"), dict) else {}
    model = str(settings.get("model", "?")) + (" (conditional)" if settings.get("conditional") else "")
    data = str(settings.get("data", "?"))
    shape = spec.get("shape") if isinstance(spec, dict) else None
    if isinstance(shape, list):
        data += f" ({'×'.join(map(str, shape))})"
    done, total = run.steps_done, run.total_steps
    steps = f"{done if done is not None else 0} / {total if total is not None else '?'}"
    progress = ""
    if done is not None and total:
        fraction = min(done / total, 1.0)
        progress = f'<div class="progress"><div style="width:{fraction * 100:.1f}%"></div></div>'
    facts = [
        ("model", model), ("loss", settings.get("loss", "?")), ("data", data),
        ("steps", steps), ("wall time", _duration(run.wall_time) if run.wall_time is not None else "?"),
        ("device", run.config.get("device", "?")), ("seed", settings.get("seed", "?")),
        ("batch size", settings.get("batch_size", "?")), ("ganforge", run.config.get("ganforge_version", "?")),
    ]
    facts_html = "".join(f'<div class="fact"><span>{_e(k)}</span><b>{_e(v)}</b></div>' for k, v in facts)
    badges = []
    for severity in _SEVERITIES:
        n = sum(1 for f in run.findings if f.get("severity") == severity)
        if n:
            badges.append(f'<a class="badge sev-{severity}" href="#doctor">{n} {severity}</a>')
    source = run.config.get("data_source")
    subtitle = f"<p class=sub>{_e(source)}</p>" if source else ""
    return (f"<header><h1>{_e(name)}</h1>{subtitle}<div class=facts>{facts_html}</div>{progress}"
            f'<div class="badges">{"".join(badges)}</div></header>')


# ---------------------------------------------------------------------------------------------
# the page

_CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#dde2e8;--bg:#f6f7f9;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 48px}
header h1{margin:0 0 2px;font-size:24px;word-break:break-all}
.sub{margin:0 0 12px;color:var(--muted)}
nav{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);padding:8px 0;
 margin:14px 0}
nav a{margin-right:16px;color:var(--fg);text-decoration:none;font-weight:600}
nav a:hover{text-decoration:underline}
section{scroll-margin-top:48px;background:var(--card);border:1px solid var(--line);border-radius:8px;
 padding:14px 18px;margin:16px 0}
section>h2{margin:0 0 10px;font-size:18px}
h3{font-size:15px;margin:14px 0 8px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.fact{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:6px 10px}
.fact span{display:block;color:var(--muted);font-size:12px}
.fact b{font-weight:600;word-break:break-word}
.progress{height:6px;background:var(--line);border-radius:3px;margin:10px 0 0;overflow:hidden}
.progress div{height:100%;background:#2ca02c}
.badges{margin-top:10px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;
 text-decoration:none;margin-right:6px;background:#777}
.sev-error .badge,.badge.sev-error{background:#c62828}
.sev-warning .badge,.badge.sev-warning{background:#e08600}
.sev-info .badge,.badge.sev-info{background:#1e6fb8}
.empty{color:var(--muted);font-style:italic}
.note{color:var(--muted);font-size:12.5px;margin:4px 0}
.flag{color:#c62828;font-size:12.5px;margin:4px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(470px,1fr));gap:14px}
.chart-box{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.chart-box figcaption{font-size:13px;margin-bottom:4px}
.chart-title{font-weight:600;margin-right:12px}
.key{margin-right:12px;white-space:nowrap;color:var(--muted)}
.key i{display:inline-block;width:12px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
.plot{position:relative}
svg.chart{display:block;width:100%;height:auto}
svg .frame{fill:none;stroke:#c4cbd4}
svg .grid{stroke:#eceff3}
svg .tick{font-size:11px;fill:#6b7684}
svg .cursor{stroke:#333;stroke-width:1;stroke-dasharray:2 2}
.tip{position:absolute;top:6px;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #bbb;
 border-radius:4px;padding:4px 7px;font-size:12px;white-space:pre;font-variant-numeric:tabular-nums}
.strip{display:flex;flex-wrap:wrap;gap:10px}
.thumb{margin:0;text-align:center;font-size:12px;color:var(--muted);cursor:pointer}
.thumb img{width:110px;height:auto;border:2px solid transparent;border-radius:3px;background:#fff}
.thumb.selected img{border-color:#1f77b4}
img.pixelated{image-rendering:pixelated}
.viewer{margin:8px 0 14px}
.viewer img{width:min(440px,100%);height:auto;display:block;margin-bottom:6px;border:1px solid var(--line)}
.viewer input{width:min(440px,100%);vertical-align:middle}
.findings{list-style:none;padding:0;margin:0}
.finding{border-left:4px solid #777;background:#fafbfc;padding:8px 12px;margin:0 0 10px;border-radius:0 6px 6px 0}
.finding.sev-error{border-color:#c62828}.finding.sev-warning{border-color:#e08600}.finding.sev-info{border-color:#1e6fb8}
.finding p{margin:4px 0}
.where{color:var(--muted);font-size:12.5px}
.evidence span{display:inline-block;background:#eef1f4;border-radius:4px;padding:1px 7px;margin:2px 6px 2px 0;
 font-size:12.5px;font-variant-numeric:tabular-nums}
.evidence b{font-weight:600;margin-right:4px}
table.data{border-collapse:collapse;width:100%;font-size:13px}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
table.data th{color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.detail{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
.protocol{margin-bottom:14px}
.config-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:14px}
table.config{border-collapse:collapse;width:100%;font-size:13px}
table.config th{text-align:left;font-weight:500;color:var(--muted);padding:2px 10px 2px 0;white-space:nowrap;
 vertical-align:top}
table.config td{padding:2px 0;word-break:break-word}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
footer{color:var(--muted);font-size:12px;text-align:center}
"""

# hover read-out on charts, and the sample slider; the page works without it
_JS = """
function nearest(xs,v){var lo=0,hi=xs.length-1;if(hi<0)return -1;while(hi-lo>1){var m=(lo+hi)>>1;
 if(+xs[m]<v)lo=m;else hi=m;}return Math.abs(+xs[lo]-v)<=Math.abs(+xs[hi]-v)?lo:hi;}
document.querySelectorAll('.plot').forEach(function(plot){
 var d=JSON.parse(plot.querySelector('.chart-data').textContent),svg=plot.querySelector('svg'),
 tip=plot.querySelector('.tip'),cur=svg.querySelector('.cursor');
 svg.addEventListener('mousemove',function(ev){var r=svg.getBoundingClientRect(),vx=(ev.clientX-r.left)*d.w/r.width;
  if(vx<d.px0||vx>d.px1){tip.hidden=true;cur.setAttribute('visibility','hidden');return;}
  var step=d.x0+(vx-d.px0)/(d.px1-d.px0)*(d.x1-d.x0),lines=[],best=null;
  d.series.forEach(function(s){var i=nearest(s.x,step);if(i<0)return;
   if(best===null||Math.abs(+s.x[i]-step)<Math.abs(best-step))best=+s.x[i];lines.push(s.label+': '+s.y[i]);});
  if(best===null)return;var bx=d.px0+(best-d.x0)/((d.x1-d.x0)||1)*(d.px1-d.px0);
  cur.setAttribute('x1',bx);cur.setAttribute('x2',bx);cur.setAttribute('visibility','visible');
  tip.textContent='step '+best+'\\n'+lines.join('\\n');tip.hidden=false;
  var px=bx*r.width/d.w;tip.style.left=(px>r.width/2?px-tip.offsetWidth-8:px+8)+'px';});
 svg.addEventListener('mouseleave',function(){tip.hidden=true;cur.setAttribute('visibility','hidden');});});
(function(){var thumbs=document.querySelectorAll('.thumb'),main=document.getElementById('sample-main');
 if(!main||!thumbs.length)return;var slider=document.getElementById('sample-slider'),
 cap=document.getElementById('sample-caption');
 function show(i){var img=thumbs[i].querySelector('img');main.src=img.src;
  main.className=img.className;cap.textContent=img.getAttribute('data-caption');slider.value=i;
  thumbs.forEach(function(t,k){t.classList.toggle('selected',k===i);});}
 slider.addEventListener('input',function(){show(+slider.value);});
 thumbs.forEach(function(t,k){t.addEventListener('click',function(){show(k);});});
 main.parentNode.hidden=false;show(thumbs.length-1);})();
"""

_SECTIONS: list[tuple[str, str, Callable[[Run], str]]] = [
    ("samples", "Samples over training", _section_samples),
    ("curves", "Training curves", _section_curves),
    ("doctor", "Doctor", _section_doctor),
    ("metrics", "Metrics", _section_metrics),
    ("checkpoints", "Checkpoints", _section_checkpoints),
    ("config", "Configuration", _section_config),
]


def _guarded(render: Callable[[], str]) -> str:
    """A section's HTML, or a note saying it could not be drawn (the report must never fail a run)."""
    try:
        return render()
    except Exception as e:  # noqa: BLE001 - an odd run directory degrades one section, never the report
        return f'<p class="flag">could not draw this section: {_e(type(e).__name__)}: {_e(e)}</p>'


def build_report(run_dir: str | os.PathLike) -> str:
    """The report of ``run_dir`` as one self-contained HTML page (never raises for a partial run)."""
    path = Path(run_dir)
    name = path.resolve().name or str(path)
    try:
        run = read_run(path)
    except Exception:  # noqa: BLE001 - read_run is tolerant already; this is the last line of defence
        run = Run(path)
    body = [_guarded(lambda: _header(run, name))]
    body.append("<nav>" + "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title, _ in _SECTIONS) + "</nav>")
    for key, title, render in _SECTIONS:
        body.append(f'<section id="{key}"><h2>{_e(title)}</h2>{_guarded(lambda r=render: r(run))}</section>')
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    body.append(f"<footer>generated {generated} by ganforge {_e(__version__)} from {_e(path)}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{_e(name)} — ganforge report</title>'
            f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main><script>{_JS}</script></body></html>\n")


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``) atomically; return its path.

    Raises `GanforgeError` only when ``run_dir`` is not a directory; a partial run gives a
    partial report.
    """
    run_path = Path(run_dir)
    if not run_path.is_dir():
        raise GanforgeError(f"{run_path} is not a directory; give the --out directory of a `ganforge train` run")
    target = Path(out) if out is not None else run_path / REPORT_FILE
    text = build_report(run_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)  # readers see the old report or the new one, never half of one
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
