"""Bar charts as standalone SVG: the pictures of the governance report, with no plotting library behind them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

PALETTE = ("#3b6ea8", "#d1603d", "#6a9f58", "#8c6bb1", "#c9a227")


@dataclass(frozen=True)
class Series:
    """One series of values, one per label, stacked on the others."""

    name: str
    values: Sequence[float]
    color: str = ""


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str = "",
    width: int = 640,
    height: int = 300,
) -> str:
    """Stacked bars, one per label, with a y axis of round ticks and a legend when there are several series."""
    left, right, top, bottom = 56, 16, 40, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ceiling = _nice(max(totals, default=0) or 1)
    slot = plot_w / max(len(labels), 1)
    bar = slot * 0.7
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for tick in range(5):
        value = ceiling * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>')
    if y_label:
        parts.append(
            f'<text x="14" y="{top + plot_h / 2:.1f}" transform="rotate(-90 14 {top + plot_h / 2:.1f})"'
            f' text-anchor="middle">{escape(y_label)}</text>'
        )
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar) / 2
        base = float(top + plot_h)
        for n, s in enumerate(series):
            h = plot_h * s.values[i] / ceiling
            if h > 0:
                color = s.color or PALETTE[n % len(PALETTE)]
                parts.append(
                    f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                    f"<title>{escape(s.name)} {escape(label)}: {_short(s.values[i])}</title></rect>"
                )
                base -= h
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#555"/>')
    if len(series) > 1:
        x = left
        for n, s in enumerate(series):
            color = s.color or PALETTE[n % len(PALETTE)]
            parts.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{color}"/>')
            parts.append(f'<text x="{x + 14}" y="{height - 9}">{escape(s.name)}</text>')
            x += 24 + 7 * len(s.name)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    power = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"
