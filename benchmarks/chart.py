"""The PNG chart of a run: CPU per request, closed-loop throughput and fixed-rate latency, as bar panels.

Each bar is a median over repetitions; the thin black line across its end spans the range (min–max).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.png import Canvas, Color
from benchmarks.stats import Spread
from benchmarks.summary import ModeSummary, Results

WIDTH = 1200
MARGIN = 16
LABEL_W = 270
VALUE_W = 150
BAR_H = 14
ROW_GAP = 10
TITLE_H = 48
INK: Color = (30, 30, 30)
GREY: Color = (200, 200, 200)
DARK: Color = (31, 94, 168)
LIGHT: Color = (120, 170, 225)
PALE: Color = (190, 215, 240)


@dataclass(frozen=True)
class Bar:
    spread: Spread
    color: Color
    scale: float = 1.0  # the value shown is median / scale
    digits: int = 0


@dataclass(frozen=True)
class Panel:
    title: str
    legend: list[tuple[str, Color]]
    rows: list[tuple[str, list[Bar]]]

    def height(self) -> int:
        return TITLE_H + sum(len(bars) * (BAR_H + 2) + ROW_GAP for _, bars in self.rows) + MARGIN


def _draw(canvas: Canvas, top: int, panel: Panel) -> None:
    canvas.text(MARGIN, top + 6, panel.title, INK)
    x = MARGIN
    for name, color in panel.legend:
        canvas.rect(x, top + 26, 12, 12, color)
        canvas.text(x + 20, top + 25, name, INK)
        x += 20 + Canvas.text_width(name) + 28
    peak = max((b.spread.high for _, bars in panel.rows for b in bars), default=1.0) or 1.0
    plot_w = WIDTH - LABEL_W - VALUE_W - 2 * MARGIN
    y = top + TITLE_H
    for label, bars in panel.rows:
        canvas.text(MARGIN, y + (len(bars) * (BAR_H + 2) - 14) // 2, label[:22], INK)
        for bar in bars:
            left = MARGIN + LABEL_W
            canvas.rect(left, y, max(1, round(bar.spread.median / peak * plot_w)), BAR_H, bar.color)
            lo, hi = (left + round(v / peak * plot_w) for v in (bar.spread.low, bar.spread.high))
            canvas.rect(lo, y + BAR_H // 2 - 1, max(1, hi - lo), 2, INK)
            canvas.rect(lo, y + 2, 2, BAR_H - 4, INK)
            canvas.rect(hi - 1, y + 2, 2, BAR_H - 4, INK)
            value = f"{bar.spread.median / bar.scale:,.{bar.digits}f}"
            canvas.text(hi + 8, y, value, INK)
            y += BAR_H + 2
        y += ROW_GAP
    canvas.rect(MARGIN + LABEL_W, top + TITLE_H - 4, 1, y - top - TITLE_H, GREY)


def _rows(r: Results, mode: str, pick: list[tuple[str, Color, float, int]]) -> list[tuple[str, list[Bar]]]:
    rows: list[tuple[str, list[Bar]]] = []
    for scenario in r.scenarios:
        summary = r.summary(scenario.name, mode)
        if summary is None:
            continue
        bars = [Bar(s, color, scale, digits) for field, color, scale, digits in pick if (s := _get(summary, field))]
        if bars:
            rows.append((scenario.name, bars))
    return rows


def _get(summary: ModeSummary, field: str) -> Spread | None:
    value = getattr(summary, field)
    return value if isinstance(value, Spread) else None


def _cpu_rows(r: Results) -> list[tuple[str, list[Bar]]]:
    rows: list[tuple[str, list[Bar]]] = []
    for scenario in r.scenarios:
        bars = [
            Bar(m.proxy_cpu_us, color, 1.0, 1)
            for mode, color in (("closed", DARK), ("fixed", LIGHT))
            if (m := r.summary(scenario.name, mode)) and m.proxy_cpu_us
        ]
        if bars:
            rows.append((scenario.name, bars))
    return rows


def panels(r: Results) -> list[Panel]:
    """The panels that have data."""
    found = [
        Panel(
            "CPU PER REQUEST OF THE PROXY PROCESSES, µS (LOWER IS BETTER)",
            [("CLOSED LOOP", DARK), ("FIXED RATE", LIGHT)],
            _cpu_rows(r),
        ),
        Panel("THROUGHPUT, CLOSED LOOP, REQ/S", [("REQ/S", DARK)], _rows(r, "closed", [("rps", DARK, 1.0, 0)])),
    ]
    if r.fixed_rate:
        latency = [("p50_us", PALE, 1000.0, 2), ("p99_us", LIGHT, 1000.0, 2), ("p999_us", DARK, 1000.0, 2)]
        legend = [("P50", PALE), ("P99", LIGHT), ("P99.9", DARK)]
        found.append(Panel(f"LATENCY AT {r.fixed_rate:,.0f} REQ/S OFFERED, MS", legend, _rows(r, "fixed", latency)))
    return [p for p in found if p.rows]


def render(r: Results) -> bytes:
    """The chart as PNG bytes."""
    chosen = panels(r)
    height = 2 * MARGIN + 30 + sum(p.height() for p in chosen)
    canvas = Canvas(WIDTH, height)
    canvas.text(MARGIN, MARGIN, "SLUICEGATE BENCHMARK: MEDIAN OF REPETITIONS, LINE = MIN-MAX", INK, scale=2)
    top = MARGIN + 30
    for panel in chosen:
        _draw(canvas, top, panel)
        top += panel.height()
    return canvas.png()
