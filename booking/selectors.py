"""Reads for the channels' REST API and the metrics: querysets filtered on indexed columns only."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from booking.errors import OrderNotFound, ScheduleNotFound
from booking.models import Channel, Order, OutboxMessage, PatientNotification, Schedule, WaitlistEntry
from regional import idnumber
from regional.errors import InvalidInput
from regional.messages import Violation
from regional.models import Department, Doctor, Hospital
from regional.observability import register_gauge
from regional.pii import lookup_hash


def hospitals() -> QuerySet[Hospital]:
    return Hospital.objects.filter(is_deleted=False).order_by("seq_no", "hospital_no")


def departments(*, hospital: Hospital) -> QuerySet[Department]:
    return Department.objects.filter(hospital=hospital, is_deleted=False).order_by("seq_no", "department_id")


def doctors(*, hospital_no: str = "", department_id: str = "", q: str = "") -> QuerySet[Doctor]:
    """Doctors by hospital, department and a name or pinyin-initials search (`张` or `ZSF`)."""
    query = Doctor.objects.filter(is_deleted=False).select_related("hospital", "department")
    if hospital_no:
        query = query.filter(hospital__hospital_no=hospital_no)
    if department_id:
        query = query.filter(department__department_id=department_id)
    q = (q or "").strip()
    if q:
        # Abbreviations are stored upper-case (regional.services.pinyin_abbr): a prefix match.
        query = query.filter(Q(name__contains=q) | Q(name_abbr__startswith=q.upper()))
    return query.order_by("hospital_id", "seq_no", "id")


def schedules(
    *, hospital_no: str = "", department_id: str = "", doctor_id: str = "", date: str = ""
) -> QuerySet[Schedule]:
    """Bookable-looking sessions (normal and stopped, so a channel can show 停诊), from today on or
    on one date; withdrawn and changed ones are left out (their orders moved or the hospital dropped them)."""
    query = Schedule.objects.select_related("hospital", "department", "doctor").filter(
        status__in=[Schedule.NORMAL, Schedule.STOPPED]
    )
    if date:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise InvalidInput([Violation("date", "格式应为yyyy-mm-dd")]) from None
        query = query.filter(work_date=day)
    else:
        query = query.filter(work_date__gte=timezone.localdate())
    if hospital_no:
        query = query.filter(hospital__hospital_no=hospital_no)
    # Through the foreign keys, so that the (department, work_date) and (doctor, work_date) indexes serve.
    # With the hospital given, its department or doctor is resolved to one row first: department ids
    # such as K01 recur in every hospital, and joining on the code alone made the planner walk the
    # index once per hospital sharing it (34 loops, 9 ms on 340,000 schedules; bench/bench_browse.py).
    if department_id:
        if hospital_no:
            own = Department.objects.filter(hospital__hospital_no=hospital_no, department_id=department_id)
            query = query.filter(department_id__in=own.values("pk"))
        else:
            query = query.filter(department__department_id=department_id)
    if doctor_id:
        if hospital_no:
            own = Doctor.objects.filter(hospital__hospital_no=hospital_no, doctor_id=doctor_id)
            query = query.filter(doctor_id__in=own.values("pk"))
        else:
            query = query.filter(doctor__doctor_id=doctor_id)
    return query


def patient_orders(*, channel: Channel, id_card: str) -> QuerySet[Order]:
    """A patient's orders made through this channel, found by the keyed hash of the ID number."""
    if not (id_card or "").strip():
        raise InvalidInput([Violation("id_card", "为必填项（按身份证号查询患者的订单）")])
    if why := idnumber.problem(id_card):  # a malformed number can match no order: say so
        raise InvalidInput([Violation("id_card", why)])
    return (
        Order.objects.filter(channel=channel, id_card_hash=lookup_hash(id_card))
        .select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .order_by("-created_at", "-id")
    )


# -- metrics (read at scrape time) ----------------------------------------------------------------


def _outbox_by_status(status: str):
    def read() -> list[tuple[dict, float]]:
        rows = OutboxMessage.objects.filter(status=status).values("kind").annotate(n=Count("id"))
        counts = {row["kind"]: row["n"] for row in rows}
        return [({"kind": kind}, float(counts.get(kind, 0))) for kind in OutboxMessage.Kind.values]

    return read


def _notifications_pending() -> list[tuple[dict, float]]:
    return [({}, float(PatientNotification.objects.filter(status=PatientNotification.PENDING).count()))]


def _notifications_failed() -> list[tuple[dict, float]]:
    return [({}, float(PatientNotification.objects.filter(status=PatientNotification.FAILED).count()))]


def _orders_locking() -> list[tuple[dict, float]]:
    return [({}, float(Order.objects.filter(status=Order.LOCKING).count()))]


def register_gauges() -> None:
    register_gauge(
        "regional_booking_outbox_pending",
        "Messages owed to hospitals not yet delivered (outbox depth), by interface",
        _outbox_by_status(OutboxMessage.PENDING),
    )
    register_gauge(
        "regional_booking_outbox_failed",
        "Messages to hospitals that failed and wait for staff, by interface",
        _outbox_by_status(OutboxMessage.FAILED),
    )
    register_gauge(
        "regional_booking_notifications_pending", "Patient notifications not yet sent", _notifications_pending
    )
    register_gauge(
        "regional_booking_notifications_failed", "Patient notifications that failed for good", _notifications_failed
    )
    register_gauge("regional_booking_orders_locking", "Orders waiting for the hospital's lock answer", _orders_locking)


# -- reads behind the booking services and the channels' API ---------------------------------------
def order_get(*, channel: Channel, order_no: str) -> Order:
    """A channel's own order (another channel's order does not exist for it)."""
    order = (
        Order.objects.select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .filter(channel=channel, order_no=order_no)
        .first()
    )
    if order is None:
        raise OrderNotFound(f"订单{order_no}不存在")
    return order


def waitlist_entries(*, channel: Channel, schedule_id: int) -> list[WaitlistEntry]:
    """The channel's own entries on a schedule, each with `position` (1 = next in line) while waiting."""
    schedule = schedule_get(schedule_id=schedule_id)
    waiting = list(
        WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
    )
    entries = list(WaitlistEntry.objects.filter(schedule=schedule, channel=channel).select_related("order"))
    for entry in entries:
        entry.position = waiting.index(entry.pk) + 1 if entry.pk in waiting else None
    return entries


def schedule_get(*, schedule_id: int) -> Schedule:
    """One schedule with its hospital, department and doctor (ScheduleNotFound otherwise)."""
    schedule = Schedule.objects.select_related("hospital", "department", "doctor").filter(pk=schedule_id).first()
    if schedule is None:
        raise ScheduleNotFound(f"排班{schedule_id}不存在")
    return schedule


def lost_locks() -> QuerySet[OutboxMessage]:
    """The staff's worklist: locks whose outcome is unknown (the hospital may hold the number)."""
    return (
        OutboxMessage.objects.filter(kind=OutboxMessage.UNLOCK, status=OutboxMessage.UNKNOWN)
        .select_related("hospital", "order", "order__schedule")
        .order_by("created_at")
    )
