"""Referral background work: the periodic overdue scan and reminder delivery. Thin: ids in, services out.

The scan runs from the project's one beat schedule (CELERY_BEAT_SCHEDULE in the settings).
"""

from __future__ import annotations

from celery import shared_task

from referral import notify, services

OVERDUE_SCAN = "referral.scan_overdue"


@shared_task(name=OVERDUE_SCAN)
def scan_overdue_referrals() -> dict:
    """Flag overdue referrals (notifying once each), redeliver reminders left unsent, prune old links."""
    flagged = services.referral_overdue_scan()
    redelivered = notify.deliver_pending()
    pruned = services.referral_links_prune()
    return {"flagged": flagged, "redelivered": redelivered, "pruned_links": pruned}


@shared_task(bind=True, name="referral.deliver_notification", max_retries=5, default_retry_delay=120)
def deliver_referral_notification(self, notification_id: int) -> bool:
    delivered = notify.deliver(notification_id)
    if not delivered and not self.request.is_eager:
        # In process (no broker) the periodic scan redelivers instead of retrying inline.
        raise self.retry()
    return delivered
