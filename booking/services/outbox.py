"""The outbox: messages owed to hospitals (UnlockReg, PaymentNotice, 退号通知), written in the
transaction of the state change and delivered after the commit, at least once. The lease, backoff,
sweep and staff retry are the ground floor's delivery engine (regional.delivery); this module says
what is owed (`_outbox_*`) and how one message is sent (`HospitalNotices`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from booking.hospital import delivery_failure
from booking.models import Order, OutboxMessage, PatientNotification, Schedule
from booking.notify import notify_patient
from booking.services._common import _actor_hospital, _order_for_update, _record, _release_count, _session_text
from booking.services.live import registration_query
from regional import hospital_client
from regional.audit import audit_record
from regional.delivery import Courier, Delivery, Refused, Sent, Superseded, TryLater
from regional.hospital_client import HospitalError, HospitalRefused
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
        # A recovery still to run: the lock it looks for is now known, so it is a plain unlock, sent now.
        payload["holds"] = bool(pending.payload.get("holds"))
        OutboxMessage.objects.filter(pk=pending.pk, status=OutboxMessage.PENDING).update(payload=payload)
        COURIER.queue(pending)
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

    def deliver(self, pk: int) -> Delivery:
        try:
            return super().deliver(pk)
        except Unsettled as exc:
            # Beside the engine's outcomes: a lost lock that needs a person (the staff's worklist).
            self._finish(OutboxMessage.objects.get(pk=pk), OutboxMessage.UNKNOWN, exc.note)
            return Delivery(OutboxMessage.UNKNOWN)

    def send(self, row: OutboxMessage) -> Sent | None:
        order = row.order
        if row.kind in (OutboxMessage.CANCEL, OutboxMessage.UNLOCK) and order.cancelled_by == Order.BY_HOSPITAL:
            raise Superseded("医院已退号，无需再通知医院")
        if row.kind == OutboxMessage.PAYMENT and order.status == Order.CANCELLED:
            # Cancelled while the notice was waiting (or a staff retry afterwards): never pay a cancelled order.
            raise Superseded("订单已退号，支付通知无需再发送")
        data = dict(row.payload)
        holds = data.pop("holds", False)
        try:
            if row.kind == OutboxMessage.UNLOCK and data.pop("recover", False):
                return _settle_lost_lock(row)
            hospital_client.call(row.hospital, row.kind, {**data, "TransactionId": row.transaction_id})
        except (HospitalError, MessageInvalid) as exc:
            # What a failed call means for booking is decided once, in booking.hospital.
            failure = delivery_failure(exc)
            if failure.permanent and row.kind == OutboxMessage.PAYMENT:
                _payment_refused(order_id=order.pk, reason=failure.note)
            raise (Refused if failure.permanent else TryLater)(failure.note) from exc
        if holds:
            return _release_held(row, "已解除医院锁号，平台号源已释放")
        return None


COURIER = HospitalNotices()


def _outbox_add(
    order: Order, kind: str, payload: dict, *, dedupe_key: str | None = None, now: bool = True
) -> OutboxMessage:
    """Write a message owed to the order's hospital (inside the caller's transaction); send it after
    commit, or (`now=False`) leave it to the sweep."""
    message = OutboxMessage.objects.create(
        order=order,
        hospital_id=order.hospital_id,
        kind=kind,
        dedupe_key=dedupe_key or kind,
        transaction_id=hospital_client.new_transaction_id(),
        payload=payload,
        next_attempt_at=timezone.now(),
    )
    if now:
        COURIER.queue(message)
    return message


def outbox_deliver(*, message_id: int) -> Delivery:
    """Send one outbox message to its hospital (at least once; the hospital may see a repeat). The
    hospital client refuses to run inside a transaction (CalledInTransaction)."""
    return COURIER.deliver(message_id)


class Unsettled(Exception):
    """A lost lock the hospital's count could not settle: the row waits for staff (`unknown`)."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


@transaction.atomic
def _release_held(row: OutboxMessage, note: str) -> Sent:
    """Give back the number an unknown lock held, once (the row still pending, or unknown, decides)."""
    taken = OutboxMessage.objects.filter(pk=row.pk, status__in=(OutboxMessage.PENDING, OutboxMessage.UNKNOWN)).update(
        status=OutboxMessage.SENT, sent_at=timezone.now(), last_error=note[:1000], claimed_until=None
    )
    if taken:
        _release_count(row.order.schedule_id)
    return Sent(note=note)


def _settle_lost_lock(row: OutboxMessage) -> Sent:
    """Settle a lock whose answer was lost, by the hospital's count (getRegistrationInfo).

    The lock is never repeated: the specification does not promise that a repeated TransactionId is
    replayed, and a HIS that refuses a second booking of the patient says nothing about the first.
    The platform still counts the number as taken. A hospital count above the platform's means the
    hospital holds nothing for it: the number is released. Otherwise the hospital very likely holds
    it, with a WorkFlowId the platform never received, so nothing can be unlocked: the row becomes
    `unknown` for staff (Unsettled) and the number stays out of sale. No answer: TryLater.
    """
    schedule = Schedule.objects.select_related("doctor", "department").get(pk=row.order.schedule_id)
    try:
        answer = hospital_client.call(row.hospital, "getRegistrationInfo", registration_query(schedule))
    except HospitalRefused as exc:
        raise Unsettled(
            f"无法核实：医院未给出该排班的号源数（{mask_text(exc.error_msg or exc.message)[:200]}）"
        ) from exc
    except MessageInvalid as exc:
        raise Unsettled(f"无法核实：{exc.summary()}") from exc
    record = next((r for r in answer.get("WorkInfo") or [] if r.get("WorkId") == schedule.work_id), None)
    if record is None:
        raise Unsettled("无法核实：医院应答中没有该排班的号源数")
    at_hospital, on_platform = int(record["RegistrationNumber"]), schedule.remaining
    if at_hospital > on_platform:
        return _release_held(
            row, f"医院剩余{at_hospital}，平台剩余{on_platform}（含待核实的此号）：医院未占用该号，平台号源已释放"
        )
    raise Unsettled(
        f"医院剩余{at_hospital}，平台剩余{on_platform}（含此号）：医院很可能仍占用该号。锁号应答丢失，平台没有挂号流水号，"
        "无法自动解除；请联系医院解除后在“待核实的锁号”中重新核实，或标记为医院已解除"
    )


def lost_lock_recheck(*, message_ids: Sequence[int], user=None) -> int:
    """Staff: read the hospital's count back again for locks of unknown outcome; returns how many
    are now settled (the number released). Never inside a transaction: it calls the hospital."""
    settled = 0
    for pk in message_ids:
        updated = OutboxMessage.objects.filter(pk=pk, kind=OutboxMessage.UNLOCK, status=OutboxMessage.UNKNOWN).update(
            status=OutboxMessage.PENDING, claimed_until=None, next_attempt_at=timezone.now()
        )
        if updated and outbox_deliver(message_id=pk).outcome == Delivery.SENT:
            settled += 1
    return settled


@transaction.atomic
def lost_lock_released(*, message_ids: Sequence[int], user=None, reason: str = "") -> int:
    """Staff: the hospital confirmed it released the number of a lock of unknown outcome; the
    platform releases it too. Returns how many were settled."""
    reason = (reason or "").strip()[:200] or "工作人员确认医院已解除"
    rows = list(
        OutboxMessage.objects.select_for_update()
        .select_related("order")
        .filter(pk__in=list(message_ids), kind=OutboxMessage.UNLOCK, status=OutboxMessage.UNKNOWN)
    )
    for row in rows:
        _release_held(row, f"工作人员确认医院已解除，平台号源已释放：{reason}")
        audit_record(
            action="确认医院已解除锁号",
            obj=row,
            before={"status": OutboxMessage.UNKNOWN},
            after={"status": OutboxMessage.SENT},
            user=user,
            reason=reason,
        )
    return len(rows)


@transaction.atomic
def _payment_refused(*, order_id: int, reason: str) -> None:
    """The hospital refused the PaymentNotice of a paid order: the channel sees it on the order
    (mark `refused` with the hospital's reason) and the patient is told; staff settle it."""
    order = _order_for_update(pk=order_id)
    if order.status != Order.PAID or order.mark == Order.MARK_REFUSED:
        return
    previous_mark = order.mark
    order.mark, order.mark_reason = Order.MARK_REFUSED, reason[:500]
    order.save(update_fields=["mark", "mark_reason", "updated_at"])
    _record(
        order, from_status=order.status, from_mark=previous_mark, actor=_actor_hospital(order.hospital), reason=reason
    )
    notify_patient(
        order=order,
        kind=PatientNotification.REFUSED,
        message=(
            f"您预约的{_session_text(order)}已支付，但医院未确认收到支付（{reason[:60]}）。"
            f"平台工作人员将尽快处理，如需退款将原路退回。订单号{order.order_no}。"
        ),
    )


def outbox_sweep(*, now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(seconds=60)) -> int:
    """Queue again the pending messages whose delivery is overdue (a lost task, a crashed worker)."""
    return COURIER.sweep(now=now, grace=grace)


def outbox_retry(*, message_ids: Sequence[int], user=None) -> int:
    """Staff: send failed (or waiting) messages again now, with a fresh retry budget."""
    return COURIER.retry(message_ids, user=user)
