"""Referral background work: the periodic overdue scan and reminder delivery. Thin: ids in, services out."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings

from referral import notify, services
from regional.delivery import task_outcome

OVERDUE_SCAN = "referral.scan_overdue"


def beat_schedule() -> dict:
    """The referral entries of the Celery beat schedule (registered by ReferralConfig.ready)."""
    minutes = int(getattr(settings, "REFERRAL_OVERDUE_SCAN_MINUTES", 15))
    return {"referral-overdue-scan": {"task": OVERDUE_SCAN, "schedule": dt.timedelta(minutes=minutes)}}


@shared_task(name=OVERDUE_SCAN)
def scan_overdue_referrals() -> dict:
    """Flag overdue referrals (notifying once each), queue again reminders left unsent, prune old links."""
    flagged = services.referral_overdue_scan()
    redelivered = notify.notifications_sweep()
    pruned = services.referral_links_prune()
    return {"flagged": flagged, "redelivered": redelivered, "pruned_links": pruned}


@shared_task(bind=True, name="referral.deliver_notification", max_retries=5, acks_late=True)
def deliver_referral_notification(self, notification_id: int) -> str:
    return task_outcome(self, notify.notification_deliver(notification_id=notification_id))
