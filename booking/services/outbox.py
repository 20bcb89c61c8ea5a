"""The outbox: messages owed to hospitals (UnlockReg, PaymentNotice, 退号通知), written in the
transaction of the state change and delivered after the commit, at least once. The lease, backoff,
sweep and staff retry are the ground floor's delivery engine (regional.delivery); this module says
what is owed (`_outbox_*`) and how one message is sent (`HospitalNotices`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from booking.hospital import delivery_failure
from booking.models import Order, OutboxMessage
from booking.services._common import _lock_message
from regional import hospital_client
from regional.delivery import Courier, Delivery, Refused, Sent, Superseded, TryLater
from regional.hospital_client import HospitalError, HospitalRefused
from regional.messages import MessageInvalid


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


# == delivery: how one message reaches its hospital (the loop is regional.delivery's) ============


class HospitalNotices(Courier[OutboxMessage]):
    """The outbox's courier. Earlier messages of the same order go first (a payment notice before
    the cancellation). A refusal is the hospital's answer: the row fails and staff look at it. No
    answer (down, timeout, circuit open, unreadable answer) is retried with the engine's backoff
    until DELIVERY_MAX_ATTEMPTS, then the row fails (staff may retry it from the admin). Which is
    which is booking.hospital's `delivery_failure`."""

    model = OutboxMessage
    retry_action = "重新发送医院通知"
    sweep_order = ("pk",)  # an order's messages in the order they were written

    def enqueue(self, pk: int) -> None:
        from booking.tasks import deliver_outbox

        deliver_outbox.delay(pk)

    def queryset(self):
        return OutboxMessage.objects.select_related("order", "order__channel", "order__schedule", "hospital")

    def lease(self) -> dt.timedelta:
        # Longer than one call with its bounded retries, so no second worker starts while one waits.
        return dt.timedelta(seconds=3 * float(settings.HOSPITAL_CALL_TIMEOUT) + 30)

    def wait_for_earlier(self, row: OutboxMessage) -> float | None:
        earlier = list(
            OutboxMessage.objects.filter(order_id=row.order_id, status=OutboxMessage.PENDING, pk__lt=row.pk)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for pk in earlier:
            result = self.deliver(pk)
            if result.outcome in (Delivery.RETRY, Delivery.SKIPPED):
                return max(result.retry_in, 5.0)
        return None

    def send(self, row: OutboxMessage) -> Sent | None:
        order = row.order
        if row.kind in (OutboxMessage.CANCEL, OutboxMessage.UNLOCK) and order.cancelled_by == Order.BY_HOSPITAL:
            raise Superseded("医院已退号，无需再通知医院")
        if row.kind == OutboxMessage.PAYMENT and order.status == Order.CANCELLED:
            # Cancelled while the notice was waiting (or a staff retry afterwards): never pay a cancelled order.
            raise Superseded("订单已退号，支付通知无需再发送")
        try:
            data = dict(row.payload)
            if row.kind == OutboxMessage.UNLOCK and data.pop("recover", False):
                found = _recover_lock(row)
                if found is None:
                    return Sent(note="医院没有该锁号，无需解除")
                data = found
            hospital_client.call(row.hospital, row.kind, {**data, "TransactionId": row.transaction_id})
        except (HospitalError, MessageInvalid) as exc:
            # What a failed call means for booking is decided once, in booking.hospital.
            failure = delivery_failure(exc)
            raise (Refused if failure.permanent else TryLater)(failure.note) from exc
        return None


COURIER = HospitalNotices()


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
    COURIER.queue(message)
    return message


def outbox_deliver(*, message_id: int) -> Delivery:
    """Send one outbox message to its hospital (at least once; the hospital may see a repeat). The
    hospital client refuses to run inside a transaction (CalledInTransaction)."""
    return COURIER.deliver(message_id)


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
    return COURIER.sweep(now=now, grace=grace)


def outbox_retry(*, message_ids: Sequence[int], user=None) -> int:
    """Staff: send failed (or waiting) messages again now, with a fresh retry budget."""
    return COURIER.retry(message_ids, user=user)
