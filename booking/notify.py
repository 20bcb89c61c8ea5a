"""Patient notifications (lock, payment, stop, change, cancellation, expiry) through a pluggable notifier.

`notify_patient()` writes one PatientNotification row inside the caller's transaction and asks for
delivery after the commit; `notification_deliver()` hands the row to the backend named by the
setting BOOKING_NOTIFIER (default: the log) and records the outcome. A row a lost task left
behind, or one whose backend failed, is sent again by `notifications_sweep()` (the periodic
sweeper), with exponential backoff, until BOOKING_NOTIFICATION_MAX_ATTEMPTS.

A backend is any class with `send(notification)`; raising means "not delivered, try again".
Messages name the hospital, the session and the order number, never the patient's identity.

Settings (all optional): BOOKING_NOTIFIER (dotted path), BOOKING_SMS_GATEWAY_URL,
BOOKING_SMS_GATEWAY_KEY, BOOKING_SMS_TIMEOUT (seconds, default 5).
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import lru_cache

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from booking.models import Order, PatientNotification
from regional.pii import mask, mask_text

logger = logging.getLogger("booking.notify")

DEFAULT_NOTIFIER = "booking.notify.LogBackend"
LEASE = dt.timedelta(seconds=60)


def _setting(name: str, default):
    return getattr(settings, name, default)


class LogBackend:
    """Writes each notification to the `booking.notify` log, the phone number masked (the default)."""

    def send(self, notification: PatientNotification) -> None:
        logger.info("患者通知[%s] → %s：%s", notification.kind, mask(notification.phone, "phone"), notification.message)


class SmsGatewayBackend:
    """POSTs each notification as JSON to the SMS gateway at BOOKING_SMS_GATEWAY_URL, authenticated
    with BOOKING_SMS_GATEWAY_KEY (header `X-Api-Key`). Any non-2xx answer is a failure to retry.

    Body: `{"phone": "...", "message": "...", "reference": "booking-<id>"}`; the reference lets the
    gateway drop a repeat.
    """

    def __init__(self) -> None:
        self.url = _setting("BOOKING_SMS_GATEWAY_URL", "")
        self.key = _setting("BOOKING_SMS_GATEWAY_KEY", "")
        self.timeout = float(_setting("BOOKING_SMS_TIMEOUT", 5))
        if not self.url:
            raise RuntimeError("BOOKING_SMS_GATEWAY_URL 未配置，无法使用短信网关发送患者通知")

    def send(self, notification: PatientNotification) -> None:
        response = requests.post(
            self.url,
            json={
                "phone": notification.phone,
                "message": notification.message,
                "reference": f"booking-{notification.pk}",
            },
            headers={"X-Api-Key": self.key},
            timeout=self.timeout,
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"短信网关返回HTTP {response.status_code}")


@lru_cache(maxsize=8)
def _load(path: str) -> type:
    return import_string(path)


def backend():
    """A fresh instance of the configured backend (it reads its settings when made)."""
    return _load(_setting("BOOKING_NOTIFIER", DEFAULT_NOTIFIER))()


def backend_name() -> str:
    return _setting("BOOKING_NOTIFIER", DEFAULT_NOTIFIER).rsplit(".", 1)[-1]


# -- writing --------------------------------------------------------------------------------------


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
    from booking.tasks import deliver_notification

    transaction.on_commit(lambda: deliver_notification.delay(row.pk), robust=True)
    return row


# -- delivery -------------------------------------------------------------------------------------


def _backoff(attempts: int) -> dt.timedelta:
    base = float(_setting("BOOKING_OUTBOX_BACKOFF_SECONDS", 5))
    cap = float(_setting("BOOKING_OUTBOX_BACKOFF_MAX_SECONDS", 600))
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def notification_deliver(*, notification_id: int) -> bool:
    """Send one notification; True when it is (or already was) sent, False to try again later."""
    now = timezone.now()
    # A lease: one worker at a time sends a row (the task and the sweeper may both hold its id).
    claimed = (
        PatientNotification.objects.filter(pk=notification_id, status=PatientNotification.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + LEASE)
    )
    if not claimed:
        return not PatientNotification.objects.filter(pk=notification_id, status=PatientNotification.PENDING).exists()
    notification = PatientNotification.objects.get(pk=notification_id)
    # No transaction is held while the backend runs (it may call out over the network).
    try:
        backend().send(notification)
    except Exception as exc:  # noqa: BLE001 - any backend failure means "retry later", never lose the row
        attempts = notification.attempts + 1
        give_up = attempts >= int(_setting("BOOKING_NOTIFICATION_MAX_ATTEMPTS", 10))
        PatientNotification.objects.filter(pk=notification_id).update(
            attempts=F("attempts") + 1,
            last_error=mask_text(f"{type(exc).__name__}: {exc}")[:1000],
            status=PatientNotification.FAILED if give_up else PatientNotification.PENDING,
            next_attempt_at=timezone.now() + _backoff(attempts),
            claimed_until=None,
        )
        logger.warning("患者通知 %s 发送失败（第%s次）：%s", notification_id, attempts, type(exc).__name__)
        return False
    PatientNotification.objects.filter(pk=notification_id).update(
        status=PatientNotification.SENT,
        sent_at=timezone.now(),
        attempts=F("attempts") + 1,
        last_error="",
        backend=backend_name(),
        claimed_until=None,
    )
    return True


def notifications_sweep(*, now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(seconds=60)) -> int:
    """Queue again the notifications whose delivery is overdue (a lost task, a failed attempt)."""
    from booking.tasks import deliver_notification

    now = now or timezone.now()
    due = list(
        PatientNotification.objects.filter(status=PatientNotification.PENDING, next_attempt_at__lte=now - grace)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    for pk in due:
        deliver_notification.delay(pk)
    return len(due)


@transaction.atomic
def notifications_retry(*, notification_ids: list[int]) -> int:
    """Staff: send failed (or overdue) notifications again now."""
    ids = list(
        PatientNotification.objects.filter(pk__in=notification_ids)
        .exclude(status=PatientNotification.SENT)
        .values_list("pk", flat=True)
    )
    PatientNotification.objects.filter(pk__in=ids).update(
        status=PatientNotification.PENDING, next_attempt_at=timezone.now(), claimed_until=None
    )
    from booking.tasks import deliver_notification

    transaction.on_commit(lambda: [deliver_notification.delay(pk) for pk in ids], robust=True)
    return len(ids)
