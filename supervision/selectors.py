"""Reads of the supervision pages and reports: sums of the daily aggregate tables only (never the
orders themselves), turned into the indicators of supervision.definitions."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Sum
from django.db.models.functions import TruncMonth

from booking import selectors as booking_selectors
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


def _month_rows(period: Period, hospital: Hospital | None):
    rows = HospitalDay.objects.filter(day__gte=period.start, day__lte=period.end)
    if hospital is not None:
        rows = rows.filter(hospital=hospital)
    return (
        rows.annotate(month=TruncMonth("day"))
        .values("hospital_id", "month")
        .annotate(**{name: Sum(name) for name in HOSPITAL_SUMS})
        .order_by()
    )


def overview(*, period: Period, hospital: Hospital | None = None) -> Overview:
    """The period's figures for the region (or one hospital), per hospital and per month.

    Read from HospitalDay grouped by hospital and month (one query), the entered capacity and visit
    totals, ChannelDay and ReferralDay: at most a few thousand rows for a year of the region.
    """
    capacity = {
        (c.hospital_id, c.month): c.capacity
        for c in OutpatientCapacity.objects.filter(month__gte=period.start.replace(day=1), month__lte=period.end)
        if hospital is None or c.hospital_id == hospital.pk
    }
    visits = {
        (v.hospital_id, v.month): v
        for v in OutpatientVisits.objects.filter(month__gte=period.start.replace(day=1), month__lte=period.end)
        if hospital is None or v.hospital_id == hospital.pk
    }
    total = Figures()
    per_hospital: dict[int, Figures] = defaultdict(Figures)
    per_month: dict[dt.date, Figures] = {month: Figures() for month in months_of(period)}
    seen = set()
    for row in _month_rows(period, hospital):
        key = (row["hospital_id"], row["month"])
        seen.add(key)
        extra = {}
        if key in capacity:
            extra["capacity"] = capacity[key]
            extra["published_capacity"] = row["published"]
        if key in visits:
            entered = visits[key]
            extra["outpatient_visits"] = entered.total_visits - entered.emergency_visits
            extra["appointment_visits"] = row["visited"] + entered.other_appointment_visits
        for figures in (total, per_hospital[row["hospital_id"]], per_month.setdefault(row["month"], Figures())):
            figures.add(row, HOSPITAL_SUMS)
            figures.add(extra, extra.keys())
    # Months with visits imported but no platform activity still count in the denominator.
    for (hospital_id, month), entered in visits.items():
        if (hospital_id, month) not in seen:
            extra = {
                "outpatient_visits": entered.total_visits - entered.emergency_visits,
                "appointment_visits": entered.other_appointment_visits,
            }
            for figures in (total, per_hospital[hospital_id], per_month.setdefault(month, Figures())):
                figures.add(extra, extra.keys())
    _add_referrals(period, hospital, total, per_hospital, per_month)
    names = {h.pk: h for h in Hospital.objects.filter(pk__in=per_hospital.keys())}
    hospitals = sorted(
        ((names[pk], figures) for pk, figures in per_hospital.items() if pk in names),
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


def _add_referrals(period, hospital, total, per_hospital, per_month) -> None:
    rows = ReferralDay.objects.filter(day__gte=period.start, day__lte=period.end)
    if hospital is not None:
        from django.db.models import Q

        rows = rows.filter(Q(sending=hospital) | Q(receiving=hospital))
    grouped = (
        rows.annotate(month=TruncMonth("day"))
        .values("month", "sending_id", "receiving_id", "direction")
        .annotate(**{name: Sum(name) for name in REFERRAL_SUMS})
        .order_by()
    )
    for row in grouped:
        # Up and down by the sending hospital; acceptance and kept bookings by the receiving one.
        sent = {"referral_up": row["submitted"] * (row["direction"] == "up")}
        sent["referral_down"] = row["submitted"] * (row["direction"] == "down")
        sent["referral_lateral"] = row["submitted"] * (row["direction"] in ("lateral", "unknown"))
        sent["referrals_sent"] = row["submitted"]
        received = {
            "referral_due": row["due"],
            "referrals_received": row["submitted"],
            "referrals_accepted": row["accepted"],
            "referrals_rejected": row["rejected"],
            "accepted_timely": row["accepted_timely"],
            "with_booking": row["with_booking"],
            "booking_kept": row["booking_kept"],
        }
        month_figures = per_month.setdefault(row["month"], Figures())
        for figures in (total, month_figures):
            if hospital is None or row["sending_id"] == hospital.pk:
                figures.add(sent, sent.keys())
            if hospital is None or row["receiving_id"] == hospital.pk:
                figures.add(received, received.keys())
        if hospital is None or row["sending_id"] == hospital.pk:
            per_hospital[row["sending_id"]].add(sent, sent.keys())
        if hospital is None or row["receiving_id"] == hospital.pk:
            per_hospital[row["receiving_id"]].add(received, received.keys())


def channel_figures(*, period: Period, hospital: Hospital | None = None) -> list[dict]:
    """Bookings, lock attempts and confirmed locks per booking channel (预约量 by channel)."""
    rows = ChannelDay.objects.filter(day__gte=period.start, day__lte=period.end)
    if hospital is not None:
        rows = rows.filter(hospital=hospital)
    grouped = (
        rows.values("channel_id", "channel__code", "channel__name")
        .annotate(bookings=Sum("bookings"), lock_attempts=Sum("lock_attempts"), locks_confirmed=Sum("locks_confirmed"))
        .order_by("channel__code")
    )
    result = []
    for row in grouped:
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
