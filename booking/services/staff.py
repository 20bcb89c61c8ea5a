"""What staff do to an order for a patient (the hotline's actions in the console): cancel it with
its refund, resolve an order stuck in 锁号中 by asking the hospital, re-send the patient's last
notification. Each records the staff member in the order's history and the audit trail, and each
either does all of its writes or none (one transaction; the hospital is asked outside it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from booking import clock, notify
from booking.errors import HospitalUnavailableForBooking, OrderStateConflict
from booking.hospital import delivery_failure, refuse_if_circuit_open
from booking.models import LedgerEntry, Order, OutboxMessage, PatientNotification, Schedule
from booking.services import outbox
from booking.services._common import _order_for_update
from booking.services.orders import _order_cancel, _order_lock_failed, locking_stale_after
from regional.audit import audit_record
from regional.delivery import DeliveryStatus
from regional.errors import InvalidInput
from regional.hospital_client import HospitalError
from regional.messages import Violation


def _actor_staff(user) -> str:
    return f"工作人员{getattr(user, 'username', '') or ''}"


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput([Violation("reason", "请填写原因")])
    return reason[:300]


# -- 退号退费 --------------------------------------------------------------------------------------


@transaction.atomic
def order_staff_cancel(
    *, order_id: int, user, reason: str, now: dt.datetime | None = None
) -> tuple[Order, LedgerEntry | None]:
    """Staff cancel an order for the patient (cancel reason `staff`), within the same rules as the
    patient's own cancellation (state, deadline): the refund of an online payment, the hospital told
    through the outbox, the patient notified. Returns (order, refund entry or None)."""
    reason = _reason_required(reason)
    now = now or clock.now()
    order = _order_for_update(pk=order_id)
    refund = _order_cancel(
        order, by=Order.BY_STAFF, actor=_actor_staff(user), reason=reason, refund_reason="工作人员代患者退号",
        now=now, user=user,
    )  # fmt: skip
    return order, refund


# -- 处理锁号中 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockResolution:
    """What asking the hospital settled: `released` (the hospital holds nothing, the number is back
    on sale) or `unknown` (the hospital very likely holds it, or could not say: the order waits in
    待核实的锁号 for staff to call the hospital). `note` is the Chinese explanation staff read."""

    outcome: str
    note: str

    RELEASED, UNKNOWN = "released", "unknown"


def _recovery_row(order: Order, *, lock: bool = False) -> OutboxMessage | None:
    rows = OutboxMessage.objects.filter(order=order, kind=OutboxMessage.UNLOCK).order_by("-pk")
    if lock:
        rows = rows.select_for_update()
    return next((row for row in rows if row.payload.get("recover")), None)


def _unsettled(order: Order) -> bool:
    row = _recovery_row(order)
    return row is not None and row.status in (OutboxMessage.PENDING, OutboxMessage.UNKNOWN)


def order_lock_resolve(*, order_id: int, user, reason: str, now: dt.datetime | None = None) -> LockResolution:
    """Resolve an order stuck in 锁号中 for longer than a lock may take (or a failed lock whose outcome
    is still unknown) by asking the hospital for the schedule's count (getRegistrationInfo, the
    lost-lock settlement): a count above the platform's means the hospital holds nothing, and the
    number is released; otherwise the order waits in 待核实的锁号. The hospital is asked first,
    outside any transaction: if it cannot be reached (or its circuit is open) nothing is written."""
    reason = _reason_required(reason)
    now = now or timezone.now()
    order = Order.objects.select_related("hospital", "schedule").get(pk=order_id)
    if order.status == Order.LOCKING:
        if now - order.created_at < locking_stale_after():
            raise OrderStateConflict(
                f"订单{order.order_no}正在锁号（{timezone.localtime(order.created_at):%H:%M}下单），请几分钟后再处理"
            )
    elif not (order.status == Order.FAILED and _unsettled(order)):
        raise OrderStateConflict(
            f"订单{order.order_no}{order.get_status_display()}，不是锁号中或待核实的锁号，无需处理"
        )
    refuse_if_circuit_open(order.hospital)
    schedule = Schedule.objects.select_related("doctor", "department").get(pk=order.schedule_id)
    try:
        at_hospital = outbox._hospital_count(order.hospital, schedule)
    except outbox.Unsettled as exc:
        raise OrderStateConflict(f"{exc.note}，订单未做更改") from exc
    except HospitalError as exc:
        raise HospitalUnavailableForBooking(
            f"{order.hospital.name}暂时无法连接（{delivery_failure(exc).note}），订单未做更改，请稍后再试"
        ) from exc
    return _lock_settle(order_id=order.pk, at_hospital=at_hospital, user=user, reason=reason)


@transaction.atomic
def _lock_settle(*, order_id: int, at_hospital: int, user, reason: str) -> LockResolution:
    """With the hospital's count in hand: fail a stuck lock (the number held) and settle it at once."""
    order = _order_for_update(pk=order_id)
    actor = _actor_staff(user)
    if order.status == Order.LOCKING:
        _order_lock_failed(
            order_id=order.pk, reason=f"工作人员处理锁号中：{reason}", recover=True, actor=actor, user=user
        )
    row = _recovery_row(order, lock=True)
    if row is None or row.status not in (OutboxMessage.PENDING, OutboxMessage.UNKNOWN):
        # Decided meanwhile (the lock recorded, or settled by the sweep): nothing left to settle.
        order.refresh_from_db()
        return LockResolution(LockResolution.RELEASED, f"锁号已有结果：{order.get_status_display()}")
    try:
        outbox._settle_by_count(row, at_hospital)
        outcome = LockResolution.RELEASED
    except outbox.Unsettled as exc:
        OutboxMessage.objects.filter(pk=row.pk).update(
            status=OutboxMessage.UNKNOWN, last_error=exc.note[:1000], claimed_until=None
        )
        outcome = LockResolution.UNKNOWN
    note = OutboxMessage.objects.values_list("last_error", flat=True).get(pk=row.pk)
    audit_record(
        action="处理锁号中：向医院核实", obj=order, before={"status": row.status}, after={"status": outcome},
        user=user, actor=actor, reason=f"{reason}；{note}",
    )  # fmt: skip
    return LockResolution(outcome, note)


# -- 重发通知 --------------------------------------------------------------------------------------


@transaction.atomic
def notification_resend(*, order_id: int, user, reason: str) -> PatientNotification:
    """Send the patient's last notification about the order again: a failed or waiting one is
    retried, one already sent goes out once more as a new notification (its own row, so the history
    shows both)."""
    reason = _reason_required(reason)
    order = _order_for_update(pk=order_id)
    last = order.notifications.order_by("-created_at", "-pk").first()
    if last is None:
        raise OrderStateConflict(f"订单{order.order_no}还没有发给患者的通知，无可重发")
    if last.status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
        notify.notifications_retry(notification_ids=[last.pk], user=user)
        row = last
    else:
        if not order.phone:
            raise OrderStateConflict(f"订单{order.order_no}没有患者手机号码，不能重发通知")
        count = order.notifications.filter(key__startswith="resend:").count()
        row = notify.notify_patient(order=order, kind=last.kind, message=last.message, key=f"resend:{count + 1}")
    audit_record(
        action="重发患者通知", obj=order, after={"notification": row.pk, "kind": row.kind},
        user=user, actor=_actor_staff(user), reason=reason,
    )  # fmt: skip
    return row
