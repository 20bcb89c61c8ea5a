"""Reads of the supervision pages and reports: sums of the daily aggregate tables only (never the
orders themselves), turned into the indicators of supervision.definitions."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Sum

from booking import selectors as booking_selectors
from booking.models import Channel
from regional.models import Hospital
from supervision.definitions import DOCTOR_LEVEL, INDICATORS, Indicator
from supervision.models import (
    COUNTER_FIELDS,
    LATENCY_BUCKETS_MS,
    LATENCY_FIELDS,
    ChannelDay,
    DoctorDay,
    HospitalDay,
    OutpatientCapacity,
    OutpatientVisits,
    ReferralDay,
)

HOSPITAL_SUMS = [*COUNTER_FIELDS, "calls_out", "calls_out_answered", "messages_in", "messages_refused", *LATENCY_FIELDS]
REFERRAL_SUMS = ["submitted", "due", "accepted", "accepted_timely", "rejected", "with_booking", "booking_kept"]


# -- periods ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A day, a month or a year (inclusive bounds) and its label."""

    grain: str
    start: dt.date
    end: dt.date

    @property
    def label(self) -> str:
        if self.grain == "year":
            return f"{self.start:%Y}年"
        if self.grain == "month":
            return f"{self.start.year}年{self.start.month}月"
        if self.grain == "day":
            return f"{self.start:%Y-%m-%d}"
        return f"{self.start:%Y-%m-%d}至{self.end:%Y-%m-%d}"

    @property
    def value(self) -> str:
        return {"year": f"{self.start:%Y}", "month": f"{self.start:%Y-%m}", "day": f"{self.start:%Y-%m-%d}"}.get(
            self.grain, f"{self.start:%Y-%m-%d}~{self.end:%Y-%m-%d}"
        )


def period_of(grain: str, value: str = "", *, today: dt.date | None = None) -> Period:
    """`month`/`2026-11`, `year`/`2026`, `day`/`2026-11-05`; empty: the current one. ValueError if malformed."""
    today = today or dt.date.today()
    if grain == "year":
        year = int(value) if value else today.year
        return Period("year", dt.date(year, 1, 1), dt.date(year, 12, 31))
    if grain == "day":
        day = dt.date.fromisoformat(value) if value else today
        return Period("day", day, day)
    if grain == "month":
        year, month = (int(part) for part in value.split("-")) if value else (today.year, today.month)
        return Period("month", dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1]))
    raise ValueError(grain)


def months_of(period: Period) -> list[dt.date]:
    months, month = [], period.start.replace(day=1)
    while month <= period.end:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


# -- figures ------------------------------------------------------------------------------------------------


def p95_from(counters: dict) -> int | None:
    """The upper bound of the latency bucket holding the 95th percentile of answered calls."""
    counts = [counters.get(name) or 0 for name in LATENCY_FIELDS]
    total = sum(counts)
    if not total:
        return None
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running * 100 >= total * 95:
            return LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else LATENCY_BUCKETS_MS[-1] + 1
    return None


def counter(counters: dict, name: str):
    if name == "due":
        # Orders due at the clinic (definitions.ORDER_FIGURES["due"]): bookings not cancelled.
        return (counters.get("bookings") or 0) - (counters.get("cancelled") or 0) - (counters.get("stop_affected") or 0)
    return counters.get(name) or 0


def value_of(indicator: Indicator, counters: dict) -> float | int | None:
    if indicator.code == "latency_p95":
        return p95_from(counters)
    numerator = counter(counters, indicator.numerator)
    if indicator.denominator is None:
        return round(numerator, 1) if isinstance(numerator, float) else numerator
    denominator = counter(counters, indicator.denominator)
    if not denominator:
        return None
    if indicator.unit == "%":
        return round(100 * numerator / denominator, 1)
    return round(numerator / denominator, 1)


def display(indicator: Indicator, value) -> str:
    if value is None:
        return "—"
    if indicator.unit == "%":
        return f"{value:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return f"{value:,}"


@dataclass
class Figures:
    """The summed counters of one scope (region, hospital, department, doctor, month) and its indicators."""

    counters: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, row: dict, names) -> None:
        for name in names:
            self.counters[name] += row.get(name) or 0

    def value(self, code: str):
        from supervision.definitions import BY_CODE

        return value_of(BY_CODE[code], self.counters)

    def values(self, indicators=INDICATORS) -> dict[str, float | int | None]:
        return {i.code: value_of(i, self.counters) for i in indicators}


@dataclass
class Overview:
    """Everything the dashboard and the monthly report show for one period and scope."""

    period: Period
    hospital: Hospital | None
    total: Figures
    hospitals: list[tuple[Hospital, Figures]]
    months: list[tuple[dt.date, Figures]]
    channels: list[dict]
    flows: list[dict]


def _raw_sums(table: str, keys: list[str], sums: list[str], where: str, params: list) -> list[tuple]:
    """Grouped sums by month straight from the cursor: the ORM's per-value converters (Decimal to
    int for each SUM, timestamps to dates) took more time than the query itself on a year of the
    region. Names come from the models, never from the request; values are parameters."""
    if connection.vendor == "postgresql":
        month = "DATE_TRUNC('month', day)::date"
        columns = [f"SUM({name})::bigint" if name != "stop_notice_hours" else f"SUM({name})" for name in sums]
    else:
        month = "DATE(day, 'start of month')"
        columns = [f"SUM({name})" for name in sums]
    sql = (
        f"SELECT {month}, {', '.join(keys)}, {', '.join(columns)} FROM {table} WHERE {where} "
        f"GROUP BY {month}, {', '.join(keys)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if connection.vendor != "postgresql":
        rows = [(dt.date.fromisoformat(row[0]) if isinstance(row[0], str) else row[0], *row[1:]) for row in rows]
    return rows


def _month_rows(period: Period, hospital: Hospital | None) -> list[tuple]:
    """(month, hospital_id, *HOSPITAL_SUMS) per hospital and month of the period."""
    where, params = "day >= %s AND day <= %s", [period.start, period.end]
    if hospital is not None:
        where, params = f"{where} AND hospital_id = %s", [*params, hospital.pk]
    return [
        (row[1], row[0], *(value or 0 for value in row[2:]))
        for row in _raw_sums(HospitalDay._meta.db_table, ["hospital_id"], HOSPITAL_SUMS, where, params)
    ]


def _sum_into(target: dict, key, values: list) -> None:
    current = target.get(key)
    target[key] = values if current is None else [a + b for a, b in zip(current, values, strict=True)]


def overview(*, period: Period, hospital: Hospital | None = None) -> Overview:
    """The period's figures for the region (or one hospital), per hospital and per month.

    Read from HospitalDay grouped by hospital and month (one query, summed on in Python as plain
    lists), the entered capacity and visit totals, ChannelDay and ReferralDay: a few thousand rows
    for a year of the region.
    """
    month_from = period.start.replace(day=1)
    capacity_rows = OutpatientCapacity.objects.filter(month__gte=month_from, month__lte=period.end)
    visit_rows = OutpatientVisits.objects.filter(month__gte=month_from, month__lte=period.end)
    if hospital is not None:
        capacity_rows, visit_rows = capacity_rows.filter(hospital=hospital), visit_rows.filter(hospital=hospital)
    capacity = {(h, m): c for h, m, c in capacity_rows.values_list("hospital_id", "month", "capacity")}
    visits = {
        (h, m): (total - emergency, other)
        for h, m, total, emergency, other in visit_rows.values_list(
            "hospital_id", "month", "total_visits", "emergency_visits", "other_appointment_visits"
        )
    }
    published, visited = HOSPITAL_SUMS.index("published"), HOSPITAL_SUMS.index("visited")
    by_hospital: dict[int, list] = {}
    by_month: dict[dt.date, list] = {}
    extras: dict[tuple[str, object], dict] = defaultdict(lambda: defaultdict(int))
    seen = set()
    for hospital_id, month, *values in _month_rows(period, hospital):
        _sum_into(by_hospital, hospital_id, values)
        _sum_into(by_month, month, values)
        key = (hospital_id, month)
        seen.add(key)
        extra = {}
        if key in capacity:
            # 投放率 counts only the months with capacity entered (definitions).
            extra = {"capacity": capacity[key], "published_capacity": values[published]}
        if key in visits:
            extra["outpatient_visits"] = visits[key][0]
            extra["appointment_visits"] = values[visited] + visits[key][1]
        for scope in (("h", hospital_id), ("m", month), ("t", None)):
            for name, value in extra.items():
                extras[scope][name] += value
    # Months with visits imported but no platform activity still count in the denominator.
    for (hospital_id, month), (outpatient, other) in visits.items():
        if (hospital_id, month) not in seen:
            for scope in (("h", hospital_id), ("m", month), ("t", None)):
                extras[scope]["outpatient_visits"] += outpatient
                extras[scope]["appointment_visits"] += other

    def figures(values: list | None, scope) -> Figures:
        result = Figures()
        if values is not None:
            result.counters.update(zip(HOSPITAL_SUMS, values, strict=True))
        result.counters.update(extras.get(scope, {}))
        return result

    total_values = None
    for values in by_month.values():
        total_values = values if total_values is None else [a + b for a, b in zip(total_values, values, strict=True)]
    total = figures(total_values, ("t", None))
    per_hospital = {pk: figures(values, ("h", pk)) for pk, values in by_hospital.items()}
    per_month = {month: figures(by_month.get(month), ("m", month)) for month in months_of(period)}
    for hospital_id, _month in visits:
        per_hospital.setdefault(hospital_id, figures(None, ("h", hospital_id)))
    _add_referrals(period, hospital, total, per_hospital, per_month)
    names = {h.pk: h for h in Hospital.objects.filter(pk__in=per_hospital.keys())}
    hospitals = sorted(
        ((names[pk], f) for pk, f in per_hospital.items() if pk in names),
        key=lambda item: (item[0].seq_no is None, item[0].seq_no or 0, item[0].hospital_no),
    )
    return Overview(
        period=period,
        hospital=hospital,
        total=total,
        hospitals=hospitals,
        months=sorted(per_month.items()),
        channels=channel_figures(period=period, hospital=hospital),
        flows=referral_flows(period=period, hospital=hospital),
    )


def _add_referrals(period, hospital, total, per_hospital: dict, per_month: dict) -> None:
    where, params = "day >= %s AND day <= %s", [period.start, period.end]
    if hospital is not None:
        where, params = f"{where} AND (sending_id = %s OR receiving_id = %s)", [*params, hospital.pk, hospital.pk]
    keys = ["sending_id", "receiving_id", "direction"]
    for month, sending_id, receiving_id, direction, *values in _raw_sums(
        ReferralDay._meta.db_table, keys, REFERRAL_SUMS, where, params
    ):
        row = dict(zip(REFERRAL_SUMS, (v or 0 for v in values), strict=True))
        # Up and down by the sending hospital; acceptance and kept bookings by the receiving one.
        sent = {
            "referral_up": row["submitted"] if direction == "up" else 0,
            "referral_down": row["submitted"] if direction == "down" else 0,
            "referral_lateral": row["submitted"] if direction in ("lateral", "unknown") else 0,
            "referrals_sent": row["submitted"],
        }
        received = {
            "referral_due": row["due"],
            "referrals_received": row["submitted"],
            "referrals_accepted": row["accepted"],
            "referrals_rejected": row["rejected"],
            "accepted_timely": row["accepted_timely"],
            "with_booking": row["with_booking"],
            "booking_kept": row["booking_kept"],
        }
        month_figures = per_month.setdefault(month, Figures())
        if hospital is None or sending_id == hospital.pk:
            for figures in (total, month_figures, per_hospital.setdefault(sending_id, Figures())):
                figures.add(sent, sent.keys())
        if hospital is None or receiving_id == hospital.pk:
            for figures in (total, month_figures, per_hospital.setdefault(receiving_id, Figures())):
                figures.add(received, received.keys())


def channel_figures(*, period: Period, hospital: Hospital | None = None) -> list[dict]:
    """Bookings, lock attempts and confirmed locks per booking channel (预约量 by channel)."""
    rows = ChannelDay.objects.filter(day__gte=period.start, day__lte=period.end)
    if hospital is not None:
        rows = rows.filter(hospital=hospital)
    grouped = (
        rows.values("channel_id")
        .annotate(bookings=Sum("bookings"), lock_attempts=Sum("lock_attempts"), locks_confirmed=Sum("locks_confirmed"))
        .order_by()
    )
    names = {c.pk: c for c in Channel.objects.all()}
    result = []
    for row in sorted(grouped, key=lambda r: names[r["channel_id"]].code):
        row["channel__code"], row["channel__name"] = names[row["channel_id"]].code, names[row["channel_id"]].name
        attempts = row["lock_attempts"] or 0
        row["success_rate"] = round(100 * row["locks_confirmed"] / attempts, 1) if attempts else None
        result.append(row)
    return result


def referral_flows(*, period: Period, hospital: Hospital | None = None) -> list[dict]:
    """Referrals per (sending, receiving) pair with the hospitals' names and levels, largest first."""
    rows = ReferralDay.objects.filter(day__gte=period.start, day__lte=period.end)
    if hospital is not None:
        from django.db.models import Q

        rows = rows.filter(Q(sending=hospital) | Q(receiving=hospital))
    grouped = (
        rows.values("sending_id", "sending__name", "receiving_id", "receiving__name", "direction")
        .annotate(submitted=Sum("submitted"), accepted=Sum("accepted"))
        .order_by("-submitted", "sending__name", "receiving__name")
    )
    return list(grouped)


def breakdown(*, hospital: Hospital, period: Period, by: str) -> list[tuple[str, int, Figures]]:
    """A hospital's figures per department (`by="department"`) or doctor (`by="doctor"`), from DoctorDay."""
    rows = DoctorDay.objects.filter(hospital=hospital, day__gte=period.start, day__lte=period.end)
    if by == "doctor":
        keys = ("doctor_id", "doctor__name", "department__name")
    else:
        keys = ("department_id", "department__name")
    grouped = rows.values(*keys).annotate(**{name: Sum(name) for name in COUNTER_FIELDS}).order_by(*keys[1:])
    result = []
    for row in grouped:
        figures = Figures()
        figures.add(row, COUNTER_FIELDS)
        label = f"{row['doctor__name']}（{row['department__name']}）" if by == "doctor" else row["department__name"]
        result.append((label, row[keys[0]], figures))
    return result


def daily(*, period: Period, hospital: Hospital | None = None) -> list[tuple[dt.date, Figures]]:
    """Per day of the period (the day grain of the trend)."""
    rows = HospitalDay.objects.filter(day__gte=period.start, day__lte=period.end)
    if hospital is not None:
        rows = rows.filter(hospital=hospital)
    grouped = rows.values("day").annotate(**{name: Sum(name) for name in HOSPITAL_SUMS}).order_by("day")
    result = []
    for row in grouped:
        figures = Figures()
        figures.add(row, HOSPITAL_SUMS)
        result.append((row["day"], figures))
    return result


def hospitals() -> list[Hospital]:
    return list(booking_selectors.hospitals())


DOCTOR_INDICATORS = DOCTOR_LEVEL
