"""The life cycle of a booking (Order): lock, payment, cancellation, expiry of unpaid locks, and
the reconciliation of interrupted locks. Rules:

- A hospital is never called inside a database transaction (the hospital client refuses to):
  a lock reserves the platform's count and creates the order in one short transaction, calls
  confirmRegistration outside it, then records the outcome in a second one.
- Every other message to a hospital is an outbox row (`booking.services.outbox`) written in the
  transaction of the state change, delivered after the commit by Celery (booking.tasks) and,
  should that task be lost, by the periodic sweeper. Delivery is at least once; the
  TransactionId is fixed per row.
- Every change of an order's status or mark writes an OrderTransition and an audit entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import secrets
import time
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from booking import clock
from booking.errors import (
    BookingClosed,
    BookingNotOpen,
    CancelDeadlinePassed,
    ChannelQuotaExhausted,
    DuplicateBooking,
    HospitalUnavailableForBooking,
    IdempotencyConflict,
    LockExpired,
    OrderStateConflict,
    PaymentMismatch,
    ScheduleClosed,
    ScheduleFull,
    ScheduleNotFound,
)
from booking.hospital import lock_failure, refuse_if_circuit_open
from booking.models import Channel, LedgerEntry, Order, OutboxMessage, PatientNotification, Schedule, WaitlistEntry
from booking.notify import notify_patient
from booking.rules import (
    EffectiveRules,
    booking_cutoff_at,
    cancel_deadline_at,
    channel_quota,
    quota_released_at,
    release_at,
    rules_for,
    when_text,
)
from booking.services._common import (
    SYSTEM,
    _actor_channel,
    _actor_hospital,
    _check_bookable,
    _lock_message,
    _order_for_update,
    _record,
    _release_count,
    _session_text,
    _setting,
    _waitlist_kick,
)
from booking.services.outbox import _outbox_add, _outbox_supersede_payment, _outbox_unlock
from booking.services.patients import (
    Patient,
    _check_not_banned,
    _check_patient_limits,
    _patient_clean,
    refuse_naming_only_own,
)
from regional import hospital_client
from regional.errors import InvalidInput
from regional.hospital_client import (
    CalledInTransaction,
    HospitalError,
)
from regional.messages import MessageInvalid, Violation
from regional.messages.codes import ChannelCode, PayChannel, PayType
from regional.models import Hospital
from regional.observability import LOCK_EXPIRIES
from regional.pii import lookup_hash
from regional.selectors import hospital_by_no

logger = logging.getLogger("booking.orders")


def _fingerprint(*parts: str) -> str:
    # Keyed (HMAC), so that the stored fingerprint of a body holding an ID number reveals nothing.
    return lookup_hash(json.dumps(parts, ensure_ascii=False))


def new_order_no() -> str:
    """The platform trade number: `YY` + local time to the second + 8 random digits (unique column)."""
    return f"YY{timezone.localtime():%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"


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
       A save that keeps failing after the hospital's yes undoes the hospital's lock instead
       (`_order_lock_record`: state `failed`, UnlockReg through the outbox, 503 to the channel).
    A crash between 1 and 3 leaves the order in `locking`; `orders_reconcile_locking` releases it.
    A repeat with the same `idempotency_key` returns the first order (created False).
    """
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
        raise InvalidInput(violations)
    fingerprint = ""
    if idempotency_key:
        fingerprint = _fingerprint(hospital_no, work_id, num_source_id, *dataclasses.astuple(patient))
        existing = Order.objects.filter(channel=channel, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _idempotent_replay(existing, fingerprint, wait=True), False
    if _refuse_if_full(hospital_no=hospital_no, work_id=work_id, now=now):
        if idempotency_key:
            # A retry whose first request took the last number: the answer is that request's order.
            existing = Order.objects.filter(channel=channel, idempotency_key=idempotency_key).first()
            if existing is not None:
                return _idempotent_replay(existing, fingerprint, wait=True), False
        raise ScheduleFull(f"排班{work_id}号源已满，请选择其他排班或时段")
    schedule = (
        Schedule.objects.select_related("hospital", "department", "doctor")
        .filter(hospital__hospital_no=hospital_no, hospital__is_deleted=False, work_id=work_id)
        .first()
    )
    if schedule is None:
        hospital_by_no(hospital_no)
        raise ScheduleNotFound(f"排班{work_id}不存在")
    hospital = schedule.hospital
    _check_bookable(schedule, now)
    rules = rules_for(hospital)
    _check_booking_window(schedule, rules, now)
    if schedule.remaining <= 0:
        if idempotency_key:
            # A retry whose first request took the last number: the answer is that request's order.
            existing = Order.objects.filter(channel=channel, idempotency_key=idempotency_key).first()
            if existing is not None:
                return _idempotent_replay(existing, fingerprint, wait=True), False
        # Just read: a rush's losers are answered from the platform's own count, without a
        # transaction, the hospital or any further query (the ban check below costs one, and a
        # banned patient could not have this number either). Only a refusal is decided here; a slot
        # is only ever taken by the conditional UPDATE in `_order_reserve`.
        raise ScheduleFull(f"排班{work_id}号源已满，请选择其他排班或时段")
    _check_not_banned(lookup_hash(patient.id_card), now)
    refuse_if_circuit_open(hospital)
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
    except (HospitalError, MessageInvalid) as exc:
        failure = lock_failure(exc, hospital=hospital)
        _order_lock_failed(order_id=order.pk, reason=failure.note, recover=failure.may_have_arrived)
        raise failure.error from exc
    except CalledInTransaction:
        _order_lock_failed(order_id=order.pk, reason="锁号调用位于数据库事务中，未发送", recover=False)
        raise
    except BaseException:
        _order_lock_failed(order_id=order.pk, reason="锁号过程异常中断", recover=True)
        raise
    order = _order_lock_record(order_id=order.pk, answer=answer, now=now, reserved=order)
    if order.status == Order.CANCELLED:
        raise ScheduleClosed(f"排班{order.schedule.work_id}已停诊，不能预约")
    if order.status != Order.BOOKED:
        raise HospitalUnavailableForBooking("医院锁号应答超时，本次预约已撤销，请重新预约")
    return order, True


# The platform's own count of a session, with what the refusals before "full" need: one narrow
# query, compiled once (the ORM's schedule-and-hospital row cost three times the bare refusal).
_COUNT_SQL = (
    "SELECT s.id, s.hospital_id, s.status, s.work_date, s.start_time, s.stop_time, s.remaining"
    f" FROM {Schedule._meta.db_table} s JOIN {Hospital._meta.db_table} h ON h.id = s.hospital_id"
    " WHERE h.hospital_no = %s AND NOT h.is_deleted AND s.work_id = %s ORDER BY s.id LIMIT 1"
)


def _refuse_if_full(*, hospital_no: str, work_id: str, now: dt.datetime) -> bool:
    """True when the session's count is zero (the caller refuses: 号源已满). A rush's losers stop
    here, from the platform's own count: one query, no transaction, no hospital call. The refusals
    that come before "full" (not bookable, outside the booking window) keep their precedence; every
    other case (unknown session, numbers left) goes on to the full path, which decides. Only a
    refusal is decided from this read; a slot is only ever taken by the conditional UPDATE in
    `_order_reserve`."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [hospital_no, work_id])
        row = cursor.fetchone()
    if row is None or row[6] > 0:
        return False
    pk, hospital_id, status, work_date, start_time, stop_time, remaining = row
    schedule = Schedule(
        pk=pk, hospital_id=hospital_id, work_id=work_id, status=status, work_date=work_date,
        start_time=start_time, stop_time=stop_time, remaining=remaining,
    )  # fmt: skip
    _check_bookable(schedule, now)
    _check_booking_window(schedule, rules_for(hospital_id), now)
    return True


# Waits before each further attempt to record a lock the hospital confirmed (a busy database, e.g.
# SQLite's one writer, usually frees within a second).
RECORD_RETRY_DELAYS = (0.2, 0.5, 1.0)


def _order_lock_record(*, order_id: int, answer: dict, now: dt.datetime, reserved: Order | None = None) -> Order:
    """Record the hospital's yes, retrying a failed save. Should it keep failing, the lock is undone
    instead: the order fails, its slot comes back and an UnlockReg for the hospital's WorkFlowId goes
    through the outbox, so neither side keeps a number nobody holds. Should even that fail, the
    order stays `locking` and `orders_reconcile_locking` finds the lock by its TransactionId and
    undoes it."""
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return _order_lock_succeeded(order_id=order_id, answer=answer, now=now, reserved=reserved)
        except DatabaseError:
            if delay is None:
                break
            time.sleep(delay)
    logger.error("订单%s锁号成功但保存失败，已改为解除医院锁号", order_id, exc_info=True)
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            _order_lock_unrecorded(order_id=order_id, answer=answer)
            break
        except DatabaseError:
            if delay is None:
                raise
            time.sleep(delay)
    raise HospitalUnavailableForBooking("平台繁忙，本次预约未能保存，医院已锁定的号源将自动释放，请稍后重新预约")


@transaction.atomic
def _order_lock_unrecorded(*, order_id: int, answer: dict) -> None:
    """The hospital locked a number the platform could not record: fail the order, give its slot
    back and owe the hospital the UnlockReg of that lock."""
    order = _order_for_update(pk=order_id)
    if order.status != Order.LOCKING:
        # Reconciled meanwhile (it gave the slot back): only the hospital's lock is left to undo.
        _outbox_unlock(order, workflow_id=answer["WorkFlowId"], serial_number=answer.get("SerialNumber"))
        return
    order.status = Order.FAILED
    order.failure_reason = "医院已锁号，但平台保存失败，已通知医院解除锁号"
    order.save(update_fields=["status", "failure_reason", "updated_at"])
    _release_count(order.schedule_id)
    _outbox_unlock(order, workflow_id=answer["WorkFlowId"], serial_number=answer.get("SerialNumber"))
    _record(order, from_status=Order.LOCKING, actor=SYSTEM, reason=order.failure_reason)


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


def _check_booking_window(schedule: Schedule, rules: EffectiveRules, now: dt.datetime) -> None:
    """Rule 1 (放号): numbers open `release_days` ahead at `release_time`; booking closes
    `booking_cutoff_minutes` before the session starts. Both refusals name the time."""
    opens = release_at(rules, schedule.work_date)
    if opens is not None and now < opens:
        raise BookingNotOpen(f"排班{schedule.work_id}尚未放号，将于{when_text(opens)}开放预约")
    closes = booking_cutoff_at(rules, schedule.work_date, schedule.start_time)
    if closes is not None and now >= closes:
        raise BookingClosed(f"排班{schedule.work_id}的预约已于{when_text(closes)}截止")


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
    _check_patient_limits(schedule=schedule, id_hash=id_hash, rules=rules, channel_id=channel.pk)
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
    holders = Order.objects.filter(schedule=schedule, id_card_hash=id_hash, status__in=Order.ACTIVE)
    holders = list(holders.values_list("channel_id", flat=True))
    if holders:
        refuse_naming_only_own(channel.pk, holders, DuplicateBooking("该患者已预约此排班，请勿重复预约"))
    order = Order.objects.create(
        order_no=new_order_no(),
        channel=channel,
        hospital_id=schedule.hospital_id,
        schedule=schedule,
        num_source_id=num_source_id,
        status=Order.LOCKING,
        lock_transaction_id=hospital_client.new_transaction_id(),
        fee=schedule.price,
        **patient.row_fields(),
        idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint,
    )
    _record(order, from_status="", actor=_actor_channel(channel), reason="渠道下单，向医院锁号")
    return order


@transaction.atomic
def _order_lock_failed(*, order_id: int, reason: str, recover: bool, actor: str = SYSTEM, user=None) -> None:
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None or order.status != Order.LOCKING:
        return  # reconciled meanwhile
    order.status = Order.FAILED
    order.failure_reason = reason[:500]
    order.save(update_fields=["status", "failure_reason", "updated_at"])
    if not recover:
        _release_count(order.schedule_id)
        _record(order, from_status=Order.LOCKING, actor=actor, user=user, reason=f"锁号失败，号源已释放：{reason}")
        return
    # The hospital may hold the lock: the number stays out of sale (`holds`) until the outcome is
    # settled. Not sent now: settling reads the hospital's count back, later and outside this request
    # (without a broker, tasks would run in it), by the sweep.
    _outbox_add(order, OutboxMessage.UNLOCK, {"recover": True, "holds": True}, now=False)
    _record(
        order, from_status=Order.LOCKING, actor=actor, user=user, reason=f"锁号结果未知，号源暂不释放，待核实：{reason}"
    )


def _order_for_update_as_reserved(reserved: Order) -> Order:
    """The reserved order's row, locked and read afresh with its session (a stop or a change may have
    come meanwhile); the channel, hospital, department and doctor rows the reservation read are
    reused where the fresh session still points at them (five joins under FOR UPDATE were the lock
    path's slowest statement)."""
    order = Order.objects.select_for_update(of=("self",)).select_related("schedule").get(pk=reserved.pk)
    if order.channel_id == reserved.channel_id:
        order.channel = reserved.channel
    held, fresh = reserved.schedule, order.schedule
    for name in ("hospital", "department", "doctor"):
        related = held._state.fields_cache.get(name)
        if related is not None and getattr(fresh, f"{name}_id") == related.pk:
            setattr(fresh, name, related)
    if order.hospital_id == fresh.hospital_id and "hospital" in fresh._state.fields_cache:
        order.hospital = fresh.hospital
    return order


# What recording the hospital's lock changes (a full save wrote, and encrypted again, every column).
_LOCKED_FIELDS = (
    "workflow_id", "serial_number", "worktime", "fee", "hospital_status", "locked_at", "lock_expires_at", "status",
    "updated_at",
)  # fmt: skip


@transaction.atomic
def _order_lock_succeeded(
    *, order_id: int, answer: dict, now: dt.datetime | None, reserved: Order | None = None
) -> Order:
    """Record the hospital's lock. The order comes back 1 已预约, or (nothing raised in here, so that
    what is written commits) 已退号 if its session was stopped meanwhile, or still `failed` if the
    reconciliation gave it up meanwhile; in both cases the hospital's lock is undone (UnlockReg)."""
    now = now or timezone.now()
    order = _order_for_update(pk=order_id) if reserved is None else _order_for_update_as_reserved(reserved)
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
    order.save(update_fields=_LOCKED_FIELDS)
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
    if pay_type not in PayType.values:
        violations.append(Violation("pay_type", "应为3（现场支付）或4（在线支付）"))
    if amount is None or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        violations.append(Violation("amount", "应为大于0、最多两位小数的金额"))
    if pay_type == Order.PAY_ONLINE:
        if not pay_trade_no:
            violations.append(Violation("pay_trade_no", "在线支付时为必填项（支付流水号）"))
        if pay_channel not in PayChannel.values:
            violations.append(Violation("pay_channel", "在线支付时应为alipay（支付宝）或wepay（微信）"))
    if len(pay_trade_no) > 40:
        violations.append(Violation("pay_trade_no", "长度不能超过40个字符"))
    if violations:
        raise InvalidInput(violations)
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
        "channel": channel.code if channel.code in ChannelCode.values else None,
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


def _refund_if_paid(order: Order, reason: str, *, now: dt.datetime | None = None) -> LedgerEntry | None:
    # Stamped with the operation's time (the same clock as the cancellation), not the wall clock.
    return _ledger_write(order, kind=LedgerEntry.REFUND, reason=reason, created_at=now) if order.paid_online else None


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
    _order_cancel(
        order, by=Order.BY_CHANNEL, actor=_actor_channel(channel), reason=reason, refund_reason="患者退号", now=now
    )
    return order, True


def _order_cancel(
    order: Order, *, by: str, actor: str, reason: str, refund_reason: str, now: dt.datetime, user=None
) -> LedgerEntry | None:
    """Cancel a booked or paid order (locked for update by the caller) within the cancellation
    rules: status 3, the slot given back, the refund of an online payment, the hospital told through
    the outbox and the patient notified. Returns the refund entry, if any."""
    if order.status not in (Order.BOOKED, Order.PAID):
        raise OrderStateConflict(f"订单{order.order_no}{order.get_status_display()}，不能退号")
    _check_cancel_deadline(order, now)
    previous = order.status
    order.status, order.cancelled_by, order.cancelled_at = Order.CANCELLED, by, now
    order.save()
    _outbox_supersede_payment(order)
    WaitlistEntry.objects.filter(order=order, status=WaitlistEntry.OFFERED).update(status=WaitlistEntry.CANCELLED)
    _release_count(order.schedule_id)
    refund = _refund_if_paid(order, f"{refund_reason}：{reason}", now=now)
    if previous == Order.PAID or order.pay_type == Order.PAY_ONSITE:
        payload = {
            "WorkFlowId": order.workflow_id,
            "workDate": timezone.localtime(now).strftime("%Y-%m-%d %H:%M:%S"),
            "desc": reason,
        }
        _outbox_add(order, OutboxMessage.CANCEL, payload)
    else:
        _outbox_unlock(order, workflow_id=order.workflow_id, serial_number=order.serial_number)
    _record(order, from_status=previous, actor=actor, reason=reason, user=user)
    refund_text = f"挂号费{refund.amount}元将原路退回。" if refund else ""
    notify_patient(
        order=order,
        kind=PatientNotification.CANCELLED,
        message=f"您预约的{_session_text(order)}已退号。{refund_text}订单号{order.order_no}。",
    )
    # After the outbox row: its delivery (the number given back at the hospital) runs first on commit.
    _waitlist_kick(order.schedule_id)
    return refund


def _check_cancel_deadline(order: Order, now: dt.datetime) -> None:
    """Rule 3: a booked (paid or pay-at-counter) order can be cancelled until the deadline, e.g.
    14:00 of the working day before the visit. An unpaid online lock holds nothing and may always
    be given back."""
    if order.status == Order.BOOKED and order.pay_type != Order.PAY_ONSITE:
        return
    deadline = cancel_deadline_at(rules_for(order.hospital_id), order.schedule.work_date)
    if deadline is not None and now >= deadline:
        raise CancelDeadlinePassed(f"退号截止时间为{when_text(deadline)}，已过截止时间，不能退号")


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


# -- reconciling interrupted locks ---------------------------------------------------------------


def locking_stale_after() -> dt.timedelta:
    """How long a lock may be under way before it counts as interrupted (far longer than a call may take)."""
    seconds = max(int(_setting("BOOKING_LOCKING_STALE_SECONDS", 120)), 4 * int(settings.HOSPITAL_CALL_TIMEOUT))
    return dt.timedelta(seconds=seconds)


def orders_reconcile_locking(*, now: dt.datetime | None = None) -> int:
    """Orders left in `locking` by a crash (older than BOOKING_LOCKING_STALE_SECONDS, and far
    longer than a call may take): the slot is given back, the order fails, and the hospital's
    lock, should one exist, is found by its TransactionId and unlocked (outbox). Returns how many."""
    now = now or timezone.now()
    ids = list(
        Order.objects.filter(status=Order.LOCKING, created_at__lt=now - locking_stale_after()).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in ids:
        _order_lock_failed(order_id=pk, reason="锁号过程中断（平台未收到医院应答），号源已释放", recover=True)
    return len(ids)
