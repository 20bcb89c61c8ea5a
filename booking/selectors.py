"""Reads for the channels' REST API and the metrics: querysets filtered on indexed columns only."""

from __future__ import annotations

import datetime as dt

from django.db import connection
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


def hospital_rows(*, columns: tuple[str, ...]) -> CompiledValues:
    """`hospitals()` as `.values(*columns)` rows for a cursor page, compiled once."""
    return CompiledValues(("hospitals", columns), lambda: hospitals().values(*columns), {}, model=Hospital)


def departments(*, hospital: Hospital) -> QuerySet[Department]:
    return Department.objects.filter(hospital=hospital, is_deleted=False).order_by("seq_no", "department_id")


def department_rows(*, columns: tuple[str, ...], hospital_no: str) -> CompiledValues:
    """The departments of a registered hospital as rows, compiled once: none for an unknown hospital."""
    return CompiledValues(
        ("departments", columns),
        lambda hospital_no: Department.objects.filter(
            hospital__hospital_no=hospital_no, hospital__is_deleted=False, is_deleted=False
        ).values(*columns),
        {"hospital_no": (hospital_no or "").strip()},
        model=Department,
    )


def doctors(*, hospital_no: str = "", department_id: str = "", q: str = "") -> QuerySet[Doctor]:
    """Doctors by hospital, department and a name or pinyin-initials search (`张` or `ZSF`)."""
    return _doctors(hospital_no=hospital_no, department_id=department_id, q=q).select_related("hospital", "department")


def doctor_rows(
    *, columns: tuple[str, ...], hospital_no: str = "", department_id: str = "", q: str = ""
) -> CompiledValues:
    """`doctors(...)` as `.values(*columns)` rows for a cursor page, compiled once per combination of
    filters (a name search, whose LIKE pattern the compiler builds, goes through the ORM each time)."""
    filters = {"hospital_no": hospital_no, "department_id": department_id, "q": (q or "").strip()}
    return CompiledValues(
        ("doctors", columns),
        lambda **values: _doctors(**values).values(*columns),
        {k: v for k, v in filters.items() if v},
        model=Doctor,
    )


def _doctors(*, hospital_no: str = "", department_id: str = "", q: str = "") -> QuerySet[Doctor]:
    query = Doctor.objects.filter(is_deleted=False)
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
    return _schedules(
        hospital_no=hospital_no, department_id=department_id, doctor_id=doctor_id, **_schedule_day(date)
    ).select_related("hospital", "department", "doctor")


def schedule_rows(
    *, columns: tuple[str, ...], hospital_no: str = "", department_id: str = "", doctor_id: str = "", date: str = ""
) -> CompiledValues:
    """`schedules(...)` as `.values(*columns)` rows for a cursor page, its SQL compiled once per
    combination of filters (building and compiling the queryset was a tenth of a browse request)."""
    filters = {"hospital_no": hospital_no, "department_id": department_id, "doctor_id": doctor_id}
    return CompiledValues(
        ("schedules", columns),
        lambda **values: _schedules(**values).values(*columns),
        {**{k: v for k, v in filters.items() if v}, **_schedule_day(date)},
        model=Schedule,
    )


def _schedule_day(date: str) -> dict[str, dt.date]:
    if not date:
        return {"from_day": timezone.localdate()}
    try:
        return {"day": dt.date.fromisoformat(date)}
    except ValueError:
        raise InvalidInput([Violation("date", "格式应为yyyy-mm-dd")]) from None


def _schedules(
    *,
    hospital_no: str = "",
    department_id: str = "",
    doctor_id: str = "",
    day: dt.date | None = None,
    from_day: dt.date | None = None,
) -> QuerySet[Schedule]:
    query = Schedule.objects.filter(status__in=[Schedule.NORMAL, Schedule.STOPPED])
    if day is not None:
        query = query.filter(work_date=day)
    if from_day is not None:
        query = query.filter(work_date__gte=from_day)
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


class CompiledValues:
    """The part of a `.values()` queryset that a cursor page uses (`order_by`, one position filter,
    a slice, iteration), run from SQL compiled once per shape and reused with each request's values.

    The shape is which filters are given, the ordering and the position lookup. On first use the
    queryset is built with a unique stand-in for every value, compiled, and each SQL parameter is
    traced back to the value it stands for (constants such as the status list stay as compiled);
    later requests of that shape only bind their values. A shape whose parameters cannot all be
    traced (a lookup that rewrites its value, such as `contains`) is run through the ORM each time.
    """

    _compiled: dict[tuple, tuple[str, tuple, tuple[str, ...]] | None] = {}

    def __init__(self, name: tuple, build, values: dict, *, model, ordering=(), position=None, window=(0, None)):
        self.name, self.build, self.values, self.model = name, build, values, model
        self.ordering, self.position, self.window = tuple(ordering), position, window

    def _clone(self, **changes) -> CompiledValues:
        attrs = {"ordering": self.ordering, "position": self.position, "window": self.window, **changes}
        return CompiledValues(self.name, self.build, self.values, model=self.model, **attrs)

    def order_by(self, *fields: str) -> CompiledValues:
        return self._clone(ordering=fields)

    def filter(self, **lookup) -> CompiledValues:
        ((key, raw),) = lookup.items()  # the cursor's position, e.g. work_date__gt
        field = self.model._meta.get_field(key.split("__")[0])
        return self._clone(position=(key, field.to_python(raw)))  # a malformed position: ValidationError

    def __getitem__(self, window: slice) -> CompiledValues:
        return self._clone(window=(window.start or 0, window.stop))

    def __iter__(self):
        return iter(self._rows())

    def queryset(self, values: dict | None = None) -> QuerySet:
        values = self.values if values is None else values
        position = {k: v for k, v in values.items() if k == "__position__"}
        query = self.build(**{k: v for k, v in values.items() if k != "__position__"}).order_by(*self.ordering)
        if position:
            query = query.filter(**{self.position[0]: position["__position__"]})
        return query

    def _rows(self) -> list[dict]:
        values = dict(self.values)
        if self.position is not None:
            values["__position__"] = self.position[1]
        start, stop = self.window
        shape = (
            connection.vendor, self.name, self.ordering, self.position and self.position[0],
            tuple(sorted((k, type(v).__name__) for k, v in values.items())),
        )  # fmt: skip
        if shape not in self._compiled:
            self._compiled[shape] = self._compile(values)
        compiled = self._compiled[shape]
        if compiled is None:
            query = self.queryset(values)
            return list(query[start:stop] if stop is not None else query[start:])
        sql, slots, names = compiled
        params = [values[slot[1]] if slot[0] == "value" else slot[1] for slot in slots]
        params = [str(p) if slot[0] == "value" and slot[2] else p for p, slot in zip(params, slots, strict=True)]
        if stop is not None:
            sql, params = f"{sql} LIMIT %s OFFSET %s", [*params, stop - start, start]
        elif start:
            raise ValueError("an offset needs a limit")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _compile(self, values: dict) -> tuple[str, tuple, tuple[str, ...]] | None:
        stand_ins, by_param = {}, {}
        for i, (name, value) in enumerate(sorted(values.items())):
            if isinstance(value, str):
                stand_in = f"\x1e{i}:{name}\x1e"
            elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                stand_in = dt.date(1001 + i, 1, 1)
            else:
                return None
            stand_ins[name] = stand_in
            by_param[(type(stand_in), stand_in)] = (name, False)
            by_param[(str, str(stand_in))] = (name, not isinstance(stand_in, str))  # adapted to text (SQLite)
        query = self.queryset(stand_ins)
        compiler = query.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        if compiler.get_converters([col for col, _, _ in compiler.select]):
            return None  # the rows would need Python conversion per value: leave that to the ORM
        slots, seen = [], set()
        for param in params:
            traced = by_param.get((type(param), param))
            if traced is None:
                if isinstance(param, str) and "\x1e" in param:
                    return None  # a lookup rewrote the value (contains, startswith…)
                slots.append(("constant", param))
            else:
                slots.append(("value", traced[0], traced[1]))
                seen.add(traced[0])
        if seen != set(values):
            return None
        q = query.query
        return sql, tuple(slots), (*q.extra_select, *q.values_select, *q.annotation_select)


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
