"""Accepting a referral with a booking: the receiving hospital is the sandbox hospital, its HIS over
SOAP at /sandbox/his/H0002/ws (live_server), its sessions pushed to the center like a real HIS."""

from __future__ import annotations

import pytest

from booking.models import Order, Schedule
from booking.services.channels import channel_issue_token
from booking.services.orders import order_lock
from booking.services.patients import Patient
from referral.models import Referral
from sandbox.models import SandboxOrder
from tests.base import RECEIVER_NO, fake_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_state")]


def accept(client, url: str, work_id: str, note: str = "明日上午心内科门诊"):
    return client.post(url, {"action": "accept", "accept-note": note, "accept-schedule": work_id})


class AcceptWithBookingTests:
    def test_the_notice_offers_the_bookable_sessions_and_no_booking(self, links, pushed, client):
        schedule = pushed(slots=5)
        page = client.get(links[1]).content.decode()
        assert 'name="accept-schedule" value=""' in page and "不预约" in page
        assert f'value="{schedule.work_id}"' in page and "王医生（剩余5）" in page
        assert 'name="csrfmiddlewaretoken"' in page

    def test_accepting_with_a_session_locks_a_number_and_links_the_order(self, links, pushed, client):
        his_page, znts_page = links
        schedule = pushed(slots=5)
        response = accept(client, znts_page, schedule.work_id)
        assert response.status_code == 302, response.content.decode()
        referral = Referral.objects.get()
        order = referral.booking_order
        assert referral.status == "accepted" and order is not None
        assert order.status == Order.BOOKED and order.channel.code == "REFERRAL" and order.channel.name == "双向转诊"
        assert order.pay_type == Order.PAY_ONSITE and order.lock_expires_at is None  # kept for the counter
        assert order.patient_name == "张三" and order.id_card == fake_id(1234) and order.phone == "13400001234"
        at_hospital = SandboxOrder.objects.get(work_flow_id=order.workflow_id)
        assert at_hospital.status == SandboxOrder.BOOKED and at_hospital.serial_number == order.serial_number
        assert at_hospital.onsite_payment  # the PaymentNotice reached the hospital after commit
        schedule.refresh_from_db()
        assert schedule.remaining == 4
        transition = referral.transitions.get(to_status="accepted")
        assert order.order_no in transition.reason and "明日上午心内科门诊" in transition.reason
        for page in (client.get(znts_page).content.decode(), client.get(his_page).content.decode()):
            assert order.order_no in page and "王医生" in page and f"序号 {order.serial_number}" in page
            assert "08:00–10:00" in page

    def test_a_full_session_is_refused_inline_and_nothing_is_booked(self, links, pushed, client):
        schedule = pushed(slots=1)
        page = client.get(links[1]).content.decode()
        assert f'value="{schedule.work_id}"' in page
        # Someone else takes the last number while the doctor reads the notice.
        channel, _ = channel_issue_token(code="JKMZWX", name="微信公众号")
        other = Patient(name="测试患者一", id_card=fake_id(1), phone="13400000001")
        order_lock(channel=channel, hospital_no=RECEIVER_NO, work_id=schedule.work_id, patient=other)
        response = accept(client, links[1], schedule.work_id)
        assert response.status_code == 400
        page = response.content.decode()
        assert "号源已满" in page and 'id="accept-form"' in page
        assert f'value="{schedule.work_id}"' not in page  # no longer offered
        referral = Referral.objects.get()
        assert referral.status == "submitted" and referral.booking_order is None
        assert not Order.objects.filter(channel__code="REFERRAL").exists()
        assert SandboxOrder.objects.count() == 1

    def test_accepting_without_a_booking_still_works(self, links, pushed, client):
        pushed(slots=5)
        response = accept(client, links[1], "")
        assert response.status_code == 302
        referral = Referral.objects.get()
        assert referral.status == "accepted" and referral.booking_order is None
        assert not Order.objects.exists() and not SandboxOrder.objects.exists()

    def test_a_session_of_another_department_is_refused(self, links, pushed, client, receiver):
        schedule = pushed(slots=5)
        Schedule.objects.filter(pk=schedule.pk).update(department_code="K02")
        response = accept(client, links[1], schedule.work_id)
        assert response.status_code == 400 and "所选排班不属于转入科室" in response.content.decode()
        assert Referral.objects.get().status == "submitted" and not Order.objects.exists()
