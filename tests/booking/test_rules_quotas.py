"""Rule 7, channel quotas: a schedule's platform-bookable numbers split between channels by
percentage, the unsold quota shared from a set time before the session, and races for the last
quota number (exactly one wins). Over HTTP against live_server with the sandbox hospital."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from booking import clock
from booking.models import Order
from tests.base import local, lock, patient, region_rules

pytestmark = pytest.mark.django_db(transaction=True)


def race(*calls) -> list:
    """Run (api, schedule, n) lock requests at the same moment; the responses in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def book(i, client, schedule, n):
        barrier.wait()
        body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id, "patient": patient(n)}
        results[i] = client.post("/api/v1/orders/", body)

    threads = [threading.Thread(target=book, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class ChannelQuotaTests:
    def test_each_channel_books_its_share_and_the_refusal_names_the_release_time(self, api, other_api, bookable):
        region_rules(channel_quotas={"JKMZWX": 60, "JKMYAPP": 40}, quota_release_minutes=120)
        _, schedule = bookable(slots=5, days_ahead=1)  # WeChat 3, app 2
        for n in (1, 2, 3):
            lock(api, schedule, n)
        refused = api.lock(schedule, 4)
        assert refused.status_code == 409 and refused.json()["code"] == "channel_quota"
        assert "（3个）已约满" in refused.json()["message"] and "06:00起" in refused.json()["message"]
        lock(other_api, schedule, 5)
        lock(other_api, schedule, 6)
        assert other_api.lock(schedule, 7).json()["code"] == "schedule_full"

    def test_unsold_quota_passes_to_the_other_channels_at_the_release_minute(self, api, other_api, bookable):
        region_rules(channel_quotas={"JKMZWX": 50, "JKMYAPP": 50}, quota_release_minutes=120)
        _, schedule = bookable(slots=4, days_ahead=1)
        lock(api, schedule, 1)
        lock(api, schedule, 2)
        with clock.frozen(local(schedule.work_date, 5, 59)):
            assert api.lock(schedule, 3).json()["code"] == "channel_quota"
        with clock.frozen(local(schedule.work_date, 6, 0)):
            lock(api, schedule, 3)  # the app's unsold numbers are now everyone's
        lock(other_api, schedule, 4)
        assert Order.objects.filter(status=Order.BOOKED).count() == 4

    def test_a_channel_without_a_share_is_not_held_back(self, api, other_api, bookable):
        region_rules(channel_quotas={"JKMZWX": 50})
        _, schedule = bookable(slots=2, days_ahead=1)
        lock(other_api, schedule, 1)
        lock(other_api, schedule, 2)

    def test_a_cancelled_order_gives_the_quota_back(self, api, bookable):
        region_rules(channel_quotas={"JKMZWX": 50, "JKMYAPP": 50})
        _, schedule = bookable(slots=2, days_ahead=1)
        order = lock(api, schedule, 1)
        assert api.lock(schedule, 2).json()["code"] == "channel_quota"
        api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        lock(api, schedule, 2)

    def test_two_requests_racing_for_a_channels_last_quota_number_exactly_one_wins(self, api, bookable, postgres):
        assert connection.vendor == "postgresql"
        region_rules(channel_quotas={"JKMZWX": 50, "JKMYAPP": 50})
        _, schedule = bookable(slots=4, days_ahead=1)
        lock(api, schedule, 1)
        results = race((api, schedule, 2), (api, schedule, 3))
        assert sorted(r.status_code for r in results) == [201, 409]
        assert {r.json().get("code") for r in results if r.status_code == 409} == {"channel_quota"}
        assert Order.objects.filter(channel__code="JKMZWX", status=Order.BOOKED).count() == 2

    def test_two_channels_racing_for_the_last_shared_number_exactly_one_wins(self, api, other_api, bookable, postgres):
        region_rules(channel_quotas={"JKMZWX": 50, "JKMYAPP": 50}, quota_release_minutes=120)
        _, schedule = bookable(slots=3, days_ahead=1)  # one each, the third unassigned until 06:00
        lock(api, schedule, 1)
        lock(other_api, schedule, 2)
        with clock.frozen(local(schedule.work_date, 6, 0)):
            results = race((api, schedule, 3), (other_api, schedule, 4))
        assert sorted(r.status_code for r in results) == [201, 409]
        assert Order.objects.filter(status=Order.BOOKED).count() == 3
        schedule.refresh_from_db()
        assert schedule.remaining == 0
