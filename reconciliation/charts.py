"""Server-rendered charts (SVG, no script, no CDN): the monthly summary's bars."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 40


def _nice_ceiling(value: Decimal) -> Decimal:
    """A round upper bound for the axis: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return Decimal("1")
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        bound = Decimal(step).scaleb(exponent)
        if bound >= value:
            return bound
    return Decimal(10).scaleb(exponent + 1)  # pragma: no cover


def monthly_bars(months: list[dict]) -> dict:
    """Geometry of grouped bars (paid, refunded) and net points per month, for the template.

    `months`: twelve dicts with `label`, `paid`, `refunded`, `net` (Decimal).
    """
    top = _nice_ceiling(max([m["paid"] for m in months] + [m["refunded"] for m in months] + [Decimal("0")]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(months), 1)
    bar = slot * 0.35

    def y(value: Decimal) -> float:
        return TOP + plot_h - float(value / top) * plot_h

    groups, points = [], []
    for i, m in enumerate(months):
        x = LEFT + i * slot + slot * 0.12
        groups.append(
            {
                "label": m["label"],
                "label_x": round(LEFT + i * slot + slot / 2, 1),
                "paid": {"x": round(x, 1), "y": round(y(m["paid"]), 1), "h": round(TOP + plot_h - y(m["paid"]), 1)},
                "refunded": {
                    "x": round(x + bar, 1),
                    "y": round(y(m["refunded"]), 1),
                    "h": round(TOP + plot_h - y(m["refunded"]), 1),
                },
                "paid_value": m["paid"],
                "refunded_value": m["refunded"],
                "net_value": m["net"],
            }
        )
        points.append(f"{LEFT + i * slot + slot / 2:.1f},{y(max(m['net'], Decimal('0'))):.1f}")
    ticks = []
    for k in range(5):
        value = (top * k / 4).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
        ticks.append({"y": round(y(value), 1), "label": f"{value:,.0f}" if top >= 100 else f"{value:.2f}"})
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "base": TOP + plot_h,
        "bar": round(bar, 1),
        "groups": groups,
        "net_points": " ".join(points),
        "ticks": ticks,
        "legend_y": HEIGHT - 8,
    }
