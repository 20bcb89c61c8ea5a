"""Server-rendered SVG charts (no JavaScript, no CDN: hospital networks are often offline, and the
same markup prints): a monthly trend, a ranking of hospitals and the referral flow."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

FONT = 'font-family="sans-serif" font-size="12"'
DIRECTION_COLOURS = {"up": "#c0392b", "down": "#27ae60", "lateral": "#7f8c8d", "unknown": "#95a5a6"}
DIRECTION_LABELS = {"up": "上转", "down": "下转", "lateral": "平级", "unknown": "级别未知"}


def _number(value: float) -> str:
    return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


def trend(points: list[tuple[str, float | None]], *, title: str, unit: str = "", width: int = 640) -> SafeString:
    """A line chart of one indicator by month (or day); a missing value breaks the line."""
    height, left, right, top, bottom = 220, 50, 16, 28, 36
    values = [v for _label, v in points if v is not None]
    peak = max(values, default=0) or 1
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(points) - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" class="sv-chart">',
        f'<text x="{left}" y="16" {FONT} font-weight="bold">{escape(title)}{escape(f"（{unit}）" if unit else "")}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" {FONT} text-anchor="end">{_number(peak * fraction)}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
    segment: list[str] = []
    every = max(1, len(points) // 12)
    for index, (label, value) in enumerate(points):
        x = left + index * step
        if index % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 14}" {FONT} text-anchor="middle">{escape(label)}</text>')
        if value is None:
            if len(segment) > 1:
                parts.append(f'<polyline fill="none" stroke="#2c7be5" stroke-width="2" points="{" ".join(segment)}"/>')
            segment = []
            continue
        y = top + plot_h * (1 - value / peak)
        segment.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2c7be5"><title>{escape(label)}：{_number(value)}'
            f"{escape(unit)}</title></circle>"
        )
    if len(segment) > 1:
        parts.append(f'<polyline fill="none" stroke="#2c7be5" stroke-width="2" points="{" ".join(segment)}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped above


def ranking(items: list[tuple[str, float]], *, title: str, unit: str = "", width: int = 640) -> SafeString:
    """Horizontal bars, largest first (the caller limits the number of bars)."""
    bar, gap, left, top = 16, 6, 170, 28
    height = top + len(items) * (bar + gap) + 10
    peak = max((v for _label, v in items), default=0) or 1
    plot_w = width - left - 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" class="sv-chart">',
        f'<text x="0" y="16" {FONT} font-weight="bold">{escape(title)}{escape(f"（{unit}）" if unit else "")}</text>',
    ]
    for index, (label, value) in enumerate(items):
        y = top + index * (bar + gap)
        w = max(plot_w * value / peak, 1)
        short = label if len(label) <= 12 else label[:11] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + 12}" {FONT} text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="#2c7be5"><title>{escape(label)}：'
            f"{_number(value)}{escape(unit)}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}" {FONT}>{_number(value)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped above


def flow(flows: list[dict], *, title: str = "转诊流向", width: int = 640, limit: int = 30) -> SafeString:
    """Sending hospitals on the left, receiving on the right, one band per pair (width by count,
    colour by direction)."""
    flows = [f for f in flows if f["submitted"]][:limit]
    senders = list(dict.fromkeys(f["sending__name"] for f in flows))
    receivers = list(dict.fromkeys(f["receiving__name"] for f in flows))
    row, top = 24, 40
    height = top + max(len(senders), len(receivers), 1) * row + 30
    left_x, right_x = 180, width - 180
    peak = max((f["submitted"] for f in flows), default=1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" class="sv-chart">',
        f'<text x="0" y="16" {FONT} font-weight="bold">{escape(title)}</text>',
        f'<text x="{left_x}" y="32" {FONT} text-anchor="end">转出医院</text>',
        f'<text x="{right_x}" y="32" {FONT}>转入医院</text>',
    ]
    for index, name in enumerate(senders):
        short = name if len(name) <= 12 else name[:11] + "…"
        parts.append(
            f'<text x="{left_x - 6}" y="{top + index * row + 4}" {FONT} text-anchor="end">{escape(short)}</text>'
        )
    for index, name in enumerate(receivers):
        short = name if len(name) <= 12 else name[:11] + "…"
        parts.append(f'<text x="{right_x + 6}" y="{top + index * row + 4}" {FONT}>{escape(short)}</text>')
    for item in flows:
        y1 = top + senders.index(item["sending__name"]) * row
        y2 = top + receivers.index(item["receiving__name"]) * row
        stroke = 2 + 10 * item["submitted"] / peak
        colour = DIRECTION_COLOURS.get(item["direction"], "#95a5a6")
        mid = (left_x + right_x) / 2
        label = (
            f"{item['sending__name']} → {item['receiving__name']}："
            f"{DIRECTION_LABELS.get(item['direction'], '')}{item['submitted']}例，已接收{item['accepted']}例"
        )
        parts.append(
            f'<path d="M{left_x},{y1} C{mid},{y1} {mid},{y2} {right_x},{y2}" fill="none" stroke="{colour}" '
            f'stroke-opacity="0.6" stroke-width="{stroke:.1f}"><title>{escape(label)}</title></path>'
        )
    legend_y = height - 10
    for index, (code, label) in enumerate(DIRECTION_LABELS.items()):
        x = index * 90
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="12" height="10" fill="{DIRECTION_COLOURS[code]}"/>')
        parts.append(f'<text x="{x + 16}" y="{legend_y}" {FONT}>{label}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped above
