"""Rule 1, the release and booking window (放号), and the rules' region/hospital merge, over HTTP
against live_server with the sandbox hospital. Time is frozen with booking.clock, never slept."""

from __future__ import annotations

import datetime as dt

import pytest

from booking import clock
from booking.models import Order
from booking.rules import rules_for
from tests.base import hospital_rules, local, lock, region_rules

pytestmark = pytest.mark.django_db(transaction=True)


class ReleaseWindowTests:
    def test_a_session_cannot_be_booked_before_its_release_minute_and_the_refusal_names_it(self, api, bookable):
        region_rules(release_days=7, release_time=dt.time(7, 30))
        _, schedule = bookable(days_ahead=7)
        opens = schedule.work_date - dt.timedelta(days=7)
        with clock.frozen(local(opens, 7, 29, 59)):
            response = api.lock(schedule)
        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "booking_not_open"
        assert f"{opens:%Y年%m月%d日}07:30开放预约" in body["message"]
        assert not Order.objects.exists()
        schedule.refresh_from_db()
        assert schedule.remaining == 5
        with clock.frozen(local(opens, 7, 30)):
            assert api.lock(schedule).status_code == 201

    def test_booking_closes_at_the_cut_off_minute_before_the_session(self, api, bookable):
        region_rules(booking_cutoff_minutes=60)
        _, schedule = bookable(days_ahead=1)  # 08:00 session: booking closes at 07:00
        with clock.frozen(local(schedule.work_date, 6, 59)):
            assert api.lock(schedule, 1).status_code == 201
        with clock.frozen(local(schedule.work_date, 7, 0)):
            response = api.lock(schedule, 2)
        assert response.status_code == 409 and response.json()["code"] == "booking_closed"
        assert "07:00截止" in response.json()["message"]

    def test_without_rules_nothing_is_limited(self, api, bookable):
        _, schedule = bookable(days_ahead=30)
        lock(api, schedule)


@pytest.mark.django_db
class MergeTests:
    def test_a_hospitals_filled_in_fields_override_the_region(self, hospital):
        region_rules(release_days=7, release_time=dt.time(7, 30), booking_cutoff_minutes=30, holidays="2026-10-01")
        hospital_rules(hospital, release_days=14, holidays="2026-10-02")
        rules = rules_for(hospital)
        assert (rules.release_days, rules.release_time, rules.booking_cutoff_minutes) == (14, dt.time(7, 30), 30)
        assert rules.holidays == {dt.date(2026, 10, 1), dt.date(2026, 10, 2)}
        assert rules_for(None).release_days == 7
