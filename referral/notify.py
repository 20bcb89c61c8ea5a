"""Reminders about referrals, to a hospital or to the region's staff.

`notify()` writes one ReferralNotification row per recipient inside the caller's transaction and
asks for delivery after commit. Delivery is the ground floor's engine (regional.delivery: lease,
backoff, sweep, staff retry) through the configured notifier (regional.notify); this module says
only which notice one row is. Reminders carry no personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import IntegrityError, transaction

from referral.models import Referral, ReferralNotification
from regional.delivery import Delivery
from regional.models import Hospital
from regional.notify import Notice, NoticeCourier

STAFF: tuple[str, Hospital | None] = ("staff", None)


def hospital_recipient(hospital: Hospital) -> tuple[str, Hospital]:
    return (f"hospital:{hospital.hospital_no}", hospital)


class ReferralReminders(NoticeCourier[ReferralNotification]):
    model = ReferralNotification
    retry_action = "重新发送转诊提醒"

    def enqueue(self, pk: int) -> None:
        from referral.tasks import deliver_referral_notification

        deliver_referral_notification.delay(pk)

    def notice(self, row: ReferralNotification) -> Notice:
        return Notice(
            subject=f"转诊提醒 [{row.kind}]",
            message=row.message,
            reference=f"referral-{row.pk}",
            recipient=row.recipient,
            urgent=True,  # a referral waits for its hospital: the log's reader must see it
        )


COURIER = ReferralReminders()


def notify(
    *, referral: Referral, kind: str, recipients: list[tuple[str, Hospital | None]], message: str
) -> list[ReferralNotification]:
    """Persist one reminder per recipient (once per referral, kind and recipient) and deliver after commit."""
    rows = []
    for key, hospital in recipients:
        try:
            with transaction.atomic():
                row, created = ReferralNotification.objects.get_or_create(
                    referral=referral, kind=kind, recipient=key, defaults={"hospital": hospital, "message": message}
                )
        except IntegrityError:
            continue  # written concurrently by another scan: that one delivers it
        if created:
            COURIER.queue(row)
            rows.append(row)
    return rows


def notification_deliver(*, notification_id: int) -> Delivery:
    """Send one reminder (the task's body)."""
    return COURIER.deliver(notification_id)


def notifications_sweep(*, now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(seconds=60)) -> int:
    """Queue again the reminders whose delivery is overdue (a lost task, a failed attempt)."""
    return COURIER.sweep(now=now, grace=grace)


def notifications_retry(*, notification_ids: Sequence[int], user=None) -> int:
    """Staff: send failed (or waiting) reminders again now."""
    return COURIER.retry(notification_ids, user=user)
