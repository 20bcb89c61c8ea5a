"""Booking services: channels; the hospitals' schedules as 2.1–2.3 deliver them; orders (lock,
payment, cancellation, expiry, the hospital's 2.4 reports, 停诊/换诊 carried through), the outbox
of messages owed to hospitals, and live reads from hospitals (slots, queue, count, cards).

A schedule batch (synchronizedWorkInfo) is applied in one transaction with a constant number of
set-based statements, whatever its size and whatever the size of the region: on PostgreSQL the
rows are streamed with COPY into a temporary table and merged with one
`INSERT … SELECT … ON CONFLICT DO UPDATE`; elsewhere `bulk_create(update_conflicts=True)` does the
same in batches. No statement loads a hospital's existing schedules into memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from urllib3.exceptions import ConnectTimeoutError

from booking import clock
from booking.errors import (
    BookingClosed,
    BookingNotOpen,
    CancelDeadlinePassed,
    ChannelQuotaExhausted,
    DuplicateBooking,
    HospitalAnswerError,
    HospitalUnavailableForBooking,
    IdempotencyConflict,
    InvalidRequest,
    LockExpired,
    LockRefused,
    OrderNotFound,
    OrderStateConflict,
    PatientBanned,
    PatientLimitReached,
    PaymentMismatch,
    ScheduleClosed,
    ScheduleFull,
    ScheduleNotFound,
    SessionOverlap,
    WaitlistClosed,
    WaitlistEntryNotFound,
    WaitlistNotNeeded,
)
from booking.models import (
    Channel,
    LedgerEntry,
    NoShowBan,
    NoShowRecord,
    Order,
    OrderTransition,
    OutboxMessage,
    PatientNotification,
    Schedule,
    WaitlistEntry,
)
from booking.notify import notify_patient
from booking.rules import (
    EffectiveRules,
    booking_cutoff_at,
    cancel_deadline_at,
    channel_quota,
    quota_released_at,
    release_at,
    rules_for,
    waitlist_closes_at,
    when_text,
)
from regional import hospital_client
from regional.audit import audit_record
from regional.circuit import OPEN, CircuitOpen
from regional.errors import Conflict, DomainError, NotFound
from regional.hospital_client import (
    HospitalBadAnswer,
    HospitalError,
    HospitalRefused,
    HospitalUnavailable,
    circuit_for,
)
from regional.messages import MessageInvalid, Violation, catalog
from regional.models import Hospital
from regional.observability import LOCK_EXPIRIES
from regional.pii import lookup_hash, mask_text
from regional.services import departments_ensure, doctor_profile_apply, doctors_ensure

logger = logging.getLogger("booking")

BATCH = 2000
MAX_SLOTS = 1_000_000
MAX_PRICE = Decimal("99999999.99")


@transaction.atomic
def channel_issue_token(*, code: str, name: str | None = None) -> tuple[Channel, str]:
    """Create the channel if needed and give it a new API token (the old one stops working)."""
    channel = Channel.objects.filter(code=code).first() or Channel(code=code, name=name or code)
    if name:
        channel.name = name
    token = channel.issue_token()
    channel.save()
    return channel, token


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


def _record_path(record: dict, position: int, prefix: str) -> str:
    return f"{prefix}/Record[{record.get('_index', position)}]"


def _schedule_values(record: dict, *, doctor_pk: int, department_pk: int) -> dict:
    """Model field → value for one schedule record (the fields the hospital owns)."""
    return {
        "work_addr": record.get("WorkAddr") or "",
        "doctor_id": doctor_pk,
        "doctor_code": record["DoctorId"],
        "department_id": department_pk,
        "department_code": record["DepartmentId"],
        "work_date": record["WorkDate"],
        "time_code": int(record["WorkTimeCode"]),
        "start_time": record["WorkStartDate"],
        "stop_time": record["WorkStopDate"],
        "registration_type_id": record.get("RegistrationTypeId") or "",
        "registration_type_name": record.get("RegistrationTypeName") or "",
        "price": record["RegistrationPrice"],
        "remaining": record["RegistrationNumber"],
        "total": record["RegistrationCount"],
        "hospital_reserved": record.get("HosLockedCount") or 0,
    }


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
    validated first; one broken rule and nothing is applied. Within a batch the last record of
    a WorkId wins.
    """
    violations: list[Violation] = []
    for position, record in enumerate(records, start=1):
        violations.extend(schedule_violations(record, _record_path(record, position, "WorkInfo")))
    if violations:
        raise MessageInvalid(violations)
    now = timezone.now()
    departments = departments_ensure(hospital=hospital, named={r["DepartmentId"]: r["DepartmentName"] for r in records})
    doctors = doctors_ensure(
        hospital=hospital, named={r["DoctorId"]: (r["DoctorName"], r["DepartmentId"]) for r in records}
    )
    if clear_future:
        _schedules_clear_future(hospital=hospital, now=now)
    last = {r["WorkId"]: position for position, r in enumerate(records)}
    rows = (
        (
            r["WorkId"],
            _schedule_values(r, doctor_pk=doctors[r["DoctorId"]], department_pk=departments[r["DepartmentId"]]),
        )
        for position, r in enumerate(records)
        if last[r["WorkId"]] == position
    )
    if connection.vendor == "postgresql":
        _upsert_copy(hospital=hospital, rows=rows, now=now)
    else:
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


def _upsert_copy(*, hospital: Hospital, rows: Iterable[tuple[str, dict]], now: dt.datetime) -> None:
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
            for work_id, values in rows:
                copy.write_row([work_id, *(values[f] for f in SYNCED_FIELDS)])
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


# == orders ========================================================================================
#
# The life cycle of a booking (Order), the messages it owes the hospital (OutboxMessage) and the
# money it moves (LedgerEntry). Rules:
# - A hospital is never called inside a database transaction (`_no_transaction()` checks it):
#   a lock reserves the platform's count and creates the order in one short transaction, calls
#   confirmRegistration outside it, then records the outcome in a second one.
# - Every other message to a hospital is an outbox row written in the transaction of the state
#   change, delivered after the commit by Celery (booking.tasks) and, should that task be lost,
#   by the periodic sweeper. Delivery is at least once; the TransactionId is fixed per row.
# - Every change of an order's status or mark writes an OrderTransition and an audit entry.


@dataclass(frozen=True)
class Patient:
    """The patient of a booking, as a channel sends it (all strings; empty when not given)."""

    name: str
    id_card: str
    phone: str
    card_no: str = ""
    card_type: str = ""
    sex: str = ""
    age: str = ""
    address: str = ""


_ID_CARD = re.compile(r"^(?:[0-9X]{15}|[0-9X]{18})$")
_PHONE = re.compile(r"^[0-9+\-]{7,20}$")
SEX_NAMES = dict(catalog.SEX_CODES)
CHANNEL_CODES = {code for code, _label in catalog.CHANNELS}


def _setting(name: str, default):
    return getattr(settings, name, default)


def _no_transaction() -> None:
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("医院接口调用不能在数据库事务中进行（请在提交后调用）")


def _actor_channel(channel: Channel) -> str:
    return f"渠道{channel.code}"


def _actor_hospital(hospital: Hospital) -> str:
    return f"医院{hospital.hospital_no}"


SYSTEM = "系统"


def _patient_clean(patient: Patient) -> tuple[Patient, list[Violation]]:
    """Normalised patient data and every broken rule (the values themselves never appear in messages)."""
    p = Patient(
        name=(patient.name or "").strip(),
        id_card=re.sub(r"\s+", "", patient.id_card or "").upper(),
        phone=re.sub(r"\s+", "", patient.phone or ""),
        card_no=(patient.card_no or "").strip(),
        card_type=(patient.card_type or "").strip(),
        sex=(patient.sex or "").strip(),
        age=(patient.age or "").strip(),
        address=(patient.address or "").strip(),
    )
    out: list[Violation] = []
    if not p.name:
        out.append(Violation("patient.name", "为必填项（患者姓名）"))
    elif len(p.name) > 50:
        out.append(Violation("patient.name", "长度不能超过50个字符"))
    if not p.id_card:
        out.append(Violation("patient.id_card", "为必填项（身份证号）"))
    elif not _ID_CARD.match(p.id_card):
        out.append(Violation("patient.id_card", "格式不正确（应为15位或18位身份证号）"))
    if not p.phone:
        out.append(Violation("patient.phone", "为必填项（手机号码）"))
    elif not _PHONE.match(p.phone):
        out.append(Violation("patient.phone", "格式不正确（7–20位数字）"))
    if len(p.card_no) > 20:
        out.append(Violation("patient.card_no", "长度不能超过20个字符"))
    if p.card_type and p.card_type not in dict(Order.CARD_TYPES):
        out.append(Violation("patient.card_type", "应为01（院内就诊卡）或02（居民健康卡）"))
    if p.sex and p.sex not in SEX_NAMES:
        out.append(Violation("patient.sex", "应为0、1、2、5、6或9（GB/T 2261.1 性别代码）"))
    if len(p.age) > 30:
        out.append(Violation("patient.age", "长度不能超过30个字符"))
    if len(p.address) > 200:
        out.append(Violation("patient.address", "长度不能超过200个字符"))
    if p.card_no and not p.card_type:
        p = dataclasses.replace(p, card_type="01")
    return p, out


def _fingerprint(*parts: str) -> str:
    # Keyed (HMAC), so that the stored fingerprint of a body holding an ID number reveals nothing.
    return lookup_hash(json.dumps(parts, ensure_ascii=False))


def new_order_no() -> str:
    """The platform trade number: `YY` + local time to the second + 8 random digits (unique column)."""
    return f"YY{timezone.localtime():%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"


def _record(
    order: Order, *, from_status: str, actor: str, reason: str = "", user=None, from_mark: str | None = None
) -> OrderTransition:
    """One line of the order's history, and the audit trail's entry for it."""
    transition = OrderTransition.objects.create(
        order=order,
        from_status=from_status,
        to_status=order.status,
        mark=order.mark,
        actor=actor[:100],
        user=user if getattr(user, "is_authenticated", False) else None,
        reason=reason[:500],
    )
    labels = dict(Order.STATUSES)
    before = {"status": from_status, "mark": order.mark if from_mark is None else from_mark}
    audit_record(
        action=f"订单状态：{labels.get(from_status, '新建')}→{labels[order.status]}",
        obj=order,
        before=before,
        after={"status": order.status, "mark": order.mark},
        user=user,
        actor=actor,
        reason=reason,
    )
    return transition


def _release_count(schedule_id: int) -> None:
    # Gives a reserved slot back. Bounded by `total` (a sync may already have reset `remaining`
    # to the hospital's figure); the next sync corrects any difference.
    Schedule.objects.filter(pk=schedule_id, remaining__lt=F("total")).update(remaining=F("remaining") + 1)


def _session_text(order: Order) -> str:
    schedule = order.schedule
    when = order.worktime or f"{schedule.start_time:%H:%M}-{schedule.stop_time:%H:%M}"
    hospital = order.hospital.short_name or order.hospital.name
    return (
        f"{hospital}{schedule.department.name}{schedule.doctor.name}医生"
        f"{schedule.work_date:%m月%d日}{schedule.get_time_code_display()}（{when}）"
    )


def _order_for_update(**lookup) -> Order:
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .filter(**lookup)
        .first()
    )
    if order is None:
        raise OrderNotFound(f"订单{lookup.get('order_no') or lookup.get('workflow_id') or ''}不存在")
    return order


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


# -- lock (confirmRegistration 3.1) --------------------------------------------------------------


def order_lock(
    *,
    channel: Channel,
    hospital_no: str,
    work_id: str,
    patient: Patient,
    num_source_id: str = "",
    idempotency_key: str = "",
    now: dt.datetime | None = None,
    waitlist: bool = False,
) -> tuple[Order, bool]:
    """Book one number: reserve the platform's count, lock it at the hospital, return (order, created).

    1. One transaction: the conditional UPDATE takes a slot of the platform's count (or refuses:
       full, stopped) and the order is created in state `locking`.
    2. Outside any transaction: confirmRegistration with the order's own TransactionId.
    3. One transaction: success → state 1 已预约 with WorkFlowId, serial number and lock expiry;
       refusal or no answer → state `failed`, the slot given back (409 / 503 to the channel).
    A crash between 1 and 3 leaves the order in `locking`; `orders_reconcile_locking` releases it.
    A repeat with the same `idempotency_key` returns the first order (created False).
    """
    _no_transaction()
    now = now or clock.now()
    patient, violations = _patient_clean(patient)
    hospital_no, work_id, num_source_id = (
        (hospital_no or "").strip(),
        (work_id or "").strip(),
        (num_source_id or "").strip(),
    )
    idempotency_key = (idempotency_key or "").strip()
    if not hospital_no:
        violations.append(Violation("hospital_no", "为必填项（医院编号）"))
    if not work_id:
        violations.append(Violation("work_id", "为必填项（排班班次）"))
    if len(num_source_id) > 100:
        violations.append(Violation("num_source_id", "长度不能超过100个字符"))
    if len(idempotency_key) > 100:
        violations.append(Violation("Idempotency-Key", "长度不能超过100个字符"))
    if violations:
        raise InvalidRequest(violations)
    fingerprint = ""
    if idempotency_key:
        fingerprint = _fingerprint(hospital_no, work_id, num_source_id, *dataclasses.astuple(patient))
        existing = Order.objects.filter(channel=channel, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _idempotent_replay(existing, fingerprint, wait=True), False
    schedule = (
        Schedule.objects.select_related("hospital")
        .filter(hospital__hospital_no=hospital_no, hospital__is_deleted=False, work_id=work_id)
        .first()
    )
    if schedule is None:
        _hospital_for(hospital_no)
        raise ScheduleNotFound(f"排班{work_id}不存在")
    hospital = schedule.hospital
    _check_bookable(schedule, now)
    rules = rules_for(hospital)
    _check_booking_window(schedule, rules, now)
    _check_not_banned(lookup_hash(patient.id_card), now)
    if schedule.remaining <= 0:
        # Just read: a rush's losers are answered without a transaction. Only a refusal is decided
        # here; a slot is only ever taken by the conditional UPDATE in `_order_reserve`.
        raise ScheduleFull(f"排班{work_id}号源已满，请选择其他排班或时段")
    if circuit_for(hospital).state() == OPEN:
        # Fail fast, before reserving anything: the hospital has just failed repeatedly.
        raise HospitalUnavailableForBooking(f"{hospital.name}的预约接口暂时无法访问（熔断保护中），请稍后重试")
    try:
        order = _order_reserve(
            channel=channel,
            schedule=schedule,
            patient=patient,
            num_source_id=num_source_id,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            rules=rules,
            waitlist=waitlist,
            now=now,
        )
    except SameIdempotencyKey as same:
        # A retry racing the first request: that request's order is the answer, once its lock is decided.
        return _idempotent_replay(same.order, fingerprint, wait=True), False
    except IntegrityError:
        # The same Idempotency-Key committed concurrently: that request's order is the answer.
        existing = Order.objects.filter(channel=channel, idempotency_key=idempotency_key).first()
        if not idempotency_key or existing is None:
            raise
        return _idempotent_replay(existing, fingerprint, wait=True), False
    try:
        answer = hospital_client.call(hospital, "confirmRegistration", _lock_message(order, schedule))
    except HospitalRefused as exc:
        reason = mask_text(exc.error_msg or exc.message)[:200]
        _order_lock_failed(order_id=order.pk, reason=f"医院拒绝锁号：{reason}", recover=False)
        raise LockRefused(f"医院拒绝锁号：{reason}") from exc
    except HospitalUnavailable as exc:
        _order_lock_failed(order_id=order.pk, reason=exc.message, recover=_may_have_arrived(exc))
        raise HospitalUnavailableForBooking(f"{hospital.name}暂时无法锁号：{exc.message}。请稍后重试") from exc
    except HospitalBadAnswer as exc:
        _order_lock_failed(order_id=order.pk, reason=exc.message, recover=True)
        raise HospitalAnswerError(f"{hospital.name}的锁号应答无法识别，本次预约未成功，请稍后重试") from exc
    except MessageInvalid as exc:
        _order_lock_failed(order_id=order.pk, reason=exc.summary(), recover=False)
        raise InvalidRequest(exc.violations) from exc
    except BaseException:
        _order_lock_failed(order_id=order.pk, reason="锁号过程异常中断", recover=True)
        raise
    order = _order_lock_succeeded(order_id=order.pk, answer=answer, now=now)
    if order.status == Order.CANCELLED:
        raise ScheduleClosed(f"排班{order.schedule.work_id}已停诊，不能预约")
    if order.status != Order.BOOKED:
        raise HospitalUnavailableForBooking("医院锁号应答超时，本次预约已撤销，请重新预约")
    return order, True


class SameIdempotencyKey(Exception):
    """Raised inside the reservation when a retry finds the first request's order under the key lock."""

    def __init__(self, order: Order):
        super().__init__(order.order_no)
        self.order = order


IDEMPOTENCY_LOCK_SPACE = 5106  # the advisory-lock namespace of "one channel's Idempotency-Key"


def _lock_idempotency_key(channel: Channel, key: str) -> None:
    """Serialise the requests carrying one channel's key until the first one's reservation commits.

    Without it, a retry sent while the first request was at the hospital read no order for the key,
    then met that order as the patient's booking (409 重复预约) or its slot as the last one (号源已满).
    SQLite serialises writers anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [IDEMPOTENCY_LOCK_SPACE, f"{channel.pk}:{key}"]
            )


def _idempotent_replay(order: Order, fingerprint: str, *, wait: bool = False) -> Order:
    if order.idempotency_fingerprint and order.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict("该Idempotency-Key已用于另一笔不同内容的预约请求，请使用新的Idempotency-Key")
    if wait and order.status == Order.LOCKING:
        # The first request is still at the hospital: answer with its outcome, not a half-made order
        # (bounded by the hospital call's own timeout; after that the order is shown as it stands).
        deadline = time.monotonic() + settings.HOSPITAL_CALL_TIMEOUT + 5
        while time.monotonic() < deadline:
            if Order.objects.filter(pk=order.pk).exclude(status=Order.LOCKING).exists():
                break
            time.sleep(0.1)
    return Order.objects.select_related(
        "channel", "hospital", "schedule", "schedule__department", "schedule__doctor"
    ).get(pk=order.pk)


def _check_bookable(schedule: Schedule, now: dt.datetime | None = None) -> None:
    if schedule.status != Schedule.NORMAL:
        raise ScheduleClosed(f"排班{schedule.work_id}{schedule.get_status_display()}，不能预约")
    local = timezone.localtime(now)
    if schedule.work_date < local.date() or (schedule.work_date == local.date() and schedule.stop_time <= local.time()):
        raise ScheduleClosed(f"排班{schedule.work_id}的出诊时间已过，不能预约")


def _check_booking_window(schedule: Schedule, rules: EffectiveRules, now: dt.datetime) -> None:
    """Rule 1 (放号): numbers open `release_days` ahead at `release_time`; booking closes
    `booking_cutoff_minutes` before the session starts. Both refusals name the time."""
    opens = release_at(rules, schedule.work_date)
    if opens is not None and now < opens:
        raise BookingNotOpen(f"排班{schedule.work_id}尚未放号，将于{when_text(opens)}开放预约")
    closes = booking_cutoff_at(rules, schedule.work_date, schedule.start_time)
    if closes is not None and now >= closes:
        raise BookingClosed(f"排班{schedule.work_id}的预约已于{when_text(closes)}截止")


def _check_not_banned(id_hash: str, now: dt.datetime) -> None:
    """Rule 4: a patient under a no-show ban (爽约黑名单) cannot book until the ban ends."""
    today = timezone.localtime(now).date()
    ban = (
        NoShowBan.objects.filter(id_card_hash=id_hash, lifted_at__isnull=True, starts_on__lte=today, ends_on__gte=today)
        .order_by("-ends_on")
        .first()
    )
    if ban is not None:
        raise PatientBanned(
            f"该患者{ban.within_days}天内爽约{ban.no_shows}次，暂停预约至{ban.ends_on:%Y年%m月%d日}（含），期满后可再预约"
        )


def _lock_patient(id_hash: str) -> None:
    # Two requests of one patient (two channels, two hospitals) must not both pass a limit: a
    # transaction-scoped advisory lock keyed by the ID hash serialises them until commit, and the
    # second one's counts (READ COMMITTED, one snapshot per statement) then see the first's order.
    # SQLite (development only) serialises writers by itself.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [PATIENT_LOCK_SPACE, id_hash])


PATIENT_LOCK_SPACE = 5105  # the advisory-lock namespace of "one patient's bookings"


def _check_patient_limits(*, schedule: Schedule, id_hash: str, rules: EffectiveRules) -> None:
    """Rule 2, inside the reservation transaction: the patient's day / week / month limits across
    the region (active and visited orders, by visit date), one order per doctor and session, and
    no overlapping sessions at any hospital."""
    limits = (rules.limit_per_day, rules.limit_per_week, rules.limit_per_month)
    if not any(v is not None for v in limits) and not rules.forbid_same_doctor_session and not rules.forbid_overlap:
        return
    _lock_patient(id_hash)
    day = schedule.work_date
    week = day - dt.timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    held = Order.objects.filter(id_card_hash=id_hash, status__in=(*Order.ACTIVE, Order.VISITED))
    for limit, start, end, label in (
        (rules.limit_per_day, day, day + dt.timedelta(days=1), f"{day:%m月%d日}当天"),
        (rules.limit_per_week, week, week + dt.timedelta(days=7), "当周"),
        (rules.limit_per_month, month, next_month, f"{month:%Y年%m月}"),
    ):
        if limit is None:
            continue
        count = held.filter(schedule__work_date__gte=start, schedule__work_date__lt=end).count()
        if count >= limit:
            raise PatientLimitReached(f"该患者{label}的预约已达上限（{limit}次），不能再预约")
    active = Order.objects.filter(id_card_hash=id_hash, status__in=Order.ACTIVE, schedule__work_date=day)
    if (
        rules.forbid_same_doctor_session
        and active.filter(schedule__doctor_id=schedule.doctor_id, schedule__time_code=schedule.time_code)
        .exclude(schedule=schedule)
        .exists()
    ):
        raise DuplicateBooking("该患者已预约同一医生同一时段，请勿重复预约")
    if rules.forbid_overlap:
        other = (
            active.filter(schedule__start_time__lt=schedule.stop_time, schedule__stop_time__gt=schedule.start_time)
            .exclude(schedule=schedule)
            .select_related("schedule")
            .first()
        )
        if other is not None:
            raise SessionOverlap(
                f"该患者{day:%m月%d日}{other.schedule.start_time:%H:%M}-{other.schedule.stop_time:%H:%M}"
                "已有其他预约，时间重叠，不能预约"
            )


def _check_channel_quota(*, schedule: Schedule, channel: Channel, rules: EffectiveRules, now: dt.datetime) -> None:
    """Rule 7: the channel's share of the schedule's platform-bookable numbers, until the unsold
    quotas are released to every channel. Runs under the schedule's row lock (the conditional
    UPDATE in `_order_reserve`), so two requests racing for a channel's last quota number are
    serialised and the second one counts the first one's order: exactly one wins."""
    released = quota_released_at(rules, schedule.work_date, schedule.start_time)
    if released is not None and now >= released:
        return
    quota = channel_quota(rules, channel_code=channel.code, bookable=schedule.total - schedule.hospital_reserved)
    if quota is None:
        return
    held = Order.objects.filter(
        schedule=schedule, channel=channel, status__in=(*Order.ACTIVE, Order.VISITED, Order.NO_SHOW)
    ).count()
    if held >= quota:
        when = f"，{when_text(released)}起未售出的配额向所有渠道开放" if released else ""
        raise ChannelQuotaExhausted(f"排班{schedule.work_id}分配给本渠道的号源（{quota}个）已约满{when}")


@transaction.atomic
def _order_reserve(
    *,
    channel: Channel,
    schedule: Schedule,
    patient: Patient,
    num_source_id: str,
    idempotency_key: str,
    fingerprint: str,
    rules: EffectiveRules | None = None,
    waitlist: bool = False,
    now: dt.datetime | None = None,
) -> Order:
    if idempotency_key:
        _lock_idempotency_key(channel, idempotency_key)
        existing = Order.objects.filter(channel=channel, idempotency_key=idempotency_key).first()
        if existing is not None:
            raise SameIdempotencyKey(existing)
    rules = rules if rules is not None else rules_for(schedule.hospital_id)
    id_hash = lookup_hash(patient.id_card)
    _check_patient_limits(schedule=schedule, id_hash=id_hash, rules=rules)
    # Many channels race for the last numbers of a session. One conditional UPDATE takes a slot:
    # PostgreSQL takes the row lock and re-checks `remaining > 0` on the latest committed row, so
    # two requests can never both take the last slot (read-then-write would oversell), and the
    # loser changes 0 rows. The row lock is held until this transaction commits, which also
    # serialises the duplicate check below per schedule.
    taken = Schedule.objects.filter(pk=schedule.pk, status=Schedule.NORMAL, remaining__gt=0).update(
        remaining=F("remaining") - 1, booked_count=F("booked_count") + 1
    )
    if not taken:
        current = Schedule.objects.filter(pk=schedule.pk).first()
        if current is None or current.status != Schedule.NORMAL:
            label = current.get_status_display() if current else "不存在"
            raise ScheduleClosed(f"排班{schedule.work_id}{label}，不能预约")
        raise ScheduleFull(f"排班{schedule.work_id}号源已满，请选择其他排班或时段")
    if not waitlist and WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING).exists():
        # Rule 5: a freed number belongs to the waitlist's first in line (checked under the
        # schedule's row lock taken above, so a direct booking cannot slip in before the offer).
        raise ScheduleFull(f"排班{schedule.work_id}号源已满（释放的号源优先给候补患者），可加入候补")
    if not waitlist:
        _check_channel_quota(schedule=schedule, channel=channel, rules=rules, now=now or clock.now())
    if Order.objects.filter(schedule=schedule, id_card_hash=id_hash, status__in=Order.ACTIVE).exists():
        raise DuplicateBooking("该患者已预约此排班，请勿重复预约")
    order = Order.objects.create(
        order_no=new_order_no(),
        channel=channel,
        hospital_id=schedule.hospital_id,
        schedule=schedule,
        num_source_id=num_source_id,
        status=Order.LOCKING,
        lock_transaction_id=hospital_client.new_transaction_id(),
        fee=schedule.price,
        patient_name=patient.name,
        id_card=patient.id_card,
        phone=patient.phone,
        card_no=patient.card_no,
        card_type=patient.card_type,
        sex=patient.sex,
        age=patient.age,
        address=patient.address,
        idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint,
    )
    _record(order, from_status="", actor=_actor_channel(channel), reason="渠道下单，向医院锁号")
    return order


def _lock_message(order: Order, schedule: Schedule) -> dict:
    return {
        "TransactionId": order.lock_transaction_id,
        "PatientNo": order.card_no or None,
        "CardType": order.card_type or None,
        "Name": order.patient_name,
        "Sex": order.sex or None,
        "SexName": SEX_NAMES.get(order.sex) if order.sex else None,
        "Age": order.age or None,
        "TelephoneNo": order.phone,
        "Address": order.address or None,
        "IDCode": order.id_card,
        "WorkId": schedule.work_id,
        "numSourceId": order.num_source_id or None,
        "channel": order.channel.code if order.channel.code in CHANNEL_CODES else None,
    }


def _may_have_arrived(exc: HospitalUnavailable) -> bool:
    """Whether a failed call may nevertheless have reached the hospital (so a lock may exist there).

    An open circuit, a missing address or a connection never established sent nothing; a read
    timeout or an HTTP 5xx may have been applied by the hospital after all.
    """
    cause = exc.__cause__
    if isinstance(cause, CircuitOpen) or (cause is None and "未配置" in exc.message):
        return False
    if isinstance(cause, requests.ConnectionError):
        reason = getattr(cause.args[0], "reason", None) if cause.args else None
        # Refused or timed out while connecting (NewConnectionError derives from ConnectTimeoutError).
        if isinstance(reason, ConnectTimeoutError):
            return False
    return True


@transaction.atomic
def _order_lock_failed(*, order_id: int, reason: str, recover: bool) -> None:
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None or order.status != Order.LOCKING:
        return  # reconciled meanwhile
    order.status = Order.FAILED
    order.failure_reason = reason[:500]
    order.save(update_fields=["status", "failure_reason", "updated_at"])
    _release_count(order.schedule_id)
    if recover:
        # The hospital may hold the lock after all: find it by the lock's TransactionId and unlock it.
        _outbox_add(order, OutboxMessage.UNLOCK, {"recover": True})
    _record(order, from_status=Order.LOCKING, actor=SYSTEM, reason=f"锁号失败，号源已释放：{reason}")


@transaction.atomic
def _order_lock_succeeded(*, order_id: int, answer: dict, now: dt.datetime | None) -> Order:
    """Record the hospital's lock. The order comes back 1 已预约, or (nothing raised in here, so that
    what is written commits) 已退号 if its session was stopped meanwhile, or still `failed` if the
    reconciliation gave it up meanwhile; in both cases the hospital's lock is undone (UnlockReg)."""
    now = now or timezone.now()
    order = _order_for_update(pk=order_id)
    workflow_id = answer["WorkFlowId"]
    if order.status != Order.LOCKING:
        # The call outlived the reconciliation, which released the slot: undo the hospital's lock.
        _outbox_unlock(order, workflow_id=workflow_id, serial_number=answer.get("SerialNumber"))
        return order
    order.workflow_id = workflow_id
    order.serial_number = answer.get("SerialNumber")
    order.worktime = (answer.get("Worktime") or "")[:20]
    if answer.get("Fee") is not None:
        order.fee = answer["Fee"]
    order.hospital_status = Order.BOOKED
    order.locked_at = now
    order.lock_expires_at = now + dt.timedelta(minutes=int(settings.ORDER_LOCK_MINUTES))
    if order.schedule.status == Schedule.STOPPED:
        # Stopped while the lock was on its way: the stop's rules apply, and the new lock is undone.
        order.status, order.cancelled_by, order.cancelled_at = Order.CANCELLED, Order.BY_STOP, now
        order.mark, order.mark_reason = Order.MARK_STOPPED, order.schedule.stop_reason[:500]
        order.save()
        _outbox_unlock(order, workflow_id=workflow_id, serial_number=order.serial_number)
        _record(order, from_status=Order.LOCKING, actor=SYSTEM, reason="锁号时排班已停诊，已撤销锁号")
        return order
    order.status = Order.BOOKED
    order.save()
    _record(order, from_status=Order.LOCKING, actor=_actor_hospital(order.hospital), reason="医院锁号成功")
    minutes = int(settings.ORDER_LOCK_MINUTES)
    notify_patient(
        order=order,
        kind=PatientNotification.LOCKED,
        message=(
            f"您已预约{_session_text(order)}，序号{order.serial_number or '-'}，挂号费{order.fee}元。"
            f"请在{minutes}分钟内（{timezone.localtime(order.lock_expires_at):%H:%M}前）完成支付，逾期自动取消。"
            f"订单号{order.order_no}。"
        ),
    )
    return order


def _outbox_unlock(order: Order, *, workflow_id: str, serial_number) -> None:
    """Owe the hospital an UnlockReg for `workflow_id` (once: a pending or sent unlock of it counts)."""
    payload = {"WorkFlowId": workflow_id, "SerialNumber": str(serial_number) if serial_number is not None else None}
    unlocks = list(OutboxMessage.objects.filter(order=order, kind=OutboxMessage.UNLOCK).order_by("pk"))
    if any(message.payload.get("WorkFlowId") == workflow_id for message in unlocks):
        return
    pending = next((message for message in unlocks if message.status == OutboxMessage.PENDING), None)
    if pending is not None:
        # A recovery still to run: the lock it looks for is now known.
        OutboxMessage.objects.filter(pk=pending.pk, status=OutboxMessage.PENDING).update(payload=payload)
        return
    # First unlock of the order, or another lock than the one a recovery undid (a hospital that
    # does not recognise a repeated TransactionId made a second lock): each is unlocked.
    key = OutboxMessage.UNLOCK if not unlocks else f"{OutboxMessage.UNLOCK}:{workflow_id}"
    _outbox_add(order, OutboxMessage.UNLOCK, payload, dedupe_key=key[:50])


# -- payment (PaymentNotice 3.3) -----------------------------------------------------------------


def order_pay(
    *,
    channel: Channel,
    order_no: str,
    pay_type: str,
    amount: Decimal,
    pay_trade_no: str = "",
    pay_channel: str = "",
    now: dt.datetime | None = None,
) -> tuple[Order, bool]:
    """The patient paid: 4 在线支付 (money through the platform: ledger entry, status 2 已支付) or
    3 现场支付 (the hospital keeps the number for the counter; status stays 1, the lock no longer
    expires). The hospital is told with PaymentNotice through the outbox. Returns (order, changed);
    the same payment again is answered with the order unchanged.
    """
    pay_type, pay_trade_no, pay_channel = (
        (pay_type or "").strip(),
        (pay_trade_no or "").strip(),
        (pay_channel or "").strip(),
    )
    violations = []
    if pay_type not in dict(Order.PAY_TYPES):
        violations.append(Violation("pay_type", "应为3（现场支付）或4（在线支付）"))
    if amount is None or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        violations.append(Violation("amount", "应为大于0、最多两位小数的金额"))
    if pay_type == Order.PAY_ONLINE:
        if not pay_trade_no:
            violations.append(Violation("pay_trade_no", "在线支付时为必填项（支付流水号）"))
        if pay_channel not in dict(Order.PAY_CHANNELS):
            violations.append(Violation("pay_channel", "在线支付时应为alipay（支付宝）或wepay（微信）"))
    if len(pay_trade_no) > 40:
        violations.append(Violation("pay_trade_no", "长度不能超过40个字符"))
    if violations:
        raise InvalidRequest(violations)
    return _order_pay(
        channel=channel,
        order_no=order_no,
        pay_type=pay_type,
        amount=amount,
        pay_trade_no=pay_trade_no,
        pay_channel=pay_channel if pay_type == Order.PAY_ONLINE else "",
        now=now or timezone.now(),
    )


@transaction.atomic
def _order_pay(*, channel, order_no, pay_type, amount, pay_trade_no, pay_channel, now) -> tuple[Order, bool]:
    order = _order_for_update(channel=channel, order_no=order_no)
    online = pay_type == Order.PAY_ONLINE
    if online and order.paid_online:
        if order.pay_trade_no != pay_trade_no:
            raise OrderStateConflict(f"订单{order_no}已由另一笔支付（支付流水号{order.pay_trade_no}）支付")
        return order, False
    if not online and order.pay_type == Order.PAY_ONSITE and order.status == Order.BOOKED:
        return order, False
    if order.status != Order.BOOKED:
        raise OrderStateConflict(f"订单{order_no}{order.get_status_display()}，不能支付")
    if order.pay_type != Order.PAY_ONSITE and order.lock_expires_at and now >= order.lock_expires_at:
        raise LockExpired(f"订单{order_no}已超过锁号时间，号源已释放，请重新预约")
    if amount != order.fee:
        raise PaymentMismatch(f"支付金额{amount}元与挂号费{order.fee}元不一致")
    payload = {
        "WorkFlowId": order.workflow_id,
        "SerialNumber": str(order.serial_number) if order.serial_number is not None else None,
        "PayType": pay_type,
        "PayAmount": str(amount),
        "payTradeNo": pay_trade_no or None,
        "payChannel": pay_channel or None,
        "channel": channel.code if channel.code in CHANNEL_CODES else None,
    }
    order.pay_type, order.pay_trade_no, order.pay_channel = pay_type, pay_trade_no, pay_channel
    WaitlistEntry.objects.filter(order=order, status=WaitlistEntry.OFFERED).update(status=WaitlistEntry.BOOKED)
    if online:
        order.status, order.paid_at = Order.PAID, now
        reason = f"在线支付{amount}元（{order.get_pay_channel_display()}，流水号{pay_trade_no}）"
        _ledger_write(order, kind=LedgerEntry.PAYMENT, reason="挂号费支付", created_at=now)
    else:
        order.lock_expires_at = None  # the hospital keeps the number for the counter
        reason = "选择现场支付，号源保留至就诊时到窗口缴费"
    order.save()
    _outbox_add(order, OutboxMessage.PAYMENT, payload, dedupe_key=f"{OutboxMessage.PAYMENT}:{pay_type}")
    _record(order, from_status=Order.BOOKED, actor=_actor_channel(channel), reason=reason)
    notify_patient(
        order=order,
        kind=PatientNotification.PAID,
        key=f"{PatientNotification.PAID}:{pay_type}",
        message=(
            f"您预约的{_session_text(order)}已支付挂号费{amount}元，请按时就诊。订单号{order.order_no}。"
            if online
            else f"您预约的{_session_text(order)}已选择现场支付，请于就诊当日到医院窗口缴费。订单号{order.order_no}。"
        ),
    )
    return order, True


def _ledger_write(order: Order, *, kind: str, reason: str, created_at: dt.datetime | None = None) -> LedgerEntry:
    """The order's registration-fee payment or refund (once each: `entry_key`)."""
    entry, _ = LedgerEntry.objects.get_or_create(
        entry_key=f"{order.order_no}:{kind}",
        defaults={
            "batch": order.order_no,
            "pay_trade_no": order.pay_trade_no,
            "type": LedgerEntry.TYPE_REGISTRATION,
            "kind": kind,
            "hospital_id": order.hospital_id,
            "order": order,
            "channel_id": order.channel_id,
            "pay_channel": order.pay_channel,
            "patient_name": order.patient_name,
            "amount": order.fee,
            "reason": reason[:300],
            "created_at": created_at or timezone.now(),
        },
    )
    return entry


def _refund_if_paid(order: Order, reason: str) -> LedgerEntry | None:
    return _ledger_write(order, kind=LedgerEntry.REFUND, reason=reason) if order.paid_online else None


# -- cancellation by the patient (3.5 getPromiseNotice / 3.2 UnlockReg) --------------------------


@transaction.atomic
def order_cancel(
    *, channel: Channel, order_no: str, reason: str = "", now: dt.datetime | None = None
) -> tuple[Order, bool]:
    """The patient cancels (退号): status 3, the slot given back, a refund entry for an online
    payment, and the hospital told through the outbox: 退号通知 (3.5) for a paid (or pay-at-counter)
    order, UnlockReg (3.2) for an unpaid lock. Returns (order, changed); cancelling a cancelled
    order again answers it unchanged. An order the hospital cancelled itself is never cancelled
    towards the hospital again.
    """
    now = now or clock.now()
    reason = (reason or "").strip()[:300] or "患者取消预约"
    order = _order_for_update(channel=channel, order_no=order_no)
    if order.status == Order.CANCELLED:
        return order, False
    if order.status not in (Order.BOOKED, Order.PAID):
        raise OrderStateConflict(f"订单{order_no}{order.get_status_display()}，不能退号")
    _check_cancel_deadline(order, now)
    previous = order.status
    order.status, order.cancelled_by, order.cancelled_at = Order.CANCELLED, Order.BY_CHANNEL, now
    order.save()
    _outbox_supersede_payment(order)
    WaitlistEntry.objects.filter(order=order, status=WaitlistEntry.OFFERED).update(status=WaitlistEntry.CANCELLED)
    _release_count(order.schedule_id)
    refund = _refund_if_paid(order, f"患者退号：{reason}")
    if previous == Order.PAID or order.pay_type == Order.PAY_ONSITE:
        payload = {
            "WorkFlowId": order.workflow_id,
            "workDate": timezone.localtime(now).strftime("%Y-%m-%d %H:%M:%S"),
            "desc": reason,
        }
        _outbox_add(order, OutboxMessage.CANCEL, payload)
    else:
        _outbox_unlock(order, workflow_id=order.workflow_id, serial_number=order.serial_number)
    _record(order, from_status=previous, actor=_actor_channel(channel), reason=reason)
    refund_text = f"挂号费{refund.amount}元将原路退回。" if refund else ""
    notify_patient(
        order=order,
        kind=PatientNotification.CANCELLED,
        message=f"您预约的{_session_text(order)}已退号。{refund_text}订单号{order.order_no}。",
    )
    # After the outbox row: its delivery (the number given back at the hospital) runs first on commit.
    _waitlist_kick(order.schedule_id)
    return order, True


def _check_cancel_deadline(order: Order, now: dt.datetime) -> None:
    """Rule 3: a booked (paid or pay-at-counter) order can be cancelled until the deadline, e.g.
    14:00 of the working day before the visit. An unpaid online lock holds nothing and may always
    be given back."""
    if order.status == Order.BOOKED and order.pay_type != Order.PAY_ONSITE:
        return
    deadline = cancel_deadline_at(rules_for(order.hospital_id), order.schedule.work_date)
    if deadline is not None and now >= deadline:
        raise CancelDeadlinePassed(f"退号截止时间为{when_text(deadline)}，已过截止时间，不能退号")


def _outbox_supersede_payment(order: Order) -> int:
    # A PaymentNotice the hospital has not received (pending, or failed for staff) must never be
    # sent after the cancellation: the hospital would refuse it (已退号，不能支付) and it would stay
    # failed forever. One being sent right now (lease held) is left to finish: the cancellation
    # is queued behind it (outbox_deliver sends an order's messages in order).
    return (
        OutboxMessage.objects.filter(
            order=order, kind=OutboxMessage.PAYMENT, status__in=(OutboxMessage.PENDING, OutboxMessage.FAILED)
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()))
        .update(status=OutboxMessage.SUPERSEDED, last_error="订单已退号，支付通知无需再发送", claimed_until=None)
    )


# -- waitlist (候补) ---------------------------------------------------------------------------------


def _waitlist_kick(schedule_id: int) -> None:
    """A number was given back: after the commit, offer it to the schedule's waitlist (a task, so
    that the hospital is never called inside this transaction)."""
    if WaitlistEntry.objects.filter(schedule_id=schedule_id, status=WaitlistEntry.WAITING).exists():
        from booking.tasks import waitlist_offer

        transaction.on_commit(lambda: waitlist_offer.delay(schedule_id), robust=True)


def _waitlist_schedule(schedule_id: int, now: dt.datetime) -> tuple[Schedule, dt.datetime]:
    schedule = schedule_get(schedule_id=schedule_id)
    _check_bookable(schedule, now)
    closes = waitlist_closes_at(rules_for(schedule.hospital_id), schedule.work_date, schedule.start_time)
    if closes is None:
        raise WaitlistClosed("该排班未开放候补")
    if now >= closes:
        raise WaitlistClosed(f"排班{schedule.work_id}的候补已于{when_text(closes)}截止")
    return schedule, closes


def waitlist_join(
    *, channel: Channel, schedule_id: int, patient: Patient, now: dt.datetime | None = None
) -> WaitlistEntry:
    """A patient joins a full schedule's waitlist (rule 5): only when no number is left, before the
    waitlist's cut-off, once per patient and schedule, and never while banned."""
    now = now or clock.now()
    patient, violations = _patient_clean(patient)
    if violations:
        raise InvalidRequest(violations)
    schedule, _closes = _waitlist_schedule(schedule_id, now)
    id_hash = lookup_hash(patient.id_card)
    _check_not_banned(id_hash, now)
    if (
        schedule.remaining > 0
        and not WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING).exists()
    ):
        raise WaitlistNotNeeded(f"排班{schedule.work_id}尚有号源，请直接预约")
    if Order.objects.filter(schedule=schedule, id_card_hash=id_hash, status__in=Order.ACTIVE).exists():
        raise DuplicateBooking("该患者已预约此排班，无需候补")
    try:
        with transaction.atomic():
            entry = WaitlistEntry.objects.create(
                schedule=schedule,
                channel=channel,
                patient_name=patient.name,
                id_card=patient.id_card,
                phone=patient.phone,
                card_no=patient.card_no,
                card_type=patient.card_type,
                sex=patient.sex,
                age=patient.age,
                address=patient.address,
                created_at=now,
            )
    except IntegrityError as exc:
        raise DuplicateBooking("该患者已在此排班候补，请勿重复加入") from exc
    return entry


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


@transaction.atomic
def waitlist_leave(*, channel: Channel, schedule_id: int, entry_id: int) -> WaitlistEntry:
    """The patient leaves the waitlist (an offered lock is an order: cancel the order instead)."""
    entry = (
        WaitlistEntry.objects.select_for_update().filter(pk=entry_id, schedule_id=schedule_id, channel=channel).first()
    )
    if entry is None:
        raise WaitlistEntryNotFound(f"候补{entry_id}不存在")
    if entry.status == WaitlistEntry.CANCELLED:
        return entry
    if entry.status != WaitlistEntry.WAITING:
        raise OrderStateConflict(f"候补{entry_id}{entry.get_status_display()}，不能取消候补")
    entry.status = WaitlistEntry.CANCELLED
    entry.save(update_fields=["status", "updated_at"])
    return entry


def waitlist_offer(*, schedule_id: int, now: dt.datetime | None = None) -> int:
    """Offer the schedule's free numbers to its waitlist, first in line first, each through the
    normal lock (order_lock: rules, hospital lock, lock time as the payment deadline). Called by a
    task after the commit that freed a number, and by the beat sweeper. Returns the offers made."""
    _no_transaction()
    now = now or clock.now()
    offers = 0
    while True:
        schedule = Schedule.objects.select_related("hospital").filter(pk=schedule_id).first()
        if schedule is None:
            return offers
        closes = waitlist_closes_at(rules_for(schedule.hospital_id), schedule.work_date, schedule.start_time)
        if schedule.status != Schedule.NORMAL or closes is None or now >= closes:
            WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING).update(
                status=WaitlistEntry.CLOSED, note="候补已截止，未能候补成功"
            )
            return offers
        if schedule.remaining <= 0:
            return offers
        with transaction.atomic():
            # Claimed under a row lock (SKIP LOCKED): a task and the sweeper never offer to the same entry.
            entry = (
                WaitlistEntry.objects.select_for_update(skip_locked=True)
                .filter(schedule=schedule, status=WaitlistEntry.WAITING)
                .select_related("channel")
                .order_by("created_at", "pk")
                .first()
            )
            if entry is None:
                return offers
            entry.status = WaitlistEntry.OFFERED
            entry.save(update_fields=["status", "updated_at"])
        patient = Patient(
            name=entry.patient_name,
            id_card=entry.id_card,
            phone=entry.phone,
            card_no=entry.card_no,
            card_type=entry.card_type,
            sex=entry.sex,
            age=entry.age,
            address=entry.address,
        )
        try:
            order, _created = order_lock(
                channel=entry.channel,
                hospital_no=schedule.hospital.hospital_no,
                work_id=schedule.work_id,
                patient=patient,
                idempotency_key=f"waitlist-{entry.pk}",
                now=now,
                waitlist=True,
            )
        except (ScheduleFull, HospitalUnavailableForBooking, HospitalAnswerError):
            # Taken meanwhile, or the hospital is away: the entry keeps its place for the next try.
            WaitlistEntry.objects.filter(pk=entry.pk).update(status=WaitlistEntry.WAITING)
            return offers
        except DomainError as exc:
            WaitlistEntry.objects.filter(pk=entry.pk).update(status=WaitlistEntry.FAILED, note=exc.message[:300])
            continue
        WaitlistEntry.objects.filter(pk=entry.pk).update(order=order, note="已为候补患者锁号，待支付")
        deadline = (
            f"，请于{when_text(order.lock_expires_at)}前支付，逾期号源将顺延给下一位候补患者"
            if order.lock_expires_at
            else ""
        )
        notify_patient(
            order=order,
            kind=PatientNotification.LOCKED,
            key="waitlist",
            message=f"您候补的{_session_text(order)}已为您锁号{deadline}。订单号{order.order_no}。",
        )
        offers += 1


def waitlists_offer_due(*, now: dt.datetime | None = None) -> int:
    """The beat sweeper: offer free numbers of schedules with a waiting list (a lost task), and close
    lists past their cut-off. Returns the offers made."""
    ids = set(
        WaitlistEntry.objects.filter(status=WaitlistEntry.WAITING).values_list("schedule_id", flat=True).distinct()
    )
    return sum(waitlist_offer(schedule_id=pk, now=now) for pk in ids)


# -- reminders ------------------------------------------------------------------------------------


def orders_remind_due(*, now: dt.datetime | None = None, limit: int = 2000) -> int:
    """Rule 6 (the beat task): the day before the visit, from the rules' reminder time on, each
    booked or paid order's patient is reminded once (the notification's key makes it idempotent)."""
    now = now or clock.now()
    local = timezone.localtime(now)
    tomorrow = local.date() + dt.timedelta(days=1)
    orders = (
        Order.objects.filter(status__in=(Order.BOOKED, Order.PAID), schedule__work_date=tomorrow)
        .exclude(notifications__key=PatientNotification.REMINDER)
        .select_related("hospital", "schedule", "schedule__department", "schedule__doctor")
        .order_by("pk")[:limit]
    )
    sent = 0
    for order in orders:
        at = rules_for(order.hospital_id).reminder_time
        if at is None or local.time() < at:
            continue
        with transaction.atomic():
            if notify_patient(
                order=order,
                kind=PatientNotification.REMINDER,
                key=PatientNotification.REMINDER,
                message=f"就诊提醒：您预约了明天的{_session_text(order)}，请按时就诊。订单号{order.order_no}。",
            ):
                sent += 1
    return sent


# -- expiry of unpaid locks (UnlockReg 3.2) ------------------------------------------------------


def orders_expire_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Release every unpaid lock past its lock time (the periodic task); returns how many."""
    now = now or timezone.now()
    due = list(
        Order.objects.filter(status=Order.BOOKED, lock_expires_at__lte=now)
        .exclude(pay_type=Order.PAY_ONSITE)
        .order_by("lock_expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for pk in due if order_expire(order_id=pk, now=now))


@transaction.atomic
def order_expire(*, order_id: int, now: dt.datetime | None = None) -> bool:
    """An unpaid lock outlived the lock time (ORDER_LOCK_MINUTES): unlock it at the hospital
    (UnlockReg through the outbox), give the slot back, tell the patient. False if not due."""
    now = now or timezone.now()
    order = _order_for_update(pk=order_id)
    if (
        order.status != Order.BOOKED
        or order.pay_type == Order.PAY_ONSITE
        or order.lock_expires_at is None
        or order.lock_expires_at > now
    ):
        return False
    order.status = Order.EXPIRED
    order.save(update_fields=["status", "updated_at"])
    _release_count(order.schedule_id)
    WaitlistEntry.objects.filter(order=order, status=WaitlistEntry.OFFERED).update(
        status=WaitlistEntry.EXPIRED, note="超过支付时限未支付，号源已顺延给下一位候补患者"
    )
    _outbox_unlock(order, workflow_id=order.workflow_id, serial_number=order.serial_number)
    _waitlist_kick(order.schedule_id)  # after the UnlockReg row: unlocked at the hospital first
    minutes = int(settings.ORDER_LOCK_MINUTES)
    _record(order, from_status=Order.BOOKED, actor=SYSTEM, reason=f"超过锁号时间（{minutes}分钟）未支付，已解除锁定")
    notify_patient(
        order=order,
        kind=PatientNotification.EXPIRED,
        message=f"您预约的{_session_text(order)}因{minutes}分钟内未支付已自动取消。订单号{order.order_no}。",
    )
    transaction.on_commit(LOCK_EXPIRIES.inc)
    return True


# -- the hospital's reports: 2.4 getPromiseNotice, and GetOrderDetailInfo (3.6) ------------------

PROMISE_CANCELLED, PROMISE_VISITED, PROMISE_NO_SHOW, PROMISE_OTHER = "3", "4", "6", "9"


@transaction.atomic
def order_report(
    *,
    hospital: Hospital,
    workflow_id: str,
    work_type: str,
    occurred_at: dt.datetime | None = None,
    desc: str = "",
    actor: str | None = None,
) -> Order:
    """One record of the hospital's 2.4 report: 3 退号 (the hospital cancelled: refund if paid, and
    the platform never sends its own cancel for it), 4 履约, 6 爽约 (a NoShowRecord against the
    patient's ID hash), 9 其他 (recorded only). A repeat of the same report changes nothing."""
    actor = actor or _actor_hospital(hospital)
    desc = (desc or "").strip()[:300]
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .filter(hospital=hospital, workflow_id=workflow_id)
        .first()
    )
    if order is None:
        raise OrderNotFound(f"挂号单{workflow_id}不存在")
    if occurred_at is not None and timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at)
    now = timezone.now()
    previous = order.status
    if work_type == PROMISE_OTHER:
        _record(order, from_status=previous, actor=actor, reason=f"医院报告（其他）：{desc or '未说明'}")
        return order
    target = {PROMISE_CANCELLED: Order.CANCELLED, PROMISE_VISITED: Order.VISITED, PROMISE_NO_SHOW: Order.NO_SHOW}.get(
        work_type
    )
    if target is None:
        raise DomainError(f"workType {work_type}不是有效的履约状态（3退号、4履约、6爽约、9其他）")
    if previous == target or (target == Order.CANCELLED and previous == Order.EXPIRED):
        # Already so: a repeat, or our own cancellation. If ours has not reached the hospital yet,
        # it never will: the hospital has cancelled the order itself (CONTRACT.md section 5).
        if target == Order.CANCELLED and _outbox_supersede(order):
            _record(
                order,
                from_status=previous,
                actor=actor,
                reason=f"医院报告已退号：{desc or '未说明原因'}，待发通知不再发送",
            )
        return order
    if previous not in (Order.BOOKED, Order.PAID):
        raise OrderStateConflict(
            f"挂号单{workflow_id}{order.get_status_display()}，不能改为{dict(Order.STATUSES)[target]}"
        )
    order.status = target
    order.hospital_status = target
    if target == Order.CANCELLED:
        order.cancelled_by, order.cancelled_at = Order.BY_HOSPITAL, occurred_at or now
        order.save()
        _release_count(order.schedule_id)
        _outbox_supersede(order)
        _waitlist_kick(order.schedule_id)
        refund = _refund_if_paid(order, f"医院退号：{desc or '未说明原因'}")
        refund_text = f"挂号费{refund.amount}元将原路退回。" if refund else ""
        notify_patient(
            order=order,
            kind=PatientNotification.CANCELLED,
            message=f"医院已取消您预约的{_session_text(order)}（{desc or '医院退号'}）。{refund_text}订单号{order.order_no}。",
        )
        reason = f"医院退号：{desc or '未说明原因'}"
    else:
        order.finished_at = occurred_at or now
        order.save()
        if target == Order.NO_SHOW:
            record, created = NoShowRecord.objects.get_or_create(
                order=order,
                defaults={
                    "id_card_hash": order.id_card_hash,
                    "hospital_id": order.hospital_id,
                    "work_date": order.schedule.work_date,
                    "occurred_at": occurred_at,
                },
            )
            if created:
                no_show_ban_impose(record=record, now=clock.now())
        reason = f"医院报告{'履约' if target == Order.VISITED else '爽约'}" + (f"：{desc}" if desc else "")
    _record(order, from_status=previous, actor=actor, reason=reason)
    return order


def no_show_ban_impose(*, record: NoShowRecord, now: dt.datetime) -> NoShowBan | None:
    """Rule 4: after a no-show, the region's tiers (e.g. 3 in 90 days → 90 days, 6 in 180 → 180)
    decide a ban on the patient, counted region-wide from NoShowRecord by visit date. The highest
    tier reached applies; nothing new when a longer ban already runs."""
    tiers = rules_for(None).ban_tiers
    today = timezone.localtime(now).date()
    best: tuple[int, int, int] | None = None
    for tier in tiers:
        since = record.work_date - dt.timedelta(days=tier.within_days - 1)
        count = NoShowRecord.objects.filter(
            id_card_hash=record.id_card_hash, work_date__gte=since, work_date__lte=record.work_date
        ).count()
        if count >= tier.no_shows and (best is None or tier.ban_days > best[2]):
            best = (count, tier.within_days, tier.ban_days)
    if best is None:
        return None
    ends_on = today + dt.timedelta(days=best[2] - 1)
    running = NoShowBan.objects.filter(
        id_card_hash=record.id_card_hash, lifted_at__isnull=True, ends_on__gte=ends_on
    ).exists()
    if running:
        return None
    ban = NoShowBan.objects.create(
        id_card_hash=record.id_card_hash,
        no_shows=best[0],
        within_days=best[1],
        starts_on=today,
        ends_on=ends_on,
        trigger=record,
        created_at=now,
    )
    audit_record(
        action="爽约禁约",
        obj=ban,
        after={"starts_on": str(ban.starts_on), "ends_on": str(ban.ends_on), "no_shows": ban.no_shows},
        actor=SYSTEM,
        reason=f"{best[1]}天内爽约{best[0]}次",
    )
    return ban


@transaction.atomic
def no_show_ban_change(*, ban_id: int, ends_on: dt.date | None, reason: str, user=None) -> NoShowBan:
    """Staff lift a ban (`ends_on` None) or shorten it, with a reason (audited)."""
    reason = (reason or "").strip()[:300]
    if not reason:
        raise InvalidRequest([Violation("reason", "为必填项（解除或缩短禁约的原因）")])
    ban = NoShowBan.objects.select_for_update().get(pk=ban_id)
    before = {"ends_on": str(ban.ends_on), "lifted": ban.lifted_at is not None}
    if ends_on is None:
        ban.lifted_at = timezone.now()
        action = "解除爽约禁约"
    else:
        if ends_on > ban.ends_on:
            raise InvalidRequest([Violation("ends_on", "只能缩短禁约，不能延长")])
        ban.ends_on = ends_on
        action = "缩短爽约禁约"
    ban.change_reason = reason
    ban.changed_by = user if getattr(user, "is_authenticated", False) else None
    ban.save()
    audit_record(
        action=action,
        obj=ban,
        before=before,
        after={"ends_on": str(ban.ends_on), "lifted": ban.lifted_at is not None},
        user=user,
        reason=reason,
    )
    return ban


def _outbox_supersede(order: Order) -> int:
    """The hospital has cancelled the order: nothing still queued for it is to be sent (CONTRACT.md 5)."""
    return OutboxMessage.objects.filter(order=order, status=OutboxMessage.PENDING).update(
        status=OutboxMessage.SUPERSEDED, last_error="医院已退号，无需再通知医院", claimed_until=None
    )


def orders_report(*, hospital: Hospital, records: Sequence[dict]) -> tuple[list[str], list[str]]:
    """2.4 for a whole message: each record on its own (one unknown WorkFlowId does not undo the
    others). Returns (processed WorkFlowIds, errors naming the record path)."""
    processed: list[str] = []
    errors: list[str] = []
    for position, record in enumerate(records, start=1):
        path = _record_path(record, position, "WorkInfo")
        try:
            with transaction.atomic():
                order_report(
                    hospital=hospital,
                    workflow_id=record["WorkFlowId"],
                    work_type=record["workType"],
                    occurred_at=record.get("workDate"),
                    desc=record.get("desc") or "",
                )
        except DomainError as exc:
            errors.append(f"{path}/WorkFlowId {exc.message}")
            continue
        processed.append(record["WorkFlowId"])
    return processed, errors


def order_refresh(*, order: Order, force: bool = False, now: dt.datetime | None = None) -> Order:
    """Ask the hospital for the order's state (GetOrderDetailInfo 3.6), at most every
    BOOKING_ORDER_REFRESH_SECONDS, and apply what it has decided (退号, 履约, 爽约). An unreachable
    hospital leaves the order as stored."""
    _no_transaction()
    now = now or timezone.now()
    if not order.workflow_id or order.status not in (Order.BOOKED, Order.PAID):
        return order
    every = dt.timedelta(seconds=int(_setting("BOOKING_ORDER_REFRESH_SECONDS", 30)))
    if not force and order.refreshed_at and now - order.refreshed_at < every:
        return order
    try:
        answer = hospital_client.call(order.hospital, "GetOrderDetailInfo", {"WorkFlowId": order.workflow_id})
    except (HospitalError, MessageInvalid) as exc:
        logger.info("订单%s查询医院状态失败：%s", order.order_no, getattr(exc, "message", type(exc).__name__))
        return order
    status = answer["WorkFlowStatus"]
    Order.objects.filter(pk=order.pk).update(hospital_status=status, refreshed_at=now)
    if status in (PROMISE_CANCELLED, PROMISE_VISITED, PROMISE_NO_SHOW):
        try:
            order_report(
                hospital=order.hospital,
                workflow_id=order.workflow_id,
                work_type=status,
                desc="订单查询（GetOrderDetailInfo）所得",
                actor=f"{_actor_hospital(order.hospital)}（订单查询）",
            )
        except DomainError as exc:
            logger.info("订单%s按医院状态更新失败：%s", order.order_no, exc.message)
    return order_get(channel=order.channel, order_no=order.order_no)


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


# -- reconciling interrupted locks ---------------------------------------------------------------


def orders_reconcile_locking(*, now: dt.datetime | None = None) -> int:
    """Orders left in `locking` by a crash (older than BOOKING_LOCKING_STALE_SECONDS, and far
    longer than a call may take): the slot is given back, the order fails, and the hospital's
    lock, should one exist, is found by its TransactionId and unlocked (outbox). Returns how many."""
    now = now or timezone.now()
    stale = max(int(_setting("BOOKING_LOCKING_STALE_SECONDS", 120)), 4 * int(settings.HOSPITAL_CALL_TIMEOUT))
    ids = list(
        Order.objects.filter(status=Order.LOCKING, created_at__lt=now - dt.timedelta(seconds=stale)).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in ids:
        _order_lock_failed(order_id=pk, reason="锁号过程中断（平台未收到医院应答），号源已释放", recover=True)
    return len(ids)


# == the outbox: messages owed to hospitals ======================================================


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery attempt: sent, failed (staff must look), superseded, skipped
    (another worker holds it, or it is no longer pending) or retry (after `retry_in` seconds)."""

    outcome: str
    retry_in: float = 0.0

    SENT, FAILED, SUPERSEDED, SKIPPED, RETRY = "sent", "failed", "superseded", "skipped", "retry"


def _outbox_add(order: Order, kind: str, payload: dict, *, dedupe_key: str | None = None) -> OutboxMessage:
    """Write a message owed to the order's hospital (inside the caller's transaction); send it after commit."""
    message = OutboxMessage.objects.create(
        order=order,
        hospital_id=order.hospital_id,
        kind=kind,
        dedupe_key=dedupe_key or kind,
        transaction_id=hospital_client.new_transaction_id(),
        payload=payload,
        next_attempt_at=timezone.now(),
    )
    from booking.tasks import deliver_outbox

    transaction.on_commit(lambda: deliver_outbox.delay(message.pk), robust=True)
    return message


def _backoff(attempts: int) -> float:
    base = float(_setting("BOOKING_OUTBOX_BACKOFF_SECONDS", 5))
    cap = float(_setting("BOOKING_OUTBOX_BACKOFF_MAX_SECONDS", 600))
    return min(base * 2 ** max(attempts - 1, 0), cap)


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=3 * float(settings.HOSPITAL_CALL_TIMEOUT) + 30)


def outbox_deliver(*, message_id: int) -> Delivery:
    """Send one outbox message to its hospital (at least once; the hospital may see a repeat).

    Earlier messages of the same order go first (a payment notice before the cancellation).
    A refusal is the hospital's answer: the row fails and staff look at it. No answer (down,
    timeout, circuit open, unreadable answer) is retried with exponential backoff until
    BOOKING_OUTBOX_MAX_ATTEMPTS, then the row fails (staff may retry it from the admin).
    """
    _no_transaction()
    message = OutboxMessage.objects.filter(pk=message_id).first()
    if message is None or message.status != OutboxMessage.PENDING:
        return Delivery(Delivery.SKIPPED)
    earlier = list(
        OutboxMessage.objects.filter(order_id=message.order_id, status=OutboxMessage.PENDING, pk__lt=message.pk)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in earlier:
        result = outbox_deliver(message_id=pk)
        if result.outcome in (Delivery.RETRY, Delivery.SKIPPED):
            wait = max(result.retry_in, 5.0)
            OutboxMessage.objects.filter(pk=message.pk, status=OutboxMessage.PENDING).update(
                next_attempt_at=timezone.now() + dt.timedelta(seconds=wait)
            )
            return Delivery(Delivery.RETRY, wait)
    now = timezone.now()
    # A lease, so that one worker at a time sends the row (the task and the sweeper may both hold its id).
    claimed = (
        OutboxMessage.objects.filter(pk=message_id, status=OutboxMessage.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + _lease())
    )
    if not claimed:
        return Delivery(Delivery.SKIPPED)
    message = OutboxMessage.objects.select_related("order", "order__channel", "order__schedule", "hospital").get(
        pk=message_id
    )
    order = message.order
    if message.kind in (OutboxMessage.CANCEL, OutboxMessage.UNLOCK) and order.cancelled_by == Order.BY_HOSPITAL:
        _outbox_finish(message, OutboxMessage.SUPERSEDED, "医院已退号，无需再通知医院")
        return Delivery(Delivery.SUPERSEDED)
    if message.kind == OutboxMessage.PAYMENT and order.status == Order.CANCELLED:
        # Cancelled while the notice was waiting (or a staff retry afterwards): never pay a cancelled order.
        _outbox_finish(message, OutboxMessage.SUPERSEDED, "订单已退号，支付通知无需再发送")
        return Delivery(Delivery.SUPERSEDED)
    try:
        data = dict(message.payload)
        if message.kind == OutboxMessage.UNLOCK and data.pop("recover", False):
            found = _recover_lock(message)
            if found is None:
                _outbox_finish(message, OutboxMessage.SENT, "医院没有该锁号，无需解除")
                return Delivery(Delivery.SENT)
            data = found
        hospital_client.call(message.hospital, message.kind, {**data, "TransactionId": message.transaction_id})
    except HospitalRefused as exc:
        _outbox_finish(message, OutboxMessage.FAILED, f"医院拒绝：{mask_text(exc.error_msg or exc.message)}")
        return Delivery(Delivery.FAILED)
    except MessageInvalid as exc:
        _outbox_finish(message, OutboxMessage.FAILED, f"报文不符合接口规范：{exc.summary()}")
        return Delivery(Delivery.FAILED)
    except (HospitalUnavailable, HospitalBadAnswer) as exc:
        attempts = message.attempts + 1
        if attempts >= int(_setting("BOOKING_OUTBOX_MAX_ATTEMPTS", 20)):
            _outbox_finish(message, OutboxMessage.FAILED, f"重试{attempts}次仍未送达：{exc.message}", attempts=attempts)
            return Delivery(Delivery.FAILED)
        wait = _backoff(attempts)
        OutboxMessage.objects.filter(pk=message.pk).update(
            attempts=attempts,
            last_error=mask_text(exc.message)[:1000],
            next_attempt_at=timezone.now() + dt.timedelta(seconds=wait),
            claimed_until=None,
        )
        return Delivery(Delivery.RETRY, wait)
    _outbox_finish(message, OutboxMessage.SENT, "")
    return Delivery(Delivery.SENT)


def _outbox_finish(message: OutboxMessage, status: str, note: str, *, attempts: int | None = None) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=status,
        attempts=attempts if attempts is not None else message.attempts + 1,
        last_error=mask_text(note)[:1000],
        sent_at=timezone.now() if status == OutboxMessage.SENT else None,
        claimed_until=None,
    )


def _recover_lock(message: OutboxMessage) -> dict | None:
    """The UnlockReg fields of a lock whose outcome was unknown: the lock is repeated with its
    original TransactionId (a conforming hospital answers a repeat with the lock it made); a
    refusal means the hospital holds nothing. Raises HospitalUnavailable to retry later."""
    order = message.order
    try:
        answer = hospital_client.call(message.hospital, "confirmRegistration", _lock_message(order, order.schedule))
    except HospitalRefused:
        return None
    found = {"WorkFlowId": answer["WorkFlowId"], "SerialNumber": answer.get("SerialNumber")}
    found["SerialNumber"] = str(found["SerialNumber"]) if found["SerialNumber"] is not None else None
    # Remembered, so that a retry of the unlock does not lock again.
    OutboxMessage.objects.filter(pk=message.pk).update(payload=found)
    return found


def outbox_sweep(*, now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(seconds=60)) -> int:
    """Queue again the pending messages whose delivery is overdue (a lost task, a crashed worker)."""
    from booking.tasks import deliver_outbox

    now = now or timezone.now()
    due = list(
        OutboxMessage.objects.filter(status=OutboxMessage.PENDING, next_attempt_at__lte=now - grace)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
    for pk in due:
        deliver_outbox.delay(pk)
    return len(due)


@transaction.atomic
def outbox_retry(*, message_ids: Sequence[int], user=None) -> int:
    """Staff: send failed (or waiting) messages again now, with a fresh retry budget."""
    messages = list(
        OutboxMessage.objects.select_for_update()
        .filter(pk__in=list(message_ids), status__in=[OutboxMessage.FAILED, OutboxMessage.PENDING])
        .order_by("pk")
    )
    from booking.tasks import deliver_outbox

    for message in messages:
        before = {"status": message.status, "attempts": message.attempts}
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=OutboxMessage.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_until=None
        )
        audit_record(
            action="重新发送医院通知",
            obj=message,
            before=before,
            after={"status": OutboxMessage.PENDING, "attempts": 0},
            user=user,
            reason=message.last_error,
        )
        transaction.on_commit(lambda pk=message.pk: deliver_outbox.delay(pk), robust=True)
    return len(messages)


# == live data from the hospital: slots, queue, remaining count, cards ===========================


def _hospital_call(hospital: Hospital, name: str, data: dict, *, what: str) -> dict:
    """A read from a hospital, its failures as the booking errors the API answers with."""
    _no_transaction()
    try:
        return hospital_client.call(hospital, name, data)
    except HospitalRefused as exc:
        raise Conflict(f"{what}失败：{mask_text(exc.error_msg or exc.message)[:200]}", code="hospital_refused") from exc
    except HospitalUnavailable as exc:
        raise HospitalUnavailableForBooking(f"{what}失败：{exc.message}，请稍后重试") from exc
    except HospitalBadAnswer as exc:
        raise HospitalAnswerError(f"{what}失败：医院应答无法识别") from exc
    except MessageInvalid as exc:
        raise InvalidRequest(exc.violations) from exc


def schedule_get(*, schedule_id: int) -> Schedule:
    schedule = Schedule.objects.select_related("hospital", "department", "doctor").filter(pk=schedule_id).first()
    if schedule is None:
        raise ScheduleNotFound(f"排班{schedule_id}不存在")
    return schedule


def schedule_slots(*, schedule: Schedule) -> list[dict]:
    """The session's time slots, live from the hospital (GetDaypartingDetailInfo 3.8), cached for
    BOOKING_SLOTS_CACHE_SECONDS so a popular session does not become a hospital's load."""
    key = f"booking:slots:{schedule.pk}"
    slots = cache.get(key)
    if slots is not None:
        return slots
    answer = _hospital_call(
        schedule.hospital, "GetDaypartingDetailInfo", {"WorkId": schedule.work_id}, what="查询分时段号源"
    )
    labels = dict(catalog.SLOT_STATUSES)
    slots = [
        {
            "num_source_id": r["numSourceId"],
            "number": r["CurNum"],
            "start": r["StartDate"],
            "end": r["EndDate"],
            "see_time": r["SeeDate"],
            "status": r["Status"],
            "status_label": labels.get(r["Status"], ""),
            "available": r["Status"] == "1",
        }
        for r in answer.get("NumberList") or []
    ]
    cache.set(key, slots, int(_setting("BOOKING_SLOTS_CACHE_SECONDS", 10)))
    return slots


def schedule_queue(*, schedule: Schedule) -> dict:
    """The session's queue, live from the hospital (GetLineupDetailInfo 3.7), cached a few seconds."""
    key = f"booking:queue:{schedule.pk}"
    queue = cache.get(key)
    if queue is not None:
        return queue
    answer = _hospital_call(schedule.hospital, "GetLineupDetailInfo", {"WorkId": schedule.work_id}, what="查询排队信息")
    record = (answer.get("WaitList") or [{}])[0]
    queue = {
        "seen": record.get("RegNum"),
        "remaining": record.get("RegRemainNum"),
        "waiting": record.get("WaitPers"),
        "current_number": record.get("NowSeq"),
        "registered": record.get("HasRegNum"),
        "not_checked_in": record.get("NotReportNum"),
        "checked_in_waiting": record.get("ReportWaitNum"),
    }
    cache.set(key, queue, int(_setting("BOOKING_QUEUE_CACHE_SECONDS", 5)))
    return queue


def schedule_refresh_remaining(*, schedule: Schedule) -> tuple[Schedule, bool]:
    """The remaining count, live from the hospital (getRegistrationInfo 3.4), stored on the schedule
    (as a sync would); at most every BOOKING_SLOTS_CACHE_SECONDS per schedule. Returns (schedule,
    live); an unreachable hospital leaves the stored count (live False)."""
    key = f"booking:remaining:{schedule.pk}"
    if cache.get(key) is not None:
        return schedule, True
    try:
        answer = hospital_client.call(
            schedule.hospital, "getRegistrationInfo", {"WorkId": schedule.work_id, "WorkDate": schedule.work_date}
        )
    except (HospitalError, MessageInvalid):
        return schedule, False
    record = next((r for r in answer.get("WorkInfo") or [] if r.get("WorkId") == schedule.work_id), None)
    if record is None:
        return schedule, False
    remaining = max(0, min(int(record["RegistrationNumber"]), schedule.total))
    if remaining != schedule.remaining:
        Schedule.objects.filter(pk=schedule.pk).update(remaining=remaining, updated_at=timezone.now())
        schedule.remaining = remaining
    cache.set(key, remaining, int(_setting("BOOKING_SLOTS_CACHE_SECONDS", 10)))
    return schedule, True


def _hospital_for(hospital_no: str) -> Hospital:
    hospital = Hospital.objects.filter(hospital_no=(hospital_no or "").strip(), is_deleted=False).first()
    if hospital is None:
        raise NotFound(f"医院{hospital_no}不存在")
    return hospital


def card_check(*, hospital_no: str, card_no: str, card_type: str, id_card: str, name: str) -> dict:
    """Whether a medical card is valid for the patient (CheckMediCardIdService 6.1)."""
    violations = []
    for field, value, label in (
        ("card_no", card_no, "诊疗卡号"),
        ("id_card", id_card, "身份证号"),
        ("name", name, "姓名"),
    ):
        if not (value or "").strip():
            violations.append(Violation(field, f"为必填项（{label}）"))
    if (card_type or "01") not in dict(Order.CARD_TYPES):
        violations.append(Violation("card_type", "应为01（院内就诊卡）或02（居民健康卡）"))
    if violations:
        raise InvalidRequest(violations)
    hospital = _hospital_for(hospital_no)
    answer = _hospital_call(
        hospital,
        "CheckMediCardIdService",
        {
            "MediCardId": card_no.strip(),
            "MediCardType": card_type or "01",
            "UserCardNo": id_card.strip(),
            "UserName": name.strip(),
        },
        what="验证诊疗卡",
    )
    return {
        "valid": bool(answer.get("IsValid")),
        "reason": mask_text(answer.get("ErrorMsg") or ""),
        "name": answer.get("UserName") or "",
        "phone": answer.get("UserPhone") or "",
    }


def cards_query(
    *,
    hospital_no: str,
    id_card: str,
    name: str = "",
    phone: str = "",
    address: str = "",
    card_type: str = "01",
    health_card_num: str = "",
) -> list[dict]:
    """The patient's medical cards at a hospital (queryCardListInfo 6.2); the hospital registers a
    patient it does not know and issues a card."""
    violations = []
    if not (id_card or "").strip():
        violations.append(Violation("id_card", "为必填项（身份证号）"))
    if (card_type or "01") not in ("01", "02"):
        violations.append(Violation("card_type", "应为01（身份证）或02（健康卡）"))
    if violations:
        raise InvalidRequest(violations)
    hospital = _hospital_for(hospital_no)
    answer = _hospital_call(
        hospital,
        "queryCardListInfo",
        {
            "UserCardNo": id_card.strip(),
            "UserName": (name or "").strip() or None,
            "UserAddress": (address or "").strip() or None,
            "UserTel": (phone or "").strip() or None,
            "CardType": card_type or "01",
            "HealthCardNum": (health_card_num or "").strip() or None,
        },
        what="查询诊疗卡",
    )
    return [
        {
            "card_no": r["CardNo"],
            "name": r.get("Name") or "",
            "created_at": r.get("CreateTime") or "",
            "last_used_at": r.get("LastTime") or "",
            "phone": r.get("phone") or "",
        }
        for r in answer.get("cardList") or []
    ]
