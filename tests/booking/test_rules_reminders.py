"""Rule 6, reminders: the day before the visit, from the rules' reminder time, once per order,
through booking.notify; stop and change notices reach the patient as well. Orders are made over
HTTP against live_server with the sandbox hospital; the beat task's time is passed in."""

from __future__ import annotations

import datetime as dt

import pytest

from booking import tasks
from booking.models import PatientNotification
from booking.services import reminders
from config.celery import app
from sandbox import services as sandbox
from sandbox.models import SandboxSchedule
from tests.base import local, lock, region_rules

pytestmark = pytest.mark.django_db(transaction=True)


class ReminderTests:
    def test_booked_and_paid_patients_are_reminded_once_from_the_reminder_minute_of_the_day_before(self, api, bookable):
        region_rules(reminder_time=dt.time(18, 0))
        _, schedule = bookable(days_ahead=1)
        unpaid, paid, cancelled = lock(api, schedule, 1), lock(api, schedule, 2), lock(api, schedule, 3)
        api.pay(paid)
        api.post(f"/api/v1/orders/{cancelled['order_no']}/cancel")
        day_before = schedule.work_date - dt.timedelta(days=1)
        assert reminders.orders_remind_due(now=local(day_before, 17, 59)) == 0
        assert reminders.orders_remind_due(now=local(day_before, 18, 0)) == 2
        assert reminders.orders_remind_due(now=local(day_before, 18, 1)) == 0
        sent = PatientNotification.objects.filter(kind="reminder").select_related("order")
        assert sorted(r.order.order_no for r in sent) == sorted([unpaid["order_no"], paid["order_no"]])
        assert all("就诊提醒" in r.message and r.status == "sent" for r in sent)
        assert reminders.orders_remind_due(now=local(schedule.work_date - dt.timedelta(days=2), 18, 0)) == 0

    def test_without_a_reminder_time_nobody_is_reminded(self, api, bookable):
        _, schedule = bookable(days_ahead=1)
        lock(api, schedule, 1)
        assert reminders.orders_remind_due(now=local(schedule.work_date - dt.timedelta(days=1), 23, 0)) == 0

    def test_the_reminder_and_the_waitlist_run_from_the_beat_schedule(self):
        entries = {entry["task"] for entry in app.conf.beat_schedule.values()}
        assert {tasks.REMIND, tasks.WAITLIST_SWEEP} <= entries

    def test_a_stop_notifies_the_patient(self, api, bookable, his):
        _, schedule = bookable(days_ahead=1)
        order = lock(api, schedule, 1)
        answer = sandbox.schedule_stop_and_notify(
            schedule=SandboxSchedule.objects.get(work_id=schedule.work_id), reason="医生外出会诊"
        )
        assert answer.ok
        notice = PatientNotification.objects.get(order__order_no=order["order_no"], kind="stopped")
        assert "停诊" in notice.message and "医生外出会诊" in notice.message
