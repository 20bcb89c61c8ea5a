"""Rule 3, the cancellation deadline (14:00 of the working day before, weekends and holidays
skipped), and the fix for a PaymentNotice left undelivered when the order is cancelled, over HTTP
against live_server with the sandbox hospital. Time is frozen with booking.clock."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from booking import clock
from booking.models import OutboxMessage
from booking.rules import EffectiveRules, working_day_before
from booking.services import outbox
from sandbox import services as sandbox
from sandbox.models import SandboxCancellation, SandboxHospital, SandboxPayment
from tests.base import local, lock, region_rules

pytestmark = pytest.mark.django_db(transaction=True)


def next_monday_ahead() -> int:
    today = timezone.localdate()
    return (7 - today.weekday()) % 7 or 7


def paid(api, schedule, n) -> dict:
    order = lock(api, schedule, n)
    assert api.pay(order).status_code == 200
    return order


class CancelDeadlineTests:
    def test_a_monday_session_can_be_cancelled_until_friday_14_00_and_not_at_14_00(self, api, bookable):
        region_rules(cancel_deadline_time=dt.time(14, 0), cancel_deadline_working_days=1)
        _, schedule = bookable(days_ahead=next_monday_ahead())
        friday = schedule.work_date - dt.timedelta(days=3)
        early, late = paid(api, schedule, 1), paid(api, schedule, 2)
        with clock.frozen(local(friday, 13, 59)):
            assert api.post(f"/api/v1/orders/{early['order_no']}/cancel").status_code == 200
        with clock.frozen(local(friday, 14, 0)):
            response = api.post(f"/api/v1/orders/{late['order_no']}/cancel")
        assert response.status_code == 409 and response.json()["code"] == "cancel_deadline"
        assert f"{friday:%Y年%m月%d日}14:00" in response.json()["message"]
        assert api.get(f"/api/v1/orders/{late['order_no']}").json()["status"] == "2"

    def test_an_unpaid_lock_may_always_be_given_back(self, api, bookable):
        region_rules(cancel_deadline_time=dt.time(14, 0))
        _, schedule = bookable(days_ahead=1)
        order = lock(api, schedule)
        with clock.frozen(local(schedule.work_date, 7, 0)):
            assert api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 200

    def test_working_days_skip_weekends_and_holidays(self):
        holidays = frozenset({dt.date(2026, 10, 2)})
        assert working_day_before(dt.date(2026, 11, 30), 1, frozenset()) == dt.date(2026, 11, 27)  # Mon → Fri
        assert working_day_before(dt.date(2026, 10, 5), 1, holidays) == dt.date(2026, 10, 1)
        assert working_day_before(dt.date(2026, 10, 5), 0, holidays) == dt.date(2026, 10, 5)
        assert EffectiveRules().cancel_deadline_time is None


class UndeliveredPaymentNoticeTests:
    def test_a_failed_payment_notice_is_superseded_when_the_order_is_cancelled(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_ERROR, operations=["PaymentNotice"])
        api.pay(order)
        payment = OutboxMessage.objects.get(kind=OutboxMessage.PAYMENT)
        assert payment.status == OutboxMessage.FAILED
        sandbox.hospital_fault_set(hospital=his)
        assert api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 200
        payment.refresh_from_db()
        assert payment.status == OutboxMessage.SUPERSEDED
        assert OutboxMessage.objects.get(kind=OutboxMessage.CANCEL).status == OutboxMessage.SENT
        assert SandboxCancellation.objects.filter(kind=SandboxCancellation.PLATFORM).count() == 1
        assert outbox.outbox_retry(message_ids=[payment.pk]) == 0
        assert SandboxPayment.objects.count() == 0

    def test_a_pending_payment_notice_is_superseded_and_the_cancel_goes_at_once(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["PaymentNotice"])
        api.pay(order)
        payment = OutboxMessage.objects.get(kind=OutboxMessage.PAYMENT)
        assert payment.status == OutboxMessage.PENDING
        assert api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 200
        payment.refresh_from_db()
        assert payment.status == OutboxMessage.SUPERSEDED
        assert OutboxMessage.objects.get(kind=OutboxMessage.CANCEL).status == OutboxMessage.SENT
        assert outbox.outbox_sweep(now=timezone.now() + dt.timedelta(hours=2)) == 0
        payment.refresh_from_db()
        assert payment.status == OutboxMessage.SUPERSEDED
