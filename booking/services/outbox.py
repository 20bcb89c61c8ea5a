"""The outbox: messages owed to hospitals (UnlockReg, PaymentNotice, 退号通知), written in the
transaction of the state change and delivered after the commit, at least once, with backoff, a
lease per row, and staff retries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from booking.models import Order, OutboxMessage
from booking.services._common import _lock_message, _no_transaction, _setting
from regional import hospital_client
from regional.audit import audit_record
from regional.hospital_client import HospitalBadAnswer, HospitalRefused, HospitalUnavailable
from regional.messages import MessageInvalid
from regional.pii import mask_text


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


def _outbox_supersede(order: Order) -> int:
    """The hospital has cancelled the order: nothing still queued for it is to be sent (CONTRACT.md 5)."""
    return OutboxMessage.objects.filter(order=order, status=OutboxMessage.PENDING).update(
        status=OutboxMessage.SUPERSEDED, last_error="医院已退号，无需再通知医院", claimed_until=None
    )


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
