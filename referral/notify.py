"""Reminders about referrals, to a hospital or to the region's staff, through pluggable backends.

`notify()` writes one ReferralNotification row per recipient inside the caller's transaction and
asks for delivery after commit; `deliver()` hands a row to every backend named in the setting
REFERRAL_NOTIFICATION_BACKENDS (default: the log) and marks it sent. Rows that failed or were
never delivered (a worker down) are picked up again by `deliver_pending()`, which the periodic
overdue scan runs, so nothing is lost.

A backend is any class with `send(notification)`; raising means "not delivered, try again".
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from referral.models import Referral, ReferralNotification
from regional.models import Hospital
from regional.pii import mask_text

logger = logging.getLogger("referral.notify")

STAFF: tuple[str, Hospital | None] = ("staff", None)
DEFAULT_BACKENDS = ("referral.notify.LogBackend",)
MAX_ATTEMPTS = 10


def hospital_recipient(hospital: Hospital) -> tuple[str, Hospital]:
    return (f"hospital:{hospital.hospital_no}", hospital)


class LogBackend:
    """Writes each reminder to the `referral.notify` log (the default; no personal data in reminders)."""

    def send(self, notification: ReferralNotification) -> None:
        logger.warning("转诊提醒 [%s] → %s：%s", notification.kind, notification.recipient, notification.message)


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> tuple:
    return tuple(import_string(path)() for path in paths)


def backends() -> tuple:
    return _load(tuple(getattr(settings, "REFERRAL_NOTIFICATION_BACKENDS", DEFAULT_BACKENDS)))


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
            rows.append(row)
    if rows:
        from referral.tasks import deliver_referral_notification

        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: [deliver_referral_notification.delay(pk) for pk in ids])
    return rows


def deliver(notification_id: int) -> bool:
    """Send one reminder through every backend; True when it is (or already was) delivered."""
    notification = ReferralNotification.objects.filter(pk=notification_id).first()
    if notification is None or notification.sent_at is not None:
        return True
    # No transaction is held while backends run (they may call out over the network).
    try:
        for backend in backends():
            backend.send(notification)
    except Exception as exc:  # noqa: BLE001 - any backend failure means "retry later", never lose the row
        ReferralNotification.objects.filter(pk=notification_id).update(
            attempts=F("attempts") + 1, last_error=mask_text(f"{type(exc).__name__}: {exc}")[:1000]
        )
        logger.warning("转诊提醒 %s 发送失败：%s", notification_id, type(exc).__name__)
        return False
    ReferralNotification.objects.filter(pk=notification_id, sent_at__isnull=True).update(
        sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    return True


def deliver_pending(*, older_than: dt.timedelta = dt.timedelta(minutes=5), limit: int = 500) -> int:
    """Deliver reminders still unsent some minutes after they were written; returns how many went out."""
    cutoff = timezone.now() - older_than
    pending = ReferralNotification.objects.filter(
        sent_at__isnull=True, created_at__lt=cutoff, attempts__lt=MAX_ATTEMPTS
    ).values_list("pk", flat=True)
    return sum(1 for pk in list(pending[:limit]) if deliver(pk))
