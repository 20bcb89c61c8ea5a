"""The staff's admin for orders, the outbox, notifications, no-shows and the ledger (Django's test
client against orders made over HTTP with the sandbox hospital)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from booking.models import LedgerEntry, NoShowRecord, Order, OutboxMessage, PatientNotification
from booking.services import reports
from regional.models import PersonalDataReveal
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxPayment
from tests.base import fake_id, masked_id

pytestmark = pytest.mark.django_db(transaction=True)


def staff(*codenames: str) -> User:
    user = User.objects.create_user("clerk", password="x-pass-123456", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label__in=["booking", "regional"], codename__in=codenames)
    )
    return user


@pytest.fixture
def orders(api, bookable):
    """A paid order, then cancelled (payment + refund in the ledger), and an unpaid one."""
    _, schedule = bookable(slots=5)
    paid = api.lock(schedule, 1).json()
    api.pay(paid)
    api.post(f"/api/v1/orders/{paid['order_no']}/cancel")
    unpaid = api.lock(schedule, 2).json()
    return paid, unpaid


class OrderAdminTests:
    def test_the_list_filters_searches_and_masks_without_a_full_count(self, admin_client, orders):
        paid, unpaid = orders
        url = reverse("admin:booking_order_changelist")
        page = admin_client.get(url, {"status__exact": "3"})
        text = page.content.decode()
        assert page.status_code == 200 and page.context["cl"].show_full_result_count is False
        assert paid["order_no"] in text and unpaid["order_no"] not in text
        assert "测*" in text and "测试患者1" not in text
        found = admin_client.get(url, {"q": unpaid["workflow_id"]})
        assert found.context["cl"].result_count == 1
        for params in ({"visit": "tomorrow"}, {"channel__id__exact": Order.objects.first().channel_id}):
            assert admin_client.get(url, params).status_code == 200

    def test_the_order_page_shows_its_history_and_masked_patient(self, admin_client, orders):
        paid, _ = orders
        order = Order.objects.get(order_no=paid["order_no"])
        page = admin_client.get(reverse("admin:booking_order_change", args=[order.pk]))
        text = page.content.decode()
        assert page.status_code == 200
        assert masked_id(1) in text and "134****0001" in text
        assert fake_id(1) not in text and "13400000001" not in text
        assert "渠道JKMZWX" in text and "医院S001" in text and "状态变更记录" in text
        assert "患者取消预约" in text

    def test_a_reveal_needs_the_permission_and_is_recorded(self, client, orders):
        order = Order.objects.get(order_no=orders[0]["order_no"])
        url = reverse("admin:booking_order_reveal", args=[order.pk, "id_card"])
        client.force_login(staff("view_order"))
        assert client.get(url).status_code == 403
        client.force_login(User.objects.create_user("auditor", is_staff=True))
        User.objects.get(username="auditor").user_permissions.add(
            *Permission.objects.filter(codename__in=["view_order", "reveal_personal_data"])
        )
        client.force_login(User.objects.get(username="auditor"))
        form = client.get(url).content.decode()  # the form asking the reason: nothing revealed yet
        assert "查看原因" in form and fake_id(1) not in form and not PersonalDataReveal.objects.exists()
        answer = client.post(url, {"reason": "患者来电核对身份"}).content.decode()
        assert fake_id(1) in answer
        reveal = PersonalDataReveal.objects.get()
        assert (reveal.field, reveal.reason) == ("id_card", "患者来电核对身份")

    def test_orders_cannot_be_added_changed_or_deleted_here(self, admin_client, orders):
        order = Order.objects.first()
        assert admin_client.get(reverse("admin:booking_order_add")).status_code == 403
        assert (
            admin_client.post(reverse("admin:booking_order_delete", args=[order.pk]), {"post": "yes"}).status_code
            == 403
        )


class OutboxAdminTests:
    def test_staff_see_failed_deliveries_and_retry_them_through_the_service(self, client, api, bookable, his):
        _, schedule = bookable()
        order = api.lock(schedule, 1).json()
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_ERROR, operations=["PaymentNotice"])
        api.pay(order)
        message = OutboxMessage.objects.get()
        assert message.status == "failed"
        user = staff("view_outboxmessage", "retry_outboxmessage")
        client.force_login(user)
        url = reverse("admin:booking_outboxmessage_changelist")
        page = client.get(url, {"status__exact": "failed"})
        assert "沙箱医院模拟的业务错误" in page.content.decode()
        sandbox.hospital_fault_set(hospital=his)
        done = client.post(url, {"action": "retry_selected", "_selected_action": [message.pk]}, follow=True)
        assert "已重新发送1条医院通知" in done.content.decode()
        message.refresh_from_db()
        assert message.status == "sent" and SandboxPayment.objects.count() == 1

    def test_without_the_permission_there_is_no_retry_action(self, client, api, bookable):
        _, schedule = bookable()
        api.pay(api.lock(schedule, 1).json())
        client.force_login(staff("view_outboxmessage"))
        page = client.get(reverse("admin:booking_outboxmessage_changelist"))
        assert page.status_code == 200 and "retry_selected" not in page.content.decode()


class OtherAdminTests:
    def test_the_ledger_lists_payments_and_refunds_and_is_append_only(self, admin_client, orders):
        page = admin_client.get(reverse("admin:booking_ledgerentry_changelist"))
        text = page.content.decode()
        assert page.status_code == 200 and "12.50" in text and "-12.50" in text
        entry = LedgerEntry.objects.first()
        assert admin_client.get(reverse("admin:booking_ledgerentry_add")).status_code == 403
        change = admin_client.post(reverse("admin:booking_ledgerentry_change", args=[entry.pk]), {"amount": "1.00"})
        assert change.status_code == 403 and LedgerEntry.objects.get(pk=entry.pk).amount == entry.amount

    def test_notifications_and_no_shows_are_listed_masked(self, admin_client, orders):
        _, unpaid = orders
        reports.order_report(hospital=Order.objects.first().hospital, workflow_id=unpaid["workflow_id"], work_type="6")
        notes = admin_client.get(reverse("admin:booking_patientnotification_changelist")).content.decode()
        assert "134****0001" in notes and "13400000001" not in notes
        assert PatientNotification.objects.count() >= 3
        record = NoShowRecord.objects.get()
        page = admin_client.get(reverse("admin:booking_noshowrecord_changelist")).content.decode()
        assert record.id_card_hash[:12] in page and unpaid["order_no"] in page
