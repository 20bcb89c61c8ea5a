"""The staff's admin for orders, the outbox, notifications, no-shows and the ledger (Django's test
client against orders made over HTTP with the sandbox hospital)."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from booking.models import (
    Channel,
    LedgerEntry,
    LostLock,
    NoShowRecord,
    Order,
    OutboxMessage,
    PatientNotification,
    Schedule,
)
from booking.services import reports
from regional.models import AuditEntry, PersonalDataReveal
from regional.pii import lookup_hash
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxPayment
from tests.base import fake_id, lock, masked_id, patient, sandbox_order
from tests.console import staff as role_staff
from tests.factories import DepartmentFactory, DoctorFactory, OrderFactory, ScheduleFactory

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


# -- the hotline: search by phone and name, staff actions ------------------------------------------

CHANGELIST = "admin:booking_order_changelist"


def found(client, term: str) -> set[str]:
    page = client.get(reverse(CHANGELIST), {"q": term})
    assert page.status_code == 200
    return {o.order_no for o in page.context["cl"].result_list}


def stuck_lock(schedule, *, minutes_ago: int = 10) -> Order:
    """An order left in 锁号中 by a crash between the platform's reservation and the hospital's
    answer: the platform's count reserved, nothing at the hospital."""
    Schedule.objects.filter(pk=schedule.pk).update(remaining=F("remaining") - 1, booked_count=F("booked_count") + 1)
    return OrderFactory(
        hospital=schedule.hospital, schedule=schedule, channel=Channel.objects.get(code="JKMZWX"),
        status=Order.LOCKING, pay_type="", pay_channel="", paid_at=None, day=schedule.work_date,
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago), id_card=fake_id(7), phone="13400000007",
    )  # fmt: skip


class OrderSearchTests:
    def test_the_hotline_finds_an_order_by_the_full_phone_number_only(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        mine, other = lock(api, schedule, 1)["order_no"], lock(api, schedule, 2)["order_no"]
        client.force_login(role_staff("hotline"))
        assert found(client, "13400000001") == {mine}
        assert found(client, " 134 0000 0002 ") == {other}
        assert found(client, "1340000000") == set()  # a part of a number finds nothing

    def test_a_name_is_found_in_full_whatever_its_spaces(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        mine = lock(api, schedule, 1, patient=patient(1, name="欧阳 明月"))["order_no"]
        lock(api, schedule, 2)
        client.force_login(role_staff("hotline"))
        assert found(client, "欧阳明月") == {mine}
        assert found(client, "欧阳　明 月") == {mine}  # a full-width space too
        assert found(client, "欧阳") == set()

    def test_the_hashes_follow_a_changed_phone_and_no_column_holds_the_plaintext(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        order.phone = "13400000099"
        order.save()
        client.force_login(role_staff("hotline"))
        assert found(client, "13400000099") == {order.order_no} and found(client, "13400000001") == set()
        with connection.cursor() as cursor:
            cursor.execute("SELECT phone, phone_hash, patient_name, patient_name_hash FROM booking_order")
            stored = " ".join(cursor.fetchone())
        assert "13400000099" not in stored and "测试患者1" not in stored

    def test_the_migration_backfills_the_hashes_of_existing_orders(self, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        Order.objects.filter(pk=order.pk).update(phone_hash="", patient_name_hash="")
        migration = importlib.import_module("booking.migrations.0014_order_phone_name_hashes_and_staff_actions")
        migration.backfill_hashes(django_apps, None)
        order.refresh_from_db()
        assert order.phone_hash == lookup_hash("13400000001") and order.patient_name_hash == lookup_hash("测试患者1")


class StaffCancelTests:
    def test_the_hotline_cancels_a_paid_order_with_its_refund_from_the_list(self, client, api, bookable, his):
        _, schedule = bookable(slots=3)
        order = lock(api, schedule, 1)
        api.pay(order)
        pk = Order.objects.get(order_no=order["order_no"]).pk
        user = role_staff("hotline")
        client.force_login(user)
        form = {"action": "cancel_selected", "_selected_action": [pk]}
        confirm = client.post(reverse(CHANGELIST), {**form, "index": "0"})
        assert (
            confirm.status_code == 200
            and "确认退号退费" in confirm.content.decode()
            and "原因" in confirm.content.decode()
        )
        assert Order.objects.get(pk=pk).status == Order.PAID  # asked, not yet done
        done = client.post(reverse(CHANGELIST), {**form, "apply": "1", "reason": "患者来电要求退号"}, follow=True)
        assert [m.message for m in done.context["messages"]] == [
            f"订单{order['order_no']}已退号，挂号费12.50元已记入退款流水、原路退回，已通知医院与患者"
        ]
        cancelled = Order.objects.get(pk=pk)
        assert (cancelled.status, cancelled.cancelled_by) == (Order.CANCELLED, Order.BY_STAFF)
        refund = LedgerEntry.objects.get(order=cancelled, kind=LedgerEntry.REFUND)
        assert refund.amount == Decimal("12.50") and "患者来电要求退号" in refund.reason
        notice = OutboxMessage.objects.get(order=cancelled, kind=OutboxMessage.CANCEL)
        assert notice.status == "sent" and sandbox_order(order).status == "3"
        step = cancelled.transitions.last()
        assert (step.user, step.actor, step.reason) == (user, "工作人员hotline", "患者来电要求退号")
        entry = AuditEntry.objects.filter(model="booking.Order", object_id=str(pk)).order_by("-at").first()
        assert entry.user == user and entry.action == "订单状态：已支付→已退号"

    def test_the_order_page_asks_the_reason_and_cancels_an_unpaid_lock(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        client.force_login(role_staff("hotline"))
        page = client.get(reverse("admin:booking_order_change", args=[order.pk])).content.decode()
        url = reverse("admin:booking_order_staff_action", args=[order.pk, "cancel"])
        assert url in page and "退号退费" in page
        asked = client.post(url, {"reason": ""})
        assert asked.status_code == 200 and "请填写原因" in asked.content.decode()
        assert Order.objects.get(pk=order.pk).status == Order.BOOKED
        done = client.post(url, {"reason": "患者改约"}, follow=True)
        assert "（未在线支付，无需退款）" in done.content.decode()
        order.refresh_from_db()
        assert order.status == Order.CANCELLED and not LedgerEntry.objects.filter(order=order).exists()
        assert OutboxMessage.objects.get(order=order, kind=OutboxMessage.UNLOCK).status == "sent"

    def test_an_order_the_rules_do_not_let_go_is_refused_in_chinese_with_nothing_written(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        reports.order_report(hospital=order.hospital, workflow_id=order.workflow_id, work_type="4")
        steps, audits = order.transitions.count(), AuditEntry.objects.count()
        client.force_login(role_staff("hotline"))
        url = reverse("admin:booking_order_staff_action", args=[order.pk, "cancel"])
        done = client.post(url, {"reason": "患者来电"}, follow=True)
        assert [m.message for m in done.context["messages"]] == [
            f"订单{order.order_no}未能退号退费：订单{order.order_no}已履约，不能退号"
        ]
        order.refresh_from_db()
        assert order.status == Order.VISITED and order.transitions.count() == steps
        assert AuditEntry.objects.count() == audits and not LedgerEntry.objects.filter(order=order).exists()

    def test_without_the_permission_there_is_no_cancel(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        client.force_login(staff("view_order"))
        assert "cancel_selected" not in client.get(reverse(CHANGELIST)).content.decode()
        url = reverse("admin:booking_order_staff_action", args=[order.pk, "cancel"])
        assert client.post(url, {"reason": "试一试"}).status_code == 403
        assert Order.objects.get(pk=order.pk).status == Order.BOOKED


class StaffResolveLockTests:
    def test_a_stuck_lock_the_hospital_does_not_hold_is_released(self, client, bookable, channel):
        _, schedule = bookable(slots=3)
        order = stuck_lock(schedule)
        user = role_staff("hotline")
        client.force_login(user)
        url = reverse("admin:booking_order_staff_action", args=[order.pk, "resolve"])
        assert url in client.get(reverse("admin:booking_order_change", args=[order.pk])).content.decode()
        done = client.post(url, {"reason": "患者来电询问"}, follow=True)
        [message] = done.context["messages"]
        assert message.level_tag == "success" and "医院未占用该号，平台号源已释放" in message.message
        order.refresh_from_db()
        assert order.status == Order.FAILED and Schedule.objects.get(pk=schedule.pk).remaining == 3
        assert OutboxMessage.objects.get(order=order).status == "sent"
        step = order.transitions.get()
        assert step.user == user and step.from_status == Order.LOCKING
        assert AuditEntry.objects.filter(action="处理锁号中：向医院核实", user=user, object_id=str(order.pk)).exists()

    def test_a_lock_the_hospital_seems_to_hold_goes_to_the_lost_lock_worklist(self, client, bookable, channel):
        sandbox_schedule, schedule = bookable(slots=3)
        order = stuck_lock(schedule)
        # The hospital took the number too (its answer was lost): its count equals the platform's.
        type(sandbox_schedule).objects.filter(pk=sandbox_schedule.pk).update(remaining=F("remaining") - 1)
        client.force_login(role_staff("hotline"))
        url = reverse("admin:booking_order_staff_action", args=[order.pk, "resolve"])
        done = client.post(url, {"reason": "患者来电询问"}, follow=True)
        [message] = done.context["messages"]
        assert message.level_tag == "warning" and "医院很可能仍占用该号" in message.message
        order.refresh_from_db()
        assert order.status == Order.FAILED and Schedule.objects.get(pk=schedule.pk).remaining == 2
        assert LostLock.objects.filter(order=order, status=OutboxMessage.UNKNOWN).exists()

    def test_a_lock_still_under_way_or_a_hospital_down_changes_nothing(self, client, bookable, channel, his):
        _, schedule = bookable(slots=3)
        fresh, stuck = stuck_lock(schedule, minutes_ago=0), stuck_lock(schedule)
        client.force_login(role_staff("hotline"))
        early = client.post(
            reverse("admin:booking_order_staff_action", args=[fresh.pk, "resolve"]), {"reason": "试"}, follow=True
        )
        assert "正在锁号" in [m.message for m in early.context["messages"]][0]
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["getRegistrationInfo"])
        down = client.post(
            reverse("admin:booking_order_staff_action", args=[stuck.pk, "resolve"]), {"reason": "试"}, follow=True
        )
        [message] = down.context["messages"]
        assert message.level_tag == "error" and "暂时无法核实" in message.message and "订单未做更改" in message.message
        for order in (fresh, stuck):
            order.refresh_from_db()
            assert order.status == Order.LOCKING and not order.transitions.exists()
        assert not OutboxMessage.objects.exists() and Schedule.objects.get(pk=schedule.pk).remaining == 1


class StaffResendTests:
    def test_the_last_notification_goes_out_again_and_is_audited(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        last = PatientNotification.objects.get(order=order)
        assert last.status == "sent"
        user = role_staff("hotline")
        client.force_login(user)
        form = {"action": "resend_selected", "_selected_action": [order.pk], "apply": "1", "reason": "患者未收到短信"}
        done = client.post(reverse(CHANGELIST), form, follow=True)
        assert [m.message for m in done.context["messages"]] == [f"订单{order.order_no}：已重新发送“锁号成功”通知"]
        again = PatientNotification.objects.filter(order=order).exclude(pk=last.pk).get()
        assert (again.kind, again.message, again.status) == (last.kind, last.message, "sent")
        assert AuditEntry.objects.filter(action="重发患者通知", user=user, reason="患者未收到短信").exists()


class ConsoleListTests:
    def test_the_order_list_puts_state_patient_visit_and_fee_first_and_shortens_numbers(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = lock(api, schedule, 1)
        client.force_login(role_staff("hotline"))
        page = client.get(reverse(CHANGELIST))
        headers = [str(h["text"]) for h in _headers(page)][1:]  # after the action checkbox
        assert headers[:4] == ["状态", "患者", "就诊日期/时段", "挂号费"]
        text = page.content.decode()
        assert f'title="{order["order_no"]}"' in text and f"{schedule.work_date:%Y-%m-%d} 上午" in text
        assert "测**" in text and "查看完整信息" not in text  # the reveal is on the order page only

    def test_the_order_history_reads_in_chinese_with_its_time(self, client, api, bookable):
        _, schedule = bookable(slots=3)
        order = Order.objects.get(order_no=lock(api, schedule, 1)["order_no"])
        step = order.transitions.get(from_status=Order.LOCKING)
        client.force_login(role_staff("hotline"))
        page = client.get(reverse("admin:booking_order_change", args=[order.pk])).content.decode()
        when = f"{timezone.localtime(step.created_at):%Y-%m-%d %H:%M:%S}"
        assert f"锁号中 → 已预约 {when}" in page and "- → locking" not in page and "→ 1<" not in page
        history = client.get(reverse("admin:booking_ordertransition_changelist"), {"q": order.order_no})
        assert history.status_code == 200 and "锁号中 → 已预约" in history.content.decode()

    def test_schedules_run_from_today_by_date_and_are_found_by_department_or_doctor_code(self, client, hospital):
        today = timezone.localdate()
        for offset, work_id in ((-1, "WPAST"), (2, "WLATER"), (0, "WTODAY"), (1, "WNEXT")):
            ScheduleFactory(hospital=hospital, work_date=today + dt.timedelta(days=offset), work_id=work_id)
        ScheduleFactory(
            hospital=hospital, work_date=today, work_id="WEYE", start_time=dt.time(13), stop_time=dt.time(17),
            department=DepartmentFactory(hospital=hospital, department_id="K09"), department_code="K09",
            doctor=DoctorFactory(hospital=hospital, doctor_id="D09"), doctor_code="D09",
        )  # fmt: skip
        client.force_login(role_staff("hotline"))
        url = reverse("admin:booking_schedule_changelist")

        def listed(params=None) -> list[str]:
            page = client.get(url, params or {})
            assert page.status_code == 200
            return [s.work_id for s in page.context["cl"].result_list]

        assert listed() == ["WTODAY", "WEYE", "WNEXT", "WLATER"]
        assert listed({"when": "all"})[0] == "WPAST"
        assert listed({"q": "K09"}) == listed({"q": "D09"}) == ["WEYE"]
        assert "10/20" in client.get(url).content.decode()


def _headers(page) -> list[dict]:
    from django.contrib.admin.templatetags.admin_list import result_headers

    return list(result_headers(page.context["cl"]))
