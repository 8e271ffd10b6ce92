"""Charts as inline SVG, rendered on the server: no JavaScript library, nothing fetched from a CDN,
and nothing the page's Content-Security-Policy has to allow (colours are presentation attributes,
not inline styles). Every label is escaped."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#4f46e5",
           "#0d9488")
TIER_COLOURS = {"low": "#16a34a", "medium": "#eab308", "high": "#ea580c", "critical": "#dc2626", "none": "#94a3b8"}
VERDICT_COLOURS = {"pass": "#16a34a", "supported": "#16a34a", "grounded": "#16a34a", "fail": "#dc2626",
                   "unsupported": "#dc2626", "ungrounded": "#dc2626", "error": "#64748b", "skipped": "#94a3b8"}
GREY = "#94a3b8"


def colours_for(names: Sequence[str], fixed: dict[str, str] | None = None) -> dict[str, str]:
    fixed = fixed or {}
    out, i = {}, 0
    for name in names:
        if name in fixed:
            out[name] = fixed[name]
        elif name == "none":
            out[name] = GREY
        else:
            out[name] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def integer(v: float) -> str:
    return f"{int(round(v)):,}"


def usd(v: float, places: int | None = None) -> str:
    if v == 0:
        return "$0"
    if places is None:
        places = 4 if v < 10 else 2
    return f"${v:,.{places}f}"


def _places(step: float) -> int:
    """The decimal places needed to tell ticks `step` apart (1, 2 or 5 times a power of ten)."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _axis_format(fmt: Callable[[float], str], ticks: Sequence[float]) -> Callable[[float], str]:
    """The y-axis labels: as many decimals as the step needs, so no two ticks read the same (money
    under a cent a day gave $0.0000 five times); whole cents or dollars when that is enough."""
    if fmt is not usd or len(ticks) < 2:
        return fmt
    places = _places(ticks[1] - ticks[0])
    places = 2 if places == 1 else places
    return lambda v: usd(v, places)


def _ticks(value: float, whole: bool) -> list[float]:
    """0 and up to five more round steps (1, 2 or 5 times a power of ten) that cover `value`."""
    if value <= 0:
        return [0.0, 1.0]
    raw = value / 5
    exp = 10 ** math.floor(math.log10(raw))
    step = next(m * exp for m in (1, 2, 5, 10) if m * exp >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    return [step * i for i in range(math.ceil(value / step - 1e-9) + 1)]


def _svg(chart_id: str, title: str, width: int, height: int, body: list[str]) -> Markup:
    return Markup(
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>")


def _empty(chart_id: str, title: str, width: int = 720, height: int = 120) -> Markup:
    return _svg(chart_id, title, width, height, [
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#f8fafc" stroke="#e2e8f0"/>',
        f'<text x="{width / 2}" y="{height / 2 + 5}" text-anchor="middle" class="muted">No data in this range</text>'])


def stacked_bars(chart_id: str, title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
                 colours: dict[str, str], fmt: Callable[[float], str] = integer) -> Markup:
    """One bar per label (a day), stacked by series (backends, risk tiers), with a legend."""
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    if not labels or not any(totals):
        return _empty(chart_id, title)
    width, left, right, top = 720, 56, 12, 12
    legend_rows = math.ceil(len(series) / 4)
    plot_h = 180
    height = top + plot_h + 28 + legend_rows * 20 + 6
    plot_w = width - left - right
    ticks = _ticks(max(totals), whole=fmt is integer)
    top_value = ticks[-1]
    slot = plot_w / len(labels)
    bar_w = max(2.0, min(48.0, slot * 0.72))
    axis = _axis_format(fmt, ticks)
    body = []
    for v in ticks:  # grid lines and y-axis labels
        y = top + plot_h - plot_h * v / top_value
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{escape(axis(v))}</text>')
    every = max(1, math.ceil(len(labels) / 12))
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        parts = []
        for name, values in series.items():
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / top_value
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                         f'fill="{colours[name]}"><title>{escape(label)} {escape(name)}: {escape(fmt(v))}</title>'
                         "</rect>")
        body.append(f'<g class="bar" data-label="{escape(label)}">' + "".join(parts) + "</g>")
        if i % every == 0:
            short = label[5:] if len(label) == 10 else label
            body.append(f'<text x="{left + slot * i + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                        f'class="axis">{escape(short)}</text>')
    body.append(_legend(list(series), colours, left, top + plot_h + 30))
    return _svg(chart_id, title, width, height, body)


def _legend(names: Sequence[str], colours: dict[str, str], x0: float, y0: float) -> str:
    out = []
    for i, name in enumerate(names):
        x = x0 + (i % 4) * 160
        y = y0 + (i // 4) * 20
        shown = name if len(name) <= 20 else name[:19] + "…"
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" rx="2" fill="{colours[name]}"/>'
                   f'<text x="{x + 18}" y="{y + 10}" class="legend">{escape(shown)}</text>')
    return '<g class="legend">' + "".join(out) + "</g>"


def hbars(chart_id: str, title: str, items: Sequence[tuple[str, float]], colours: dict[str, str],
          fmt: Callable[[float], str] = integer) -> Markup:
    """One horizontal bar per item (PII types, verdicts, block reasons), longest first."""
    items = [(k, v) for k, v in items if v > 0]
    if not items:
        return _empty(chart_id, title, height=80)
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    width, label_w, right, row = 720, 180, 90, 26
    height = 8 + row * len(items)
    top_value = max(v for _, v in items)
    plot_w = width - label_w - right
    body = []
    for i, (name, v) in enumerate(items):
        y = 6 + i * row
        w = max(2.0, plot_w * v / top_value)
        shown = name if len(name) <= 26 else name[:25] + "…"
        body.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">{escape(shown)}</text>'
                    f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="18" rx="2" '
                    f'fill="{colours.get(name, PALETTE[0])}"><title>{escape(name)}: {escape(fmt(v))}</title></rect>'
                    f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="value">{escape(fmt(v))}</text>')
    return _svg(chart_id, title, width, height, body)


def stage_bars(stages: Sequence[tuple[str, float]]) -> Markup:
    """The decision trace's stages as a waterfall: where the time of one request went."""
    stages = [(name, float(ms or 0)) for name, ms in stages]
    if not stages:
        return Markup("")
    width, label_w, right, row = 720, 110, 90, 22
    total = sum(ms for _, ms in stages) or 1.0
    plot_w = width - label_w - right
    body, x = [], 0.0
    for i, (name, ms) in enumerate(stages):
        y = 4 + i * row
        w = max(1.5, plot_w * ms / total)
        body.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" class="label">{escape(name)}</text>'
                    f'<rect x="{label_w + x:.1f}" y="{y + 2}" width="{w:.1f}" height="16" rx="2" '
                    f'fill="{PALETTE[i % len(PALETTE)]}"/>'
                    f'<text x="{label_w + x + w + 6:.1f}" y="{y + 14}" class="value">{ms:.2f} ms</text>')
        x += plot_w * ms / total
    return _svg("chart-stages", "Time per stage", width, 8 + row * len(stages), body)
