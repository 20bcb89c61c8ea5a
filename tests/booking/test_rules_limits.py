"""Rule 2, the patient's limits across the region, over HTTP against live_server with the sandbox
hospital: per day, one order per doctor and session, no overlapping sessions, and two concurrent
requests of one patient that cannot both pass a limit."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from booking.models import Order, Schedule
from tests.base import lock, patient, region_rules

pytestmark = pytest.mark.django_db(transaction=True)


class PatientLimitTests:
    def test_the_daily_limit_counts_active_orders_of_the_patient(self, api, other_api, bookable):
        region_rules(limit_per_day=1)
        _, first = bookable(days_ahead=1)
        _, second = bookable(days_ahead=1)
        order = lock(api, first, 1)
        refused = other_api.lock(second, 1)  # another channel: the limit is the region's
        # ...but that channel is not told what the patient booked elsewhere (issue 14).
        assert refused.status_code == 409 and refused.json()["code"] == "region_rule"
        assert refused.json()["message"] == "该患者当前不符合全区预约规则，不能预约此排班"
        own = api.lock(second, 1)  # the channel holding the booking is told exactly why
        assert own.status_code == 409 and own.json()["code"] == "patient_limit"
        assert "上限（1次）" in own.json()["message"]
        second.refresh_from_db()
        assert second.remaining == 5
        lock(api, second, 2)  # another patient
        assert api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 200
        lock(other_api, second, 1)  # a cancelled order no longer counts

    def test_one_doctor_and_session_takes_one_active_order(self, api, bookable):
        region_rules(forbid_same_doctor_session=True)
        _, first = bookable(days_ahead=1)
        _, second = bookable(days_ahead=1)
        Schedule.objects.filter(pk=second.pk).update(doctor=first.doctor)
        lock(api, first, 1)
        response = api.lock(second, 1)
        assert response.status_code == 409 and response.json()["code"] == "duplicate_booking"

    def test_overlapping_sessions_are_refused(self, api, bookable):
        region_rules(forbid_overlap=True)
        _, first = bookable(days_ahead=1)
        _, second = bookable(days_ahead=1)
        _, next_day = bookable(days_ahead=2)
        lock(api, first, 1)
        response = api.lock(second, 1)
        assert response.status_code == 409 and response.json()["code"] == "session_overlap"
        assert "08:00-10:00" in response.json()["message"]
        lock(api, next_day, 1)

    def test_two_concurrent_requests_of_one_patient_cannot_both_pass_the_limit(
        self, api, other_api, bookable, postgres
    ):
        assert connection.vendor == "postgresql"
        region_rules(limit_per_day=1)
        _, first = bookable(days_ahead=1)
        _, second = bookable(days_ahead=1)
        barrier = threading.Barrier(2)
        results = {}

        def book(name, client, schedule):
            barrier.wait()
            body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id, "patient": patient(1)}
            results[name] = client.post("/api/v1/orders/", body)

        threads = [
            threading.Thread(target=book, args=("a", api, first)),
            threading.Thread(target=book, args=("b", other_api, second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r.status_code for r in results.values()) == [201, 409]
        assert Order.objects.filter(status__in=Order.ACTIVE).count() == 1


class CrossChannelRefusalTests:
    """Issue 14 item 17: a 409 does not tell a channel that the patient holds a booking elsewhere."""

    def test_the_same_session_booked_through_another_channel_gives_a_generic_refusal(self, api, other_api, bookable):
        _, schedule = bookable()
        lock(api, schedule, 1)
        theirs = other_api.lock(schedule, 1)
        assert theirs.status_code == 409 and theirs.json()["code"] == "region_rule"
        assert "已预约" not in theirs.json()["message"]
        mine = api.lock(schedule, 1)
        assert mine.status_code == 409 and mine.json()["code"] == "duplicate_booking"

    def test_an_overlap_with_another_channels_booking_reveals_no_time(self, api, other_api, bookable):
        region_rules(forbid_overlap=True)
        _, first = bookable(days_ahead=1)
        _, second = bookable(days_ahead=1)
        lock(api, first, 1)
        theirs = other_api.lock(second, 1)
        assert theirs.status_code == 409 and theirs.json()["code"] == "region_rule"
        assert "08:00" not in theirs.json()["message"]


def days_until(day) -> int:
    return (day - timezone.localdate()).days


class WeekAndMonthLimitTests:
    def test_the_weekly_limit_counts_the_visit_dates_iso_week(self, api, bookable):
        region_rules(limit_per_week=1)
        today = timezone.localdate()
        monday = today + dt.timedelta(days=(7 - today.weekday()) % 7 or 7)
        _, first = bookable(days_ahead=days_until(monday))
        _, same_week = bookable(days_ahead=days_until(monday + dt.timedelta(days=6)))
        _, next_week = bookable(days_ahead=days_until(monday + dt.timedelta(days=7)))
        lock(api, first, 1)
        refused = api.lock(same_week, 1)
        assert refused.status_code == 409 and refused.json()["code"] == "patient_limit"
        assert "当周" in refused.json()["message"]
        lock(api, next_week, 1)

    def test_the_monthly_limit_counts_the_visit_dates_calendar_month(self, api, bookable):
        region_rules(limit_per_month=2)
        first_of_next = (timezone.localdate().replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        schedules = [bookable(days_ahead=days_until(first_of_next + dt.timedelta(days=d)))[1] for d in (0, 1, 2)]
        lock(api, schedules[0], 1)
        lock(api, schedules[1], 1)
        refused = api.lock(schedules[2], 1)
        assert refused.status_code == 409 and refused.json()["code"] == "patient_limit"
        assert f"{first_of_next:%Y年%m月}" in refused.json()["message"]
