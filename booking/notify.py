"""Patient notifications (lock, payment, stop, change, cancellation, expiry, reminders).

`notify_patient()` writes one PatientNotification row inside the caller's transaction and asks for
delivery after the commit. Delivery is the ground floor's engine (regional.delivery: lease,
backoff, sweep, staff retry); this module says only how one row is sent: as a notice through the
configured notifier (regional.notify, setting NOTIFIER). Messages name the hospital, the session
and the order number, never the patient's identity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import IntegrityError, transaction

from booking.models import Order, PatientNotification
from regional.delivery import Delivery, Sent
from regional.notify import Notice, NoticeCourier, backend_name


class PatientNotifications(NoticeCourier[PatientNotification]):
    model = PatientNotification
    retry_action = "重新发送患者通知"

    def enqueue(self, pk: int) -> None:
        from booking.tasks import deliver_notification

        deliver_notification.delay(pk)

    def notice(self, row: PatientNotification) -> Notice:
        return Notice(
            subject=f"患者通知[{row.kind}]", message=row.message, reference=f"booking-{row.pk}", phone=row.phone
        )

    def send(self, row: PatientNotification) -> Sent:
        super().send(row)
        return Sent(columns={"backend": backend_name()})


COURIER = PatientNotifications()


def notify_patient(*, order: Order, kind: str, message: str, key: str | None = None) -> PatientNotification | None:
    """Persist one notification for the order's patient (once per order and key) and send it after commit."""
    if not order.phone:
        return None
    try:
        # Once per order and key: the unique constraint decides (a repeat is the rare case).
        with transaction.atomic():
            row = PatientNotification.objects.create(
                order=order, key=(key or kind)[:50], kind=kind, phone=order.phone, message=message
            )
    except IntegrityError:
        return PatientNotification.objects.filter(order=order, key=(key or kind)[:50]).first()
    COURIER.queue(row)
    return row


def notification_deliver(*, notification_id: int) -> Delivery:
    """Send one notification (the task's body)."""
    return COURIER.deliver(notification_id)


def notifications_sweep(*, now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(seconds=60)) -> int:
    """Queue again the notifications whose delivery is overdue (a lost task, a failed attempt)."""
    return COURIER.sweep(now=now, grace=grace)


def notifications_retry(*, notification_ids: Sequence[int], user=None) -> int:
    """Staff: send failed (or waiting) notifications again now."""
    return COURIER.retry(notification_ids, user=user)
