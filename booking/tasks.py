"""Booking background work. Thin: ids in, one service out, Celery retries with backoff.

- `deliver_outbox(id)`: one message owed to a hospital (PaymentNotice, 退号通知, UnlockReg).
- `deliver_notification(id)`: one patient notification.
- `expire_locks()` (beat, every minute): unpaid locks past the lock time are released.
- `waitlist_offer(schedule_id)`: a freed number offered to the schedule's waitlist (after the commit).
- `waitlist_sweep()` (beat, every minute): offers a lost task left behind, closes lists past their cut-off.
- `remind()` (beat, every minute): the day-before visit reminders, from the rules' reminder time.
- `sweep()` (beat, every minute): re-queues what lost tasks left behind (outbox, notifications)
  and reconciles orders a crash left in `locking`.
The periodic entries are declared once, in the project's settings (CELERY_BEAT_SCHEDULE).
"""

from __future__ import annotations

from celery import shared_task

from booking import notify
from booking.services import orders, outbox, reminders, waitlist
from regional.delivery import task_outcome

DELIVER_OUTBOX = "booking.deliver_outbox"
DELIVER_NOTIFICATION = "booking.deliver_notification"
EXPIRE_LOCKS = "booking.expire_locks"
SWEEP = "booking.sweep"
WAITLIST_OFFER = "booking.waitlist_offer"
WAITLIST_SWEEP = "booking.waitlist_sweep"
REMIND = "booking.remind"


@shared_task(bind=True, name=DELIVER_OUTBOX, max_retries=8, acks_late=True)
def deliver_outbox(self, message_id: int) -> str:
    return task_outcome(self, outbox.outbox_deliver(message_id=message_id))


@shared_task(bind=True, name=DELIVER_NOTIFICATION, max_retries=5, acks_late=True)
def deliver_notification(self, notification_id: int) -> str:
    return task_outcome(self, notify.notification_deliver(notification_id=notification_id))


@shared_task(name=EXPIRE_LOCKS)
def expire_locks() -> int:
    return orders.orders_expire_due()


@shared_task(name=SWEEP)
def sweep() -> dict:
    return {
        "locking_reconciled": orders.orders_reconcile_locking(),
        "outbox_requeued": outbox.outbox_sweep(),
        "notifications_requeued": notify.notifications_sweep(),
    }


@shared_task(name=WAITLIST_OFFER, acks_late=True)
def waitlist_offer(schedule_id: int) -> int:
    return waitlist.waitlist_offer(schedule_id=schedule_id)


@shared_task(name=WAITLIST_SWEEP)
def waitlist_sweep() -> int:
    return waitlist.waitlists_offer_due()


@shared_task(name=REMIND)
def remind() -> int:
    return reminders.orders_remind_due()
