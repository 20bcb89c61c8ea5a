"""Once a session's count is zero, the rush's losers are refused from the platform's own count: one
narrow query, no transaction, no hospital call; the refusals that say more (stopped, not yet open)
keep their precedence over 号源已满. The rush itself over HTTP is tests/booking/test_rush.py."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from booking.models import BookingRules, Order, Schedule
from booking.rules import rules_cache_clear
from booking.services.channels import channel_issue_token
from regional.models import MessageLog
from tests.base import patient
from tests.factories import ScheduleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def full(hospital) -> Schedule:
    return ScheduleFactory(
        hospital=hospital, work_id="FULL01", work_date=timezone.localdate() + dt.timedelta(days=3), remaining=0
    )


@pytest.fixture
def lock(client):
    _, token = channel_issue_token(code="JKMZWX", name="微信")

    def post(schedule: Schedule, n: int = 1, **headers):
        body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id, "patient": patient(n)}
        return client.post(
            "/api/v1/orders/", json.dumps(body), content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}", **headers,
        )  # fmt: skip

    return post


class FullSessionRefusalTests:
    def test_a_full_session_is_refused_with_one_query_and_no_hospital_call(self, lock, full):
        assert lock(full, 1).status_code == 409  # the channel's token is now known to this process
        with CaptureQueriesContext(connection) as captured:
            response = lock(full, 2)
        assert response.status_code == 409
        assert response.json() == {"code": "schedule_full", "message": "排班FULL01号源已满，请选择其他排班或时段"}
        assert len(captured.captured_queries) == 1, [q["sql"][:120] for q in captured.captured_queries]
        assert not MessageLog.objects.filter(direction=MessageLog.OUTBOUND).exists()
        assert not Order.objects.exists()

    def test_a_stopped_full_session_says_it_is_stopped(self, lock, full):
        Schedule.objects.filter(pk=full.pk).update(status=Schedule.STOPPED)
        response = lock(full)
        assert response.status_code == 409 and response.json()["code"] == "schedule_closed"

    def test_a_full_session_not_yet_open_says_when_it_opens(self, lock, full):
        BookingRules.objects.create(hospital=full.hospital, release_days=1, release_time=dt.time(7, 30))
        rules_cache_clear()
        response = lock(full)
        assert response.status_code == 409 and response.json()["code"] == "booking_not_open"
        assert "07:30" in response.json()["message"]

    def test_an_unknown_session_is_still_a_404(self, lock, full):
        full.work_id = "NOPE"
        response = lock(full)
        assert response.status_code == 404
