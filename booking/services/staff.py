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
from booking.services.live import registration_query
from booking.services.orders import _order_cancel, _order_lock_failed, locking_stale_after
from regional import hospital_client
from regional.audit import audit_record
from regional.delivery import Delivery, DeliveryStatus
from regional.errors import InvalidInput
from regional.hospital_client import HospitalError
from regional.messages import MessageInvalid, Violation


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
    on sale), `unknown` (the hospital very likely holds it: the order waits in 待核实的锁号 for staff
    to call the hospital) or `later` (the hospital's count could not tell yet; the sweep asks
    again). `note` is the Chinese explanation staff read."""

    outcome: str
    note: str

    RELEASED, UNKNOWN, LATER = "released", "unknown", "later"


def _recovery_row(order: Order) -> OutboxMessage | None:
    rows = OutboxMessage.objects.filter(order=order, kind=OutboxMessage.UNLOCK).order_by("-pk")
    return next((row for row in rows if row.payload.get("recover")), None)


def _unsettled(row: OutboxMessage | None) -> bool:
    return row is not None and row.status in (OutboxMessage.PENDING, OutboxMessage.UNKNOWN)


def order_lock_resolve(*, order_id: int, user, reason: str, now: dt.datetime | None = None) -> LockResolution:
    """Resolve an order stuck in 锁号中 for longer than a lock may take (or a failed lock whose outcome
    is still unknown) by asking the hospital: the order fails with its number held, and the
    lost-lock settlement (the hospital's count, getRegistrationInfo) decides at once whether the
    number is released. Never inside a transaction (it calls the hospital). The hospital is
    reached first (its circuit, then one call): if it cannot be, nothing is written."""
    reason = _reason_required(reason)
    now = now or timezone.now()
    order = Order.objects.select_related("hospital", "schedule").get(pk=order_id)
    if order.status == Order.LOCKING:
        if now - order.created_at < locking_stale_after():
            raise OrderStateConflict(
                f"订单{order.order_no}正在锁号（{timezone.localtime(order.created_at):%H:%M}下单），请几分钟后再处理"
            )
    elif not (order.status == Order.FAILED and _unsettled(_recovery_row(order))):
        raise OrderStateConflict(
            f"订单{order.order_no}{order.get_status_display()}，不是锁号中或待核实的锁号，无需处理"
        )
    refuse_if_circuit_open(order.hospital)
    schedule = Schedule.objects.select_related("doctor", "department").get(pk=order.schedule_id)
    try:
        hospital_client.call(order.hospital, "getRegistrationInfo", registration_query(schedule))
    except (HospitalError, MessageInvalid) as exc:
        raise HospitalUnavailableForBooking(
            f"{order.hospital.name}暂时无法核实（{delivery_failure(exc).note}），订单未做更改，请稍后再试"
        ) from exc
    actor = _actor_staff(user)
    _lock_give_up(order_id=order.pk, user=user, actor=actor, reason=reason)
    row = _recovery_row(order)
    if not _unsettled(row):  # decided meanwhile (the lock recorded, or settled by the sweep)
        order.refresh_from_db()
        return LockResolution(LockResolution.RELEASED, f"锁号已有结果：{order.get_status_display()}")
    OutboxMessage.objects.filter(pk=row.pk, status__in=(OutboxMessage.PENDING, OutboxMessage.UNKNOWN)).update(
        status=OutboxMessage.PENDING, claimed_until=None, next_attempt_at=timezone.now()
    )
    delivery = outbox.outbox_deliver(message_id=row.pk)
    row.refresh_from_db()
    outcome = {Delivery.SENT: LockResolution.RELEASED, OutboxMessage.UNKNOWN: LockResolution.UNKNOWN}.get(
        delivery.outcome, LockResolution.LATER
    )
    note = row.last_error or "医院的号源数暂不能确定，系统将自动再次核实"
    audit_record(
        action="处理锁号中：向医院核实", obj=order, after={"outcome": outcome},
        user=user, actor=actor, reason=f"{reason}；{note}",
    )  # fmt: skip
    return LockResolution(outcome, note)


@transaction.atomic
def _lock_give_up(*, order_id: int, user, actor: str, reason: str) -> None:
    """A stuck `locking` order fails with its number held (an UnlockReg row that settles it)."""
    order = _order_for_update(pk=order_id)
    if order.status == Order.LOCKING:
        _order_lock_failed(
            order_id=order.pk, reason=f"工作人员处理锁号中：{reason}", recover=True, actor=actor, user=user
        )


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
