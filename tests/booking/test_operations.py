"""Operating the booking service: the periodic schedule, the metrics, the sweeper task, and
schedules that orders refer to surviving a full re-sync."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from booking import tasks
from booking.models import Order, OutboxMessage, Schedule
from config.celery import app
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxSchedule
from tests.factories import session


class PeriodicScheduleTests:
    def test_lock_expiry_and_the_sweeper_are_in_the_beat_schedule(self):
        entries = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
        assert entries[tasks.EXPIRE_LOCKS] == dt.timedelta(seconds=60)
        assert entries[tasks.SWEEP] == dt.timedelta(seconds=60)
        assert {tasks.DELIVER_OUTBOX, tasks.DELIVER_NOTIFICATION, tasks.EXPIRE_LOCKS, tasks.SWEEP} <= set(app.tasks)


@pytest.mark.django_db(transaction=True)
class MetricsTests:
    def test_outbox_depth_and_failed_deliveries_are_published(self, client, api, bookable, his):
        _, schedule = bookable()
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["PaymentNotice"])
        order = api.lock(schedule, 1).json()
        api.pay(order)
        text = client.get("/metrics").content.decode()
        assert 'regional_booking_outbox_pending{kind="PaymentNotice"} 1.0' in text
        assert 'regional_booking_outbox_failed{kind="PaymentNotice"} 0.0' in text
        assert "regional_booking_notifications_pending 0.0" in text
        assert "regional_booking_orders_locking 0.0" in text
        assert "regional_lock_expiries_total" in text


@pytest.mark.django_db(transaction=True)
class SweepTaskTests:
    def test_the_sweep_task_reconciles_requeues_and_reports(self, api, bookable, his):
        _, schedule = bookable()
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["PaymentNotice"])
        api.pay(api.lock(schedule, 1).json())
        sandbox.hospital_fault_set(hospital=his)
        OutboxMessage.objects.update(next_attempt_at=timezone.now() - dt.timedelta(hours=1))
        result = tasks.sweep.delay().get()
        assert result == {"locking_reconciled": 0, "outbox_requeued": 1, "notifications_requeued": 0}
        assert OutboxMessage.objects.get().status == "sent"

    def test_the_expiry_task_releases_due_locks(self, api, bookable):
        _, schedule = bookable()
        order = api.lock(schedule, 1).json()
        Order.objects.filter(order_no=order["order_no"]).update(
            lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        assert tasks.expire_locks.delay().get() == 1
        assert Order.objects.get().status == Order.EXPIRED


@pytest.mark.django_db(transaction=True)
class ResyncTests:
    def test_a_schedule_whose_only_order_failed_is_withdrawn_not_deleted_by_a_full_resync(self, api, bookable, his):
        his_schedule, schedule = bookable(slots=2)
        SandboxSchedule.objects.filter(pk=his_schedule.pk).update(remaining=0)
        assert api.lock(schedule, 1).status_code == 409  # refused: a failed order now refers to it
        SandboxSchedule.objects.filter(pk=his_schedule.pk).update(status=SandboxSchedule.STOPPED)
        session(his, work_id="OTHER-1")
        answer = sandbox.center_push_schedules(hospital=his, full=True)  # the full list no longer has it
        assert answer.ok, answer.summary()
        schedule.refresh_from_db()
        assert schedule.status == Schedule.WITHDRAWN and schedule.booked_count == 1
        assert Order.objects.get().schedule_id == schedule.pk
