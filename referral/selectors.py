"""Reads for referral pages, the admin and the statistics; and the bridge to booking data."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from booking.models import Order, Schedule
from referral.models import Referral
from regional.models import Department, Hospital
from regional.services import pinyin_abbr

LEVEL_LABELS = {3: "三级", 2: "二级", 1: "一级", 0: "级别未知"}


# -- choices on the application form ---------------------------------------------------------------


def hospital_choices(*, exclude: Hospital | None = None) -> list[dict]:
    """Hospitals a referral may go to, with pinyin initials for searching (`测试第二医院` → `CSDEYY`)."""
    hospitals = Hospital.objects.filter(is_deleted=False).order_by("seq_no", "hospital_no")
    if exclude is not None:
        hospitals = hospitals.exclude(pk=exclude.pk)
    return [
        {
            "hospital_no": h.hospital_no,
            "name": h.name,
            "abbr": pinyin_abbr(h.short_name or h.name) + " " + pinyin_abbr(h.name),
            "level": LEVEL_LABELS.get(h.level, ""),
        }
        for h in hospitals
    ]


def department_search(*, hospital: Hospital, q: str = "", limit: int = 100) -> list[dict]:
    """A hospital's departments matching `q` by name, code or pinyin initials (`xnk` → 心内科)."""
    departments = Department.objects.filter(hospital=hospital, is_deleted=False)
    q = (q or "").strip()
    if q:
        departments = departments.filter(
            Q(name__icontains=q)
            | Q(name_abbr__icontains=q)
            | Q(department_id__iexact=q)
            | Q(professional_abbr__icontains=q)
        )
    return [
        {"id": d.department_id, "name": d.name, "abbr": d.name_abbr}
        for d in departments.order_by("seq_no", "department_id")[:limit]
    ]


# -- booking (the booking service owns schedules; referral only reads them) ------------------------


def _schedules(*, hospital: Hospital, department_code: str) -> QuerySet[Schedule]:
    return Schedule.objects.filter(hospital=hospital, department__department_id=department_code).order_by(
        "work_date", "pk"
    )


def booking_schedule_for(
    *, hospital: Hospital, date: dt.date, department_code: str, slot_id: str = ""
) -> Schedule | None:
    """The platform's booking Schedule a referral's `bespeak` refers to: same hospital, date and
    department (the one whose WorkId equals the slot id when there is one). None when nothing
    matches; a failed look-up never fails the referral that asks."""
    try:
        with transaction.atomic():  # a savepoint: a failed query must not break the caller's transaction
            schedules = _schedules(hospital=hospital, department_code=department_code).filter(work_date=date)
            if slot_id:
                exact = schedules.filter(work_id=slot_id).first()
                if exact is not None:
                    return exact
            return schedules.first()
    except DatabaseError:
        return None


def booking_schedules_for(
    *, hospital: Hospital | None, department_code: str, limit: int = 20, bookable: bool = False
) -> list[Schedule]:
    """Upcoming schedules of a department for the receiving hospital's notice; with `bookable`
    only those one may book now (正常, not over, numbers left), offered when accepting."""
    if hospital is None or not department_code:
        return []
    schedules = _schedules(hospital=hospital, department_code=department_code).filter(
        work_date__gte=timezone.localdate()
    )
    if bookable:
        schedules = schedules.filter(status=Schedule.NORMAL, remaining__gt=0).not_over()
    return list(schedules.select_related("doctor")[:limit])


def referral_order(*, referral: Referral):
    """The booking made when the referral was accepted (booking.models.Order), or None."""
    if not referral.booking_order_id:
        return None
    return (
        Order.objects.select_related("schedule__doctor", "schedule__department")
        .filter(pk=referral.booking_order_id)
        .first()
    )


# -- overdue and statistics -------------------------------------------------------------------------


def pending_limit() -> dt.timedelta:
    """How long a submitted referral may wait for the receiving hospital (REFERRAL_PENDING_HOURS, default 48)."""
    return dt.timedelta(hours=float(getattr(settings, "REFERRAL_PENDING_HOURS", 48)))


def overdue_referrals(*, now: dt.datetime | None = None) -> QuerySet[Referral]:
    """Submitted referrals waiting longer than REFERRAL_PENDING_HOURS (the admin's overdue list)."""
    now = now or timezone.now()
    return Referral.objects.filter(status=Referral.Status.SUBMITTED, submitted_at__lt=now - pending_limit())


def _hours(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds() / 3600


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


@dataclass
class PairMonth:
    """Referrals submitted in one month from one hospital to another."""

    month: dt.date
    sending: str
    receiving: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    arrived: int = 0
    completed: int = 0
    cancelled: int = 0
    to_accept: list[float] = field(default_factory=list, repr=False)
    to_arrive: list[float] = field(default_factory=list, repr=False)
    to_arrive_total: list[float] = field(default_factory=list, repr=False)

    @property
    def median_accept_hours(self) -> float | None:
        return _median(self.to_accept)

    @property
    def median_arrive_hours(self) -> float | None:
        return _median(self.to_arrive)

    @property
    def median_total_hours(self) -> float | None:
        return _median(self.to_arrive_total)


def referral_statistics(*, date_from: dt.date, date_to: dt.date, hospital: Hospital | None = None) -> list[PairMonth]:
    """Counts and median times (submitted → accepted → arrived) per hospital pair and month, over
    referrals submitted between the two dates (inclusive, local time)."""
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    rows = Referral.objects.filter(submitted_at__gte=start, submitted_at__lt=end, receiving_hospital__isnull=False)
    if hospital is not None:
        rows = rows.filter(Q(sending_hospital=hospital) | Q(receiving_hospital=hospital))
    groups: dict[tuple, PairMonth] = {}
    for sending, receiving, submitted, accepted, arrived, completed, rejected, cancelled in rows.values_list(
        "sending_hospital__name",
        "receiving_hospital__name",
        "submitted_at",
        "accepted_at",
        "arrived_at",
        "completed_at",
        "rejected_at",
        "cancelled_at",
    ).iterator(chunk_size=2000):
        month = timezone.localtime(submitted, tz).date().replace(day=1)
        key = (month, sending, receiving)
        group = groups.get(key) or groups.setdefault(key, PairMonth(month, sending, receiving))
        group.sent += 1
        group.accepted += accepted is not None
        group.rejected += rejected is not None
        group.arrived += arrived is not None
        group.completed += completed is not None
        group.cancelled += cancelled is not None
        for bucket, value in (
            (group.to_accept, _hours(submitted, accepted)),
            (group.to_arrive, _hours(accepted, arrived)),
            (group.to_arrive_total, _hours(submitted, arrived)),
        ):
            if value is not None:
                bucket.append(value)
    return sorted(groups.values(), key=lambda g: (g.month, g.sending, g.receiving))


def monthly_totals(rows: list[PairMonth]) -> list[dict]:
    """Per month: sent, accepted and arrived over all pairs, with bar widths for the chart."""
    months: dict[dt.date, dict] = {}
    for row in rows:
        m = months.setdefault(row.month, {"month": row.month, "sent": 0, "accepted": 0, "arrived": 0})
        m["sent"] += row.sent
        m["accepted"] += row.accepted
        m["arrived"] += row.arrived
    peak = max((m["sent"] for m in months.values()), default=0) or 1
    result = []
    for m in sorted(months.values(), key=lambda m: m["month"]):
        for key in ("sent", "accepted", "arrived"):
            m[f"{key}_pct"] = round(100 * m[key] / peak, 1)
        result.append(m)
    return result
