"""Rule 5, the waitlist (候补), over HTTP against live_server with the sandbox hospital and tasks in
process: joining a full schedule, a freed number locked for the first in line after the commit, an
unpaid offer expiring to the next, leaving the list, and the cut-off. Time is passed or frozen."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from booking import clock
from booking.models import Order, PatientNotification, Schedule, WaitlistEntry
from booking.services import orders
from sandbox import services as sandbox
from sandbox.models import SandboxOrder
from tests.base import local, lock, patient, region_rules

pytestmark = pytest.mark.django_db(transaction=True)


def join(api, schedule, n):
    return api.post(f"/api/v1/schedules/{schedule.pk}/waitlist", {"patient": patient(n)})


@pytest.fixture
def full(api, bookable):
    """A one-number session tomorrow at 08:00, taken by patient 1; the waitlist closes at 07:00."""
    region_rules(waitlist_close_minutes=60)
    _, schedule = bookable(slots=1, days_ahead=1)
    order = lock(api, schedule, 1)
    return schedule, order


class WaitlistTests:
    def test_a_full_schedule_takes_a_waitlist_in_order_and_a_freed_number_goes_to_the_first(self, api, full):
        schedule, order = full
        first = join(api, schedule, 2)
        assert first.status_code == 201, first.text
        assert first.json()["status"] == "waiting" and first.json()["position"] == 1
        assert join(api, schedule, 3).json()["position"] == 2
        again = join(api, schedule, 2)
        assert again.status_code == 409 and again.json()["code"] == "duplicate_booking"
        assert api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 200
        entries = {e["id"]: e for e in api.get(f"/api/v1/schedules/{schedule.pk}/waitlist").json()}
        offered = entries[first.json()["id"]]
        assert offered["status"] == "offered" and offered["order_no"] and offered["lock_expires_at"]
        won = Order.objects.get(order_no=offered["order_no"])
        assert won.status == Order.BOOKED and won.id_card == patient(2)["id_card"]
        notice = PatientNotification.objects.get(order=won, key="waitlist")
        assert "候补" in notice.message and "前支付" in notice.message
        direct = api.lock(schedule, 4)  # nothing left for a direct booking
        assert direct.status_code == 409 and direct.json()["code"] == "schedule_full"
        assert api.pay(api.get(f"/api/v1/orders/{won.order_no}").json()).status_code == 200
        assert WaitlistEntry.objects.get(pk=offered["id"]).status == WaitlistEntry.BOOKED

    def test_an_unpaid_offer_expires_and_the_number_goes_to_the_next_in_line(self, api, full):
        schedule, order = full
        second, third = join(api, schedule, 2).json(), join(api, schedule, 3).json()
        api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        offered = WaitlistEntry.objects.select_related("order").get(pk=second["id"])
        assert orders.orders_expire_due(now=offered.order.lock_expires_at + dt.timedelta(minutes=1)) == 1
        offered.refresh_from_db()
        assert offered.status == WaitlistEntry.EXPIRED and offered.order.status == Order.EXPIRED
        nxt = WaitlistEntry.objects.select_related("order").get(pk=third["id"])
        assert nxt.status == WaitlistEntry.OFFERED and nxt.order.status == Order.BOOKED
        assert nxt.order.id_card == patient(3)["id_card"]
        schedule.refresh_from_db()
        assert schedule.remaining == 0

    def test_a_patient_leaves_the_list_and_is_skipped(self, api, other_api, full):
        schedule, order = full
        leaving = join(api, schedule, 2).json()
        staying = join(api, schedule, 3).json()
        assert other_api.delete(f"/api/v1/schedules/{schedule.pk}/waitlist/{leaving['id']}").status_code == 404
        gone = api.delete(f"/api/v1/schedules/{schedule.pk}/waitlist/{leaving['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        assert WaitlistEntry.objects.get(pk=staying["id"]).status == WaitlistEntry.OFFERED

    def test_joining_is_refused_while_numbers_remain_and_after_the_cut_off_minute(self, api, bookable):
        region_rules(waitlist_close_minutes=60)
        _, schedule = bookable(slots=2, days_ahead=1)
        response = join(api, schedule, 2)
        assert response.status_code == 409 and response.json()["code"] == "waitlist_not_needed"
        lock(api, schedule, 1)
        lock(api, schedule, 3)
        with clock.frozen(local(schedule.work_date, 6, 59)):
            assert join(api, schedule, 2).status_code == 201
        with clock.frozen(local(schedule.work_date, 7, 0)):
            response = join(api, schedule, 4)
        assert response.status_code == 409 and response.json()["code"] == "waitlist_closed"
        assert "07:00截止" in response.json()["message"]

    def test_after_the_cut_off_a_freed_number_is_not_offered_and_the_list_closes(self, api, full):
        schedule, order = full
        entry = join(api, schedule, 2).json()
        with clock.frozen(local(schedule.work_date, 7, 0)):
            api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        assert WaitlistEntry.objects.get(pk=entry["id"]).status == WaitlistEntry.CLOSED
        assert Schedule.objects.get(pk=schedule.pk).remaining == 1

    def test_a_number_the_hospital_cancels_goes_to_the_first_in_line(self, api, full):
        schedule, order = full
        entry = join(api, schedule, 2).json()
        held = SandboxOrder.objects.get(work_flow_id=order["workflow_id"])
        sandbox.order_withdraw(order=held, reason="患者电话取消")
        assert sandbox.center_push_promise(orders=[held]).ok
        offered = WaitlistEntry.objects.select_related("order").get(pk=entry["id"])
        assert offered.status == WaitlistEntry.OFFERED and offered.order.status == Order.BOOKED


class WaitlistAdminTests:
    def test_staff_see_the_waitlist_masked(self, api, full, admin_client):
        schedule, _order = full
        join(api, schedule, 2)
        page = admin_client.get(reverse("admin:booking_waitlistentry_changelist")).content.decode()
        assert "候补中" in page and "134****0002" in page and "13400000002" not in page
