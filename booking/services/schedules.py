"""The hospitals' schedules as 2.1–2.3 deliver them, and 停诊/换诊 carried through to orders.

A schedule batch (synchronizedWorkInfo) is applied in one transaction with a constant number of
set-based statements, whatever its size and whatever the size of the region: on PostgreSQL the
rows are streamed with COPY into a temporary table and merged with one
`INSERT … SELECT … ON CONFLICT DO UPDATE`; elsewhere `bulk_create(update_conflicts=True)` does the
same in batches. No statement loads a hospital's existing schedules into memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from booking.models import Order, PatientNotification, Schedule
from booking.notify import notify_patient
from booking.services._common import _actor_hospital, _record, _record_path, _session_text
from booking.services.orders import _refund_if_paid
from regional.errors import Conflict, NotFound
from regional.messages import MessageInvalid, Violation
from regional.models import Hospital
from regional.services import departments_ensure, doctor_profile_apply, doctors_ensure

BATCH = 2000
MAX_SLOTS = 1_000_000
MAX_PRICE = Decimal("99999999.99")


# -- validation ------------------------------------------------------------------------------------


def schedule_violations(record: dict, path: str) -> list[Violation]:
    """The rules of one schedule record beyond its message description, with paths under `path`."""
    out: list[Violation] = []
    start, stop = record.get("WorkStartDate"), record.get("WorkStopDate")
    if start is not None and stop is not None and stop <= start:
        out.append(Violation(f"{path}/WorkStopDate", f"结束时间{stop:%H:%M}应晚于开始时间{start:%H:%M}"))
    remaining, total = record.get("RegistrationNumber"), record.get("RegistrationCount")
    reserved = record.get("HosLockedCount")
    for name, label, value in (
        ("RegistrationNumber", "剩余号源数", remaining),
        ("RegistrationCount", "号源总数", total),
        ("HosLockedCount", "医院保留号源数", reserved),
    ):
        if value is not None and value < 0:
            out.append(Violation(f"{path}/{name}", f"{label}不能为负数（{value}）"))
        elif value is not None and value > MAX_SLOTS:
            out.append(Violation(f"{path}/{name}", f"{label}不能超过{MAX_SLOTS}（{value}）"))
    if total is not None and 0 <= total <= MAX_SLOTS:
        if remaining is not None and total < remaining <= MAX_SLOTS:
            out.append(Violation(f"{path}/RegistrationNumber", f"剩余号源数{remaining}大于号源总数{total}"))
        if reserved is not None and total < reserved <= MAX_SLOTS:
            out.append(Violation(f"{path}/HosLockedCount", f"医院保留号源数{reserved}大于号源总数{total}"))
    price = record.get("RegistrationPrice")
    if price is not None and price > MAX_PRICE:
        out.append(Violation(f"{path}/RegistrationPrice", f"挂号价格超出范围（最大{MAX_PRICE}元）"))
    return out


def _schedule_values(record: dict, *, doctor_pk: int, department_pk: int) -> dict:
    """Model field → value for one schedule record (the fields the hospital owns)."""
    row = _schedule_row(record, {record["DoctorId"]: doctor_pk}, {record["DepartmentId"]: department_pk})
    return dict(zip(SYNCED_FIELDS, row[1:], strict=True))


def _schedule_row(record: dict, doctors: dict[str, int], departments: dict[str, int]) -> tuple:
    """WorkId, then the values of SYNCED_FIELDS in their order: a COPY row, built from the parsed record."""
    return (
        record["WorkId"],
        record.get("WorkAddr") or "",
        doctors[record["DoctorId"]],
        record["DoctorId"],
        departments[record["DepartmentId"]],
        record["DepartmentId"],
        record["WorkDate"],
        int(record["WorkTimeCode"]),
        record["WorkStartDate"],
        record["WorkStopDate"],
        record.get("RegistrationTypeId") or "",
        record.get("RegistrationTypeName") or "",
        record["RegistrationPrice"],
        record["RegistrationNumber"],
        record["RegistrationCount"],
        record.get("HosLockedCount") or 0,
    )


# The attributes a re-sent record overwrites; booked_count, status and the stop/change history stay.
SYNCED_FIELDS = [
    "work_addr", "doctor_id", "doctor_code", "department_id", "department_code", "work_date", "time_code",
    "start_time", "stop_time", "registration_type_id", "registration_type_name", "price", "remaining", "total",
    "hospital_reserved",
]  # fmt: skip


# -- synchronizedWorkInfo (2.1) ------------------------------------------------------------------


@transaction.atomic
def schedules_sync(*, hospital: Hospital, records: Sequence[dict], clear_future: bool) -> int:
    """2.1: upsert the hospital's schedules by WorkId; returns the number of records received.

    `clear_future` (IsMultiTimes=1, the first batch of a full re-sync) first removes the
    hospital's schedules that have not ended yet; those with orders are kept and marked
    withdrawn instead. A record re-sent for a withdrawn schedule makes it normal again; a
    stopped or changed schedule keeps its status (the explicit notice wins over a bulk sync).
    Departments and doctors a record names but nobody sent are created. Every record is
    validated first; one broken rule and nothing is applied. A WorkId sent twice in one batch is
    such a broken rule (which of the two the hospital meant cannot be known), named with both places.
    """
    violations: list[Violation] = []
    first_seen: dict[str, int] = {}
    for position, record in enumerate(records, start=1):
        path = _record_path(record, position, "WorkInfo")
        violations.extend(schedule_violations(record, path))
        work_id = (record.get("WorkId") or "").strip()
        if work_id and work_id in first_seen:
            violations.append(Violation(path, f"WorkId {work_id}在本批次中重复（与第{first_seen[work_id]}条相同）"))
        first_seen.setdefault(work_id, position)
    if violations:
        raise MessageInvalid(violations)
    now = timezone.now()
    departments = departments_ensure(hospital=hospital, named={r["DepartmentId"]: r["DepartmentName"] for r in records})
    doctors = doctors_ensure(
        hospital=hospital, named={r["DoctorId"]: (r["DoctorName"], r["DepartmentId"]) for r in records}
    )
    if clear_future:
        _schedules_clear_future(hospital=hospital, now=now)
    if connection.vendor == "postgresql":
        # Straight from the parsed records to COPY rows, no second dict per record; a WorkId sent twice
        # was refused above, so every row is a distinct key for the one INSERT … ON CONFLICT.
        _upsert_copy(hospital=hospital, rows=(_schedule_row(r, doctors, departments) for r in records), now=now)
    else:
        last = {r["WorkId"]: position for position, r in enumerate(records)}
        rows = (
            (
                r["WorkId"],
                _schedule_values(r, doctor_pk=doctors[r["DoctorId"]], department_pk=departments[r["DepartmentId"]]),
            )
            for position, r in enumerate(records)
            if last[r["WorkId"]] == position
        )
        _upsert_batches(hospital=hospital, rows=rows, now=now)
    return len(records)


def _schedules_clear_future(*, hospital: Hospital, now: dt.datetime) -> None:
    future = Schedule.objects.filter(hospital=hospital).not_over(now)
    doomed = future.without_orders()
    Schedule.objects.filter(replaced_by__in=doomed.values("pk")).update(replaced_by=None)
    # One `DELETE … WHERE <conditions>` on purpose. QuerySet.delete() would load every row to
    # emulate on_delete (memory growing with the hospital's schedules), and `WHERE id IN
    # (subquery)` would not re-check booked_count on a row an order took meanwhile: a direct
    # condition is re-checked by PostgreSQL once it has waited for that row's lock.
    doomed._raw_delete(doomed.db)
    # After the delete, so that a schedule booked while it waited is seen here. Schedules with
    # orders are never deleted (CONTRACT.md section 5); a stopped or changed one keeps that
    # status, which already takes it out of booking and says why.
    future.with_orders().filter(status=Schedule.NORMAL).update(
        status=Schedule.WITHDRAWN, retired_at=now, updated_at=now
    )


_FIELDS_BY_ATTNAME = {f.attname: f for f in Schedule._meta.concrete_fields}
_COPY_COLUMNS = ["work_id", *(_FIELDS_BY_ATTNAME[a].column for a in SYNCED_FIELDS)]
_UPDATE_FIELDS = [*(_FIELDS_BY_ATTNAME[a].name for a in SYNCED_FIELDS), "updated_at"]


def _upsert_copy(*, hospital: Hospital, rows: Iterable[tuple], now: dt.datetime) -> None:
    """PostgreSQL: COPY the batch into a temporary table, then one INSERT … ON CONFLICT DO UPDATE."""
    quote = connection.ops.quote_name
    table = quote(Schedule._meta.db_table)
    columns = ", ".join(quote(c) for c in _COPY_COLUMNS)
    updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in _COPY_COLUMNS[1:])
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: Django's wrapper has no COPY
        raw.execute(
            f"CREATE TEMP TABLE booking_schedule_incoming ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with raw.copy(f"COPY booking_schedule_incoming ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.execute(
            f"INSERT INTO {table} AS s (hospital_id, {columns}, booked_count, status, stop_reason, change_reason,"
            f" created_at, updated_at)"
            f" SELECT %(hospital)s, {columns}, 0, %(normal)s, '', '', %(now)s, %(now)s FROM booking_schedule_incoming"
            f" ON CONFLICT (hospital_id, work_id) DO UPDATE SET {updates},"
            # A withdrawn schedule the hospital sends again is back in service.
            f" status = CASE WHEN s.status = %(withdrawn)s THEN %(normal)s ELSE s.status END,"
            f" retired_at = CASE WHEN s.status = %(withdrawn)s THEN NULL ELSE s.retired_at END,"
            f" updated_at = EXCLUDED.updated_at",
            {"hospital": hospital.pk, "now": now, "normal": Schedule.NORMAL, "withdrawn": Schedule.WITHDRAWN},
        )
        raw.execute("DROP TABLE booking_schedule_incoming")


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _upsert_batches(*, hospital: Hospital, rows: Iterable[tuple[str, dict]], now: dt.datetime) -> None:
    """Other databases (SQLite in embedded mode): bulk_create(update_conflicts=True) per batch."""
    for chunk in _chunks(rows, BATCH):
        Schedule.objects.bulk_create(
            [Schedule(hospital=hospital, work_id=work_id, created_at=now, **values) for work_id, values in chunk],
            update_conflicts=True,
            unique_fields=["hospital", "work_id"],
            update_fields=_UPDATE_FIELDS,
        )
        Schedule.objects.filter(
            hospital=hospital, work_id__in=[work_id for work_id, _ in chunk], status=Schedule.WITHDRAWN
        ).update(status=Schedule.NORMAL, retired_at=None, updated_at=now)


# -- stopWorkNotice (2.2) ------------------------------------------------------------------------


@transaction.atomic
def schedule_stop(*, hospital: Hospital, work_id: str, reason: str) -> Schedule:
    """2.2: the schedule becomes 停诊 with its reason and time; its orders follow (hook).

    Idempotent: stopping a stopped schedule keeps its first stop time (a new reason replaces
    the old one). A schedule retired by a change cannot be stopped: its successor can.
    """
    schedule = (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("replaced_by")
        .filter(hospital=hospital, work_id=work_id)
        .first()
    )
    if schedule is None:
        raise NotFound(f"排班{work_id}不存在")
    if schedule.status == Schedule.CHANGED:
        successor = schedule.replaced_by.work_id if schedule.replaced_by else "新排班"
        raise Conflict(f"排班{work_id}已换诊为{successor}，请对{successor}发送停诊通知")
    if schedule.status == Schedule.STOPPED:
        if reason and reason != schedule.stop_reason:
            schedule.stop_reason = reason
            schedule.save(update_fields=["stop_reason", "updated_at"])
        return schedule
    schedule.status = Schedule.STOPPED
    schedule.stop_reason = reason
    schedule.stopped_at = timezone.now()
    schedule.save(update_fields=["status", "stop_reason", "stopped_at", "updated_at"])
    schedule_orders_stop(schedule=schedule)
    return schedule


@transaction.atomic
def schedules_stop(*, hospital: Hospital, records: Sequence[dict]) -> int:
    """2.2 for a whole message: every WorkId is checked first, then each schedule is stopped."""
    work_ids = [r["WorkId"] for r in records]
    known = {
        work_id: (status, successor)
        for work_id, status, successor in Schedule.objects.filter(hospital=hospital, work_id__in=work_ids).values_list(
            "work_id", "status", "replaced_by__work_id"
        )
    }
    violations = []
    for position, record in enumerate(records, start=1):
        path = f"{_record_path(record, position, 'WorkInfo')}/WorkId"
        found = known.get(record["WorkId"])
        if found is None:
            violations.append(Violation(path, f"排班{record['WorkId']}不存在"))
        elif found[0] == Schedule.CHANGED:
            successor = found[1] or "新排班"
            violations.append(Violation(path, f"排班{record['WorkId']}已换诊为{successor}，请对{successor}停诊"))
    if violations:
        raise MessageInvalid(violations)
    for record in records:
        schedule_stop(hospital=hospital, work_id=record["WorkId"], reason=record["StopReason"])
    return len(records)


# -- changeWorkNotice (2.3) ----------------------------------------------------------------------


@transaction.atomic
def schedule_change(
    *, hospital: Hospital, old_work_id: str, reason: str, new: dict, path: str = "NewWorkInfo"
) -> Schedule:
    """2.3: retire the old schedule (status 换诊, linked to its replacement, never deleted) and
    upsert the new one; the orders follow (hook). Returns the new schedule.

    `new` is the NewWorkInfo record; its doctor and department are created or updated from it.
    A change to the same WorkId updates that schedule in place. Repeating a change is harmless;
    changing a retired schedule to yet another WorkId is refused. `path` prefixes error paths.
    """
    violations = schedule_violations(new, path)
    if violations:
        raise MessageInvalid(violations)
    old = (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("replaced_by")
        .filter(hospital=hospital, work_id=old_work_id)
        .first()
    )
    if old is None:
        raise NotFound(f"原排班{old_work_id}不存在")
    if old.status == Schedule.CHANGED and old.replaced_by and old.replaced_by.work_id != new["WorkId"]:
        raise Conflict(f"排班{old_work_id}已换诊为{old.replaced_by.work_id}，不能再换诊为{new['WorkId']}")
    doctor, department = doctor_profile_apply(hospital=hospital, record=new)
    values = _schedule_values(new, doctor_pk=doctor.pk, department_pk=department.pk)
    now = timezone.now()
    if new["WorkId"] == old_work_id:
        # Same WorkId: the hospital changed the session's details; it stays the one schedule.
        for attr, value in values.items():
            setattr(old, attr, value)
        old.status, old.change_reason, old.retired_at = Schedule.NORMAL, reason, None
        old.save()
        return old
    replacement = Schedule.objects.select_for_update().filter(
        hospital=hospital, work_id=new["WorkId"]
    ).first() or Schedule(hospital=hospital, work_id=new["WorkId"])
    if new.get("HosLockedCount") is None:
        # NewWorkInfo has no HosLockedCount: keep a known schedule's reservation when it still fits.
        values["hospital_reserved"] = replacement.hospital_reserved if replacement.pk else 0
        values["hospital_reserved"] = min(values["hospital_reserved"], values["total"])
    for attr, value in values.items():
        setattr(replacement, attr, value)
    # The change notice names it as the session that takes place: in service, whatever it was.
    replacement.status, replacement.retired_at, replacement.replaced_by = Schedule.NORMAL, None, None
    replacement.save()
    already = old.status == Schedule.CHANGED
    old.status, old.change_reason, old.replaced_by = Schedule.CHANGED, reason, replacement
    old.retired_at = old.retired_at if already else now
    old.save(update_fields=["status", "change_reason", "replaced_by", "retired_at", "updated_at"])
    if not already:
        schedule_orders_follow(old=old, new=replacement)
    return replacement


@transaction.atomic
def schedules_change(*, hospital: Hospital, records: Sequence[dict]) -> int:
    """2.3 for a whole message: every record is checked first, then each change is applied."""
    old_ids = [r["OldWorkId"] for r in records]
    known = set(Schedule.objects.filter(hospital=hospital, work_id__in=old_ids).values_list("work_id", flat=True))
    violations = []
    for position, record in enumerate(records, start=1):
        path = _record_path(record, position, "WorkInfo")
        if record["OldWorkId"] not in known:
            violations.append(Violation(f"{path}/OldWorkId", f"原排班{record['OldWorkId']}不存在"))
        violations.extend(schedule_violations(record["NewWorkInfo"], f"{path}/NewWorkInfo"))
        known.add(record["NewWorkInfo"]["WorkId"])  # a later record may change it again
    if violations:
        raise MessageInvalid(violations)
    for position, record in enumerate(records, start=1):
        schedule_change(
            hospital=hospital,
            old_work_id=record["OldWorkId"],
            reason=record["ChangeReason"],
            new=record["NewWorkInfo"],
            path=f"{_record_path(record, position, 'WorkInfo')}/NewWorkInfo",
        )
    return len(records)


# -- stop (2.2) and change (2.3) carried through to orders ---------------------------------------


def schedule_orders_stop(*, schedule: Schedule) -> None:
    """The orders of a schedule that has just become 停诊 (CONTRACT.md section 5, stopWorkNotice).

    Called inside the stop's transaction, once, when the status changes to 停诊. Active orders
    become 已退号 with the 停诊 mark; paid ones get a refund entry; patients are notified. The
    hospital's cancel interface is not called for them: the hospital stopped the session itself.
    Orders still being locked are marked; their lock is undone when its answer arrives.
    """
    now = timezone.now()
    orders = (
        Order.objects.select_for_update(of=("self",))
        .select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .filter(schedule=schedule, status__in=Order.ACTIVE)
        .order_by("pk")
    )
    for order in orders:
        previous, previous_mark = order.status, order.mark
        order.mark, order.mark_reason = Order.MARK_STOPPED, schedule.stop_reason[:500]
        if previous == Order.LOCKING:
            order.save(update_fields=["mark", "mark_reason", "updated_at"])
            _record(order, from_status=previous, from_mark=previous_mark, actor=_actor_hospital(schedule.hospital),
                    reason=f"停诊（锁号中）：{schedule.stop_reason}")  # fmt: skip
            continue
        order.status, order.cancelled_by, order.cancelled_at = Order.CANCELLED, Order.BY_STOP, now
        order.save()
        refund = _refund_if_paid(order, f"医院停诊：{schedule.stop_reason}")
        _record(order, from_status=previous, from_mark=previous_mark, actor=_actor_hospital(schedule.hospital),
                reason=f"停诊：{schedule.stop_reason}")  # fmt: skip
        refund_text = f"挂号费{refund.amount}元将原路退回。" if refund else ""
        notify_patient(
            order=order,
            kind=PatientNotification.STOPPED,
            message=(
                f"很抱歉，{_session_text(order)}停诊（{schedule.stop_reason}），您的预约已取消。"
                f"{refund_text}订单号{order.order_no}。"
            ),
        )


def schedule_orders_follow(*, old: Schedule, new: Schedule) -> None:
    """The orders of a schedule retired by changeWorkNotice (CONTRACT.md section 5).

    Called inside the change's transaction, after `old` is linked to `new`. Active orders move
    to `new` with the 换诊 mark (status unchanged), `booked_count` moves with them, and their
    patients are told the new session.
    """
    orders = list(
        Order.objects.select_for_update(of=("self",))
        .select_related("channel", "hospital")
        .filter(schedule=old, status__in=Order.ACTIVE)
        .order_by("pk")
    )
    if not orders:
        return
    moved = len(orders)
    Schedule.objects.filter(pk=old.pk).update(booked_count=F("booked_count") - moved)
    Schedule.objects.filter(pk=new.pk).update(booked_count=F("booked_count") + moved)
    new = Schedule.objects.select_related("department", "doctor").get(pk=new.pk)
    for order in orders:
        previous_mark = order.mark
        order.schedule = new
        order.mark, order.mark_reason = Order.MARK_CHANGED, old.change_reason[:500]
        order.save(update_fields=["schedule", "mark", "mark_reason", "updated_at"])
        _record(order, from_status=order.status, from_mark=previous_mark, actor=_actor_hospital(old.hospital),
                reason=f"换诊：{old.work_id}→{new.work_id}（{old.change_reason}）")  # fmt: skip
        if order.status == Order.LOCKING:
            continue
        notify_patient(
            order=order,
            kind=PatientNotification.CHANGED,
            key=f"{PatientNotification.CHANGED}:{new.pk}",
            message=(
                f"您的预约因{old.change_reason or '医院安排'}已换诊为{_session_text(order)}，"
                f"如不便前往可取消预约。订单号{order.order_no}。"
            ),
        )
