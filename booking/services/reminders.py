"""Visit reminders (rule 6): the day before the visit, once per order."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from booking import clock
from booking.models import Order, PatientNotification
from booking.notify import notify_patient
from booking.rules import rules_for
from booking.services._common import _session_text


def orders_remind_due(*, now: dt.datetime | None = None, limit: int = 2000) -> int:
    """Rule 6 (the beat task): the day before the visit, from the rules' reminder time on, each
    booked or paid order's patient is reminded once (the notification's key makes it idempotent)."""
    now = now or clock.now()
    local = timezone.localtime(now)
    tomorrow = local.date() + dt.timedelta(days=1)
    orders = (
        Order.objects.filter(status__in=(Order.BOOKED, Order.PAID), schedule__work_date=tomorrow)
        .exclude(notifications__key=PatientNotification.REMINDER)
        .select_related("hospital", "schedule", "schedule__department", "schedule__doctor")
        .order_by("pk")[:limit]
    )
    sent = 0
    for order in orders:
        at = rules_for(order.hospital_id).reminder_time
        if at is None or local.time() < at:
            continue
        with transaction.atomic():
            if notify_patient(
                order=order,
                kind=PatientNotification.REMINDER,
                key=PatientNotification.REMINDER,
                message=f"就诊提醒：您预约了明天的{_session_text(order)}，请按时就诊。订单号{order.order_no}。",
            ):
                sent += 1
    return sent
