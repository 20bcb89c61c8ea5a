"""Referral background work: the periodic overdue scan and reminder delivery. Thin: ids in, services out.

The scan runs from the project's one beat schedule (CELERY_BEAT_SCHEDULE in the settings).
"""

from __future__ import annotations

from celery import shared_task

from referral import notify, services
from regional.delivery import task_outcome

OVERDUE_SCAN = "referral.scan_overdue"


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
