"""The order life cycle over HTTP against live_server, with the sandbox hospital as the hospital and
tasks run in process: lock, pay, cancel, expiry, the hospital's reports (2.4), 停诊 and 换诊,
the outbox (retries, backoff, sweeper, staff retry), interrupted locks, and the ledger.
Time is moved by passing `now` to the services, never by sleeping."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from booking.models import (
    LedgerEntry,
    NoShowRecord,
    Order,
    OrderTransition,
    OutboxMessage,
    PatientNotification,
    Schedule,
)
from booking.services import _common, orders, outbox, patients, reports, schedules
from regional.models import AuditEntry, MessageLog
from sandbox import services as sandbox
from sandbox.models import (
    SandboxCancellation,
    SandboxHospital,
    SandboxOrder,
    SandboxPayment,
    SandboxSchedule,
    SandboxSlot,
)
from tests.base import fake_id, lock, patient, sandbox_order, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class LockTests:
    def test_it_runs_on_postgresql(self, postgres):
        assert connection.vendor == "postgresql"

    def test_a_lock_takes_a_number_on_both_sides_and_starts_the_lock_clock(self, api, bookable):
        his_schedule, schedule = bookable(slots=5, price="12.50")
        before = timezone.now()
        order = lock(api, schedule)
        assert order["status"] == "1" and order["status_label"] == "已预约"
        assert order["order_no"].startswith("YY") and order["workflow_id"].startswith("WF")
        assert order["serial_number"] == 1 and order["fee"] == "12.50" and order["worktime"] == "08:00-08:24"
        expires = dt.datetime.fromisoformat(order["lock_expires_at"])
        assert dt.timedelta(minutes=14) < expires - before <= dt.timedelta(minutes=15, seconds=5)
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert (schedule.remaining, schedule.booked_count) == (4, 1)
        assert his_schedule.remaining == 4
        held = sandbox_order(order)
        assert held.status == SandboxOrder.BOOKED and held.channel == "JKMZWX"
        assert held.transaction_id == Order.objects.get().lock_transaction_id

    def test_the_history_records_locking_then_booked_with_who_and_why(self, api, bookable):
        _, schedule = bookable()
        order = Order.objects.get(order_no=lock(api, schedule)["order_no"])
        steps = list(order.transitions.values_list("from_status", "to_status", "actor"))
        assert steps == [("", "locking", "渠道JKMZWX"), ("locking", "1", "医院S001")]
        assert AuditEntry.objects.filter(model="booking.Order", object_id=str(order.pk)).count() == 2

    def test_the_patient_is_stored_encrypted_and_found_by_hash(self, api, bookable):
        _, schedule = bookable()
        lock(api, schedule, card_no="")
        with connection.cursor() as cursor:
            cursor.execute("SELECT id_card, phone, patient_name FROM booking_order")
            stored = cursor.fetchone()
        assert all("999999" not in value and "1340000" not in value and "测试" not in value for value in stored)
        assert Order.objects.get().id_card == fake_id(1)

    def test_a_time_slot_can_be_chosen(self, api, bookable):
        his_schedule, schedule = bookable(slots=4)
        order = lock(api, schedule, num_source_id=f"{his_schedule.work_id}-003")
        assert order["serial_number"] == 3 and order["num_source_id"] == f"{his_schedule.work_id}-003"
        assert SandboxSlot.objects.get(num_source_id=f"{his_schedule.work_id}-003").status == SandboxSlot.LOCKED

    def test_a_full_schedule_is_refused_with_409_and_nothing_changes(self, api, bookable):
        _, schedule = bookable(slots=1)
        lock(api, schedule, 1)
        refused = api.lock(schedule, 2)
        assert refused.status_code == 409
        assert refused.json()["code"] == "schedule_full" and "号源已满" in refused.json()["message"]
        assert Order.objects.count() == 1

    def test_a_stopped_schedule_is_refused_with_409(self, api, bookable):
        _, schedule = bookable()
        schedules.schedule_stop(hospital=schedule.hospital, work_id=schedule.work_id, reason="医生外出")
        refused = api.lock(schedule)
        assert refused.status_code == 409 and refused.json()["code"] == "schedule_closed"
        assert "停诊" in refused.json()["message"]

    def test_the_hospitals_refusal_releases_the_platform_count(self, api, bookable, his):
        his_schedule, schedule = bookable(slots=3)
        # The hospital has fewer numbers than the platform believes (a sync is on its way).
        SandboxSchedule.objects.filter(pk=his_schedule.pk).update(remaining=0)
        refused = api.lock(schedule)
        assert refused.status_code == 409 and refused.json()["code"] == "lock_refused"
        assert "医院拒绝锁号" in refused.json()["message"] and "号源已满" in refused.json()["message"]
        order = Order.objects.get()
        schedule.refresh_from_db()
        assert order.status == Order.FAILED and "号源已满" in order.failure_reason
        assert (schedule.remaining, schedule.booked_count) == (3, 1)
        assert not OutboxMessage.objects.exists()  # a refusal holds nothing at the hospital

    def test_a_confirmed_lock_the_platform_cannot_save_is_released_at_the_hospital(self, api, bookable, monkeypatch):
        his_schedule, schedule = bookable(slots=3)
        monkeypatch.setattr(orders, "RECORD_RETRY_DELAYS", (0.01, 0.01))
        real = orders._order_lock_succeeded
        attempts = []

        def failing_save(**kwargs):
            # The fault: every save of the hospital's yes fails, as under a locked SQLite file.
            attempts.append(kwargs["order_id"])
            raise OperationalError("database is locked")

        monkeypatch.setattr(orders, "_order_lock_succeeded", failing_save)
        response = api.lock(schedule)
        assert response.status_code == 503 and response.json()["code"] == "hospital_unavailable"
        assert len(attempts) == 3  # the save was retried before the lock was given up
        order = Order.objects.get()
        assert order.status == Order.FAILED and "保存失败" in order.failure_reason
        # The hospital had locked a number: the outbox undid it (UnlockReg of its WorkFlowId).
        unlock = OutboxMessage.objects.get(order=order, kind=OutboxMessage.UNLOCK)
        assert unlock.status == OutboxMessage.SENT and unlock.payload["WorkFlowId"].startswith("WF")
        held = SandboxOrder.objects.get(work_flow_id=unlock.payload["WorkFlowId"])
        assert held.status != SandboxOrder.BOOKED
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert schedule.remaining == 3 and his_schedule.remaining == 3
        assert not Order.objects.filter(status=Order.LOCKING).exists()
        monkeypatch.setattr(orders, "_order_lock_succeeded", real)
        assert lock(api, schedule, 2)["status"] == "1"  # the number is bookable again on both sides

    def test_a_patient_cannot_hold_two_orders_on_one_schedule(self, api, bookable):
        _, schedule = bookable()
        lock(api, schedule, 7)
        again = api.lock(schedule, 7)
        assert again.status_code == 409 and again.json()["code"] == "duplicate_booking"
        schedule.refresh_from_db()
        assert schedule.remaining == 4

    def test_a_retried_post_with_the_same_idempotency_key_returns_the_same_order(self, api, bookable):
        his_schedule, schedule = bookable()
        headers = {"Idempotency-Key": "retry-0001"}
        body = {"hospital_no": "S001", "work_id": schedule.work_id, "patient": patient(1)}
        first = api.post("/api/v1/orders/", body, headers=headers)
        second = api.post("/api/v1/orders/", body, headers=headers)
        assert first.status_code == 201 and second.status_code == 200
        assert second.headers["Idempotent-Replayed"] == "true"
        assert first.json()["order_no"] == second.json()["order_no"]
        assert Order.objects.count() == 1 and SandboxOrder.objects.count() == 1
        other = api.post("/api/v1/orders/", {**body, "patient": patient(2)}, headers=headers)
        assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"

    def test_invalid_patient_data_is_refused_naming_every_field_without_echoing_values(self, api, bookable):
        _, schedule = bookable()
        bad = patient(1, id_card="12345", phone="abc", sex="7")
        response = api.post("/api/v1/orders/", {"hospital_no": "S001", "work_id": schedule.work_id, "patient": bad})
        assert response.status_code == 400
        errors = response.json()["errors"]
        assert set(errors) == {"patient.id_card", "patient.phone", "patient.sex"}
        assert "12345" not in response.text
        assert not Order.objects.exists()

    @pytest.mark.parametrize(
        ("id_card", "rule"),
        [
            ("3306XXXXXXXXXX0001", "格式不正确"),  # the specification's placeholder style
            (fake_id(1)[:17] + ("1" if fake_id(1)[17] == "0" else "0"), "校验码不正确（GB 11643）"),
            ("999999198013010019", "出生日期不正确"),  # month 13 (check digit fits, the date does not)
        ],
    )
    def test_a_malformed_id_number_is_refused_naming_the_rule(self, api, bookable, id_card, rule):
        _, schedule = bookable()
        body = {"hospital_no": "S001", "work_id": schedule.work_id, "patient": patient(1, id_card=id_card)}
        response = api.post("/api/v1/orders/", body)
        assert response.status_code == 400 and response.json()["code"] == "invalid_request"
        assert response.json()["errors"]["patient.id_card"][0].startswith(rule)
        assert id_card not in response.text and not Order.objects.exists()

    def test_a_fifteen_digit_first_generation_number_is_accepted(self, api, bookable):
        _, schedule = bookable()
        body = {"hospital_no": "S001", "work_id": schedule.work_id, "patient": patient(1, id_card="999999800101001")}
        assert api.post("/api/v1/orders/", body).status_code == 201

    def test_the_patient_may_be_sent_flat(self, api, bookable):
        _, schedule = bookable()
        response = api.post("/api/v1/orders/", {"hospital_no": "S001", "work_id": schedule.work_id, **patient(3)})
        assert response.status_code == 201, response.text

    def test_unknown_hospital_or_schedule_is_404(self, api, bookable):
        _, schedule = bookable()
        assert (
            api.post("/api/v1/orders/", {"hospital_no": "NOPE", "work_id": "X", "patient": patient()}).status_code
            == 404
        )
        missing = api.post("/api/v1/orders/", {"hospital_no": "S001", "work_id": "NOPE", "patient": patient()})
        assert missing.status_code == 404 and missing.json()["code"] == "schedule_not_found"

    def test_the_patient_is_told_of_the_lock(self, api, bookable):
        _, schedule = bookable()
        lock(api, schedule)
        note = PatientNotification.objects.get()
        assert note.kind == "locked" and note.status == "sent" and note.backend == "LogBackend"
        assert "请在15分钟内" in note.message and "999999" not in note.message


class PaymentTests:
    def test_online_payment_marks_paid_writes_the_ledger_and_notifies_the_hospital(self, api, bookable):
        his_schedule, schedule = bookable(price="12.50")
        order = lock(api, schedule)
        paid = api.pay(order, pay_channel="alipay")
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "2" and paid.json()["pay_channel"] == "alipay"
        entry = LedgerEntry.objects.get()
        assert (entry.kind, entry.type, entry.amount, entry.batch) == (
            "payment",
            "1",
            Decimal("12.50"),
            order["order_no"],
        )
        assert entry.pay_trade_no == f"T{order['order_no']}" and entry.patient_name == "测试患者1"
        message = OutboxMessage.objects.get(kind="PaymentNotice")
        assert message.status == "sent" and message.attempts == 1
        assert sandbox_order(order).status == SandboxOrder.PAID
        payment = SandboxPayment.objects.get()
        assert (payment.amount, payment.pay_channel, payment.channel) == (Decimal("12.50"), "alipay", "JKMZWX")
        assert payment.transaction_id == message.transaction_id

    def test_paying_twice_with_the_same_trade_number_changes_nothing(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        assert api.pay(order).status_code == 200
        assert api.pay(order).status_code == 200
        assert LedgerEntry.objects.count() == 1 and OutboxMessage.objects.count() == 1
        other = api.pay(order, pay_trade_no="ANOTHER")
        assert other.status_code == 409 and other.json()["code"] == "order_state"

    def test_a_wrong_amount_is_refused(self, api, bookable):
        _, schedule = bookable(price="12.50")
        order = lock(api, schedule)
        response = api.pay(order, amount="10.00")
        assert response.status_code == 409 and response.json()["code"] == "payment_mismatch"
        assert not LedgerEntry.objects.exists()

    def test_an_expired_lock_cannot_be_paid(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        Order.objects.filter(order_no=order["order_no"]).update(
            lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        response = api.pay(order)
        assert response.status_code == 409 and response.json()["code"] == "lock_expired"

    def test_pay_at_the_counter_keeps_the_number_and_stops_the_lock_clock(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        response = api.pay(order, pay_type="3", pay_trade_no="", pay_channel="")
        assert response.status_code == 200 and response.json()["status"] == "1"
        assert response.json()["lock_expires_at"] is None
        assert not LedgerEntry.objects.exists()  # the money does not pass through the platform
        assert sandbox_order(order).onsite_payment
        assert orders.orders_expire_due(now=timezone.now() + dt.timedelta(hours=2)) == 0

    def test_online_payment_needs_a_trade_number_and_a_payment_channel(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        response = api.pay(order, pay_trade_no="", pay_channel="")
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"pay_trade_no", "pay_channel"}
        unknown = api.pay(order, pay_channel="cash")  # an enum in the document: refused by its shape
        assert unknown.status_code == 400 and set(unknown.json()["errors"]) == {"pay_channel"}


class CancelTests:
    def test_cancelling_a_paid_order_refunds_it_and_sends_the_cancel_notice(self, api, bookable):
        his_schedule, schedule = bookable(slots=2)
        order = lock(api, schedule)
        api.pay(order)
        response = api.post(f"/api/v1/orders/{order['order_no']}/cancel", {"reason": "临时有事"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "3" and response.json()["refund_amount"] == "12.50"
        refund = LedgerEntry.objects.get(kind="refund")
        assert refund.amount == Decimal("12.50") and refund.pay_trade_no == f"T{order['order_no']}"
        cancel = OutboxMessage.objects.get(kind="getPromiseNotice")
        assert cancel.status == "sent"
        assert sandbox_order(order).status == SandboxOrder.CANCELLED
        assert SandboxCancellation.objects.get().kind == SandboxCancellation.PLATFORM
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert schedule.remaining == 2 and his_schedule.remaining == 2

    def test_cancelling_an_unpaid_lock_unlocks_it_without_a_refund(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        response = api.post(f"/api/v1/orders/{order['order_no']}/cancel/")
        assert response.status_code == 200 and response.json()["refund_amount"] is None
        assert OutboxMessage.objects.get().kind == "UnlockReg"
        assert SandboxCancellation.objects.get().kind == SandboxCancellation.UNLOCK
        assert not LedgerEntry.objects.exists()

    def test_cancelling_twice_is_answered_the_same(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        api.pay(order)
        for _ in range(2):
            assert api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 200
        assert LedgerEntry.objects.filter(kind="refund").count() == 1
        assert SandboxCancellation.objects.count() == 1

    def test_a_visited_order_cannot_be_cancelled(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        reports.order_report(hospital=schedule.hospital, workflow_id=order["workflow_id"], work_type="4")
        response = api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        assert response.status_code == 409 and "已履约" in response.json()["message"]


class ExpiryTests:
    def test_an_unpaid_lock_is_unlocked_at_the_hospital_after_the_lock_time(self, api, bookable):
        from regional.observability import LOCK_EXPIRIES

        his_schedule, schedule = bookable(slots=3)
        order = lock(api, schedule)
        expired_before = LOCK_EXPIRIES._value.get()
        assert orders.orders_expire_due(now=timezone.now() + dt.timedelta(minutes=14)) == 0
        assert orders.orders_expire_due(now=timezone.now() + dt.timedelta(minutes=16)) == 1
        stored = Order.objects.get()
        assert stored.status == Order.EXPIRED
        assert OutboxMessage.objects.get().kind == "UnlockReg"
        assert sandbox_order(order).status == SandboxOrder.CANCELLED
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert schedule.remaining == 3 and his_schedule.remaining == 3
        assert LOCK_EXPIRIES._value.get() == expired_before + 1
        assert PatientNotification.objects.filter(kind="expired").exists()
        assert stored.transitions.last().actor == "系统"

    def test_a_paid_order_never_expires(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        api.pay(order)
        assert orders.orders_expire_due(now=timezone.now() + dt.timedelta(hours=3)) == 0


class HospitalReportTests:
    """2.4 getPromiseNotice, sent by the sandbox's interface engine over SOAP to /ws/center."""

    def test_fulfilment_no_show_and_hospital_cancellation_are_applied(self, api, bookable, his):
        _, schedule = bookable(slots=5)
        visited, absent, withdrawn = (lock(api, schedule, n) for n in (1, 2, 3))
        api.pay(visited)
        api.pay(withdrawn)
        sandbox.queue_call_next(schedule=SandboxSchedule.objects.get(work_id=schedule.work_id))
        sandbox.order_mark_no_show(order=sandbox_order(absent))
        sandbox.order_withdraw(order=sandbox_order(withdrawn), reason="设备故障")
        answer = sandbox.center_push_promise(orders=[sandbox_order(o) for o in (visited, absent, withdrawn)])
        assert answer.ok, answer.summary()
        ids = answer.data["WorkFlowId"].split(",")
        assert ids == [visited["workflow_id"], absent["workflow_id"], withdrawn["workflow_id"]]
        by_no = {o.order_no: o for o in Order.objects.all()}
        assert by_no[visited["order_no"]].status == Order.VISITED
        assert by_no[absent["order_no"]].status == Order.NO_SHOW
        cancelled = by_no[withdrawn["order_no"]]
        assert cancelled.status == Order.CANCELLED and cancelled.cancelled_by == Order.BY_HOSPITAL
        assert LedgerEntry.objects.filter(kind="refund", order=cancelled).exists()
        record = NoShowRecord.objects.get()
        assert (
            record.order.order_no == absent["order_no"]
            and record.id_card_hash == by_no[absent["order_no"]].id_card_hash
        )
        assert record.work_date == schedule.work_date

    def test_after_the_hospitals_cancellation_the_platform_never_sends_its_own(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        api.pay(order)
        sandbox.order_withdraw(order=sandbox_order(order), reason="医生停诊")
        assert sandbox.center_push_promise(orders=[sandbox_order(order)]).ok
        response = api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        assert response.status_code == 200 and response.json()["cancelled_by"] == "hospital"
        assert not OutboxMessage.objects.filter(kind__in=["getPromiseNotice", "UnlockReg"]).exists()
        assert SandboxCancellation.objects.filter(kind=SandboxCancellation.PLATFORM).count() == 0

    def test_a_pending_cancel_is_dropped_when_the_hospital_cancels_first(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        api.pay(order)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["getPromiseNotice"])
        api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        message = OutboxMessage.objects.get(kind="getPromiseNotice")
        assert message.status == "pending" and message.attempts == 1
        reports.order_report(
            hospital=schedule.hospital, workflow_id=order["workflow_id"], work_type="3", desc="医院退号"
        )
        message.refresh_from_db()
        assert message.status == "superseded"

    def test_unknown_work_flow_ids_are_named_and_the_others_processed(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        from regional.messages import catalog
        from sandbox import center

        when = timezone.localtime().replace(tzinfo=None, microsecond=0)
        answer = center.send(
            hospital_no="S001",
            center_url=his.center_url,
            secret=his.center_secret,
            interface=catalog.PROMISE_NOTICE_CENTER,
            data={"WorkInfo": [
                {"WorkFlowId": "WF-UNKNOWN-1", "workType": "4", "workDate": when},
                {"WorkFlowId": order["workflow_id"], "workType": "4", "workDate": when, "desc": "已就诊"},
            ]},
        )  # fmt: skip
        assert answer.result_code == 1
        assert "WorkInfo/Record[1]/WorkFlowId" in answer.error_msg and "WF-UNKNOWN-1" in answer.error_msg
        log = MessageLog.objects.filter(interface="getPromiseNotice", direction="in").latest("created_at")
        assert f"<WorkFlowId>{order['workflow_id']}</WorkFlowId>" in log.response_text
        assert Order.objects.get().status == Order.VISITED

    def test_a_repeated_report_changes_nothing(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.order_mark_no_show(order=sandbox_order(order))
        for _ in range(2):
            assert sandbox.center_push_promise(orders=[sandbox_order(order)]).ok
        assert NoShowRecord.objects.count() == 1
        assert OrderTransition.objects.filter(to_status=Order.NO_SHOW).count() == 1

    def test_the_order_detail_refreshes_from_the_hospital(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        api.pay(order)
        sandbox.queue_call_next(schedule=SandboxSchedule.objects.get(work_id=schedule.work_id))
        detail = api.get(f"/api/v1/orders/{order['order_no']}")
        assert detail.status_code == 200 and detail.json()["status"] == "4"
        assert [t["to_status"] for t in detail.json()["transitions"]] == ["locking", "1", "2", "4"]
        assert "订单查询" in detail.json()["transitions"][-1]["actor"]


class StopAndChangeTests:
    def test_a_stop_cancels_marks_refunds_and_notifies_without_calling_the_hospital(self, api, bookable, his):
        his_schedule, schedule = bookable(slots=4)
        unpaid, paid = lock(api, schedule, 1), lock(api, schedule, 2)
        api.pay(paid)
        answer = sandbox.schedule_stop_and_notify(schedule=his_schedule, reason="医生临时外出")
        assert answer.ok, answer.summary()
        by_no = {o.order_no: o for o in Order.objects.all()}
        for number in (unpaid["order_no"], paid["order_no"]):
            assert by_no[number].status == Order.CANCELLED and by_no[number].mark == Order.MARK_STOPPED
            assert by_no[number].cancelled_by == Order.BY_STOP and by_no[number].mark_reason == "医生临时外出"
        assert LedgerEntry.objects.filter(kind="refund").get().order.order_no == paid["order_no"]
        assert PatientNotification.objects.filter(kind="stopped").count() == 2
        assert not OutboxMessage.objects.exclude(kind="PaymentNotice").exists()
        assert not SandboxCancellation.objects.exists()

    def test_a_change_moves_active_orders_to_the_new_schedule(self, api, bookable, his):
        his_schedule, schedule = bookable(slots=4)
        kept, gone = lock(api, schedule, 1), lock(api, schedule, 2)
        api.post(f"/api/v1/orders/{gone['order_no']}/cancel")
        new_his, answer = sandbox.schedule_change_and_notify(schedule=his_schedule, reason="换由其他医生出诊")
        assert answer.ok, answer.summary()
        new = Schedule.objects.get(work_id=new_his.work_id)
        moved = Order.objects.get(order_no=kept["order_no"])
        assert moved.schedule == new and moved.mark == Order.MARK_CHANGED and moved.status == Order.BOOKED
        assert Order.objects.get(order_no=gone["order_no"]).schedule == schedule
        schedule.refresh_from_db()
        assert (schedule.booked_count, new.booked_count) == (1, 1)
        note = PatientNotification.objects.get(kind="changed")
        assert new_his.doctor.name in note.message
        # The moved order is paid against the new session, and the hospital agrees.
        assert api.pay(kept).status_code == 200
        assert sandbox_order(moved).schedule.work_id == new.work_id


class OutboxTests:
    def test_a_hospital_that_is_down_gets_the_payment_notice_when_it_is_back(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["PaymentNotice"])
        paid = api.pay(order)
        assert paid.status_code == 200 and paid.json()["status"] == "2"  # the platform does not stall
        message = OutboxMessage.objects.get()
        assert message.status == "pending" and message.attempts == 1 and "HTTP 500" in message.last_error
        first_due = message.next_attempt_at
        assert outbox.outbox_deliver(message_id=message.pk).outcome == "retry"
        message.refresh_from_db()
        assert message.attempts == 2 and message.next_attempt_at > first_due  # backoff grows
        sandbox.hospital_fault_set(hospital=his)
        assert outbox.outbox_sweep(now=timezone.now()) == 0  # not due yet
        assert outbox.outbox_sweep(now=timezone.now() + dt.timedelta(hours=1)) == 1
        message.refresh_from_db()
        assert message.status == "sent" and SandboxPayment.objects.count() == 1

    def test_a_refused_message_fails_and_staff_can_send_it_again(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_ERROR, operations=["PaymentNotice"])
        api.pay(order)
        message = OutboxMessage.objects.get()
        assert message.status == "failed" and "沙箱医院模拟的业务错误" in message.last_error
        sandbox.hospital_fault_set(hospital=his)
        assert outbox.outbox_retry(message_ids=[message.pk]) == 1
        message.refresh_from_db()
        assert message.status == "sent"
        assert AuditEntry.objects.filter(action="重新发送医院通知").exists()

    def test_a_repeat_of_a_delivered_message_is_harmless(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule)
        api.pay(order)
        message = OutboxMessage.objects.get()
        OutboxMessage.objects.filter(pk=message.pk).update(status="pending")  # a worker died before recording it
        assert outbox.outbox_deliver(message_id=message.pk).outcome == "sent"
        assert SandboxPayment.objects.count() == 1

    def test_messages_of_one_order_reach_the_hospital_in_order(self, api, bookable, his):
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["PaymentNotice"])
        api.pay(order)
        payment = OutboxMessage.objects.get(kind="PaymentNotice")
        # The payment notice is being sent (lease held) when the patient cancels: it is left to
        # finish, and the cancel waits behind it.
        OutboxMessage.objects.filter(pk=payment.pk).update(claimed_until=timezone.now() + dt.timedelta(minutes=5))
        api.post(f"/api/v1/orders/{order['order_no']}/cancel")
        cancel = OutboxMessage.objects.get(kind="getPromiseNotice")
        assert cancel.status == "pending" and cancel.attempts == 0  # waits for the payment notice
        sandbox.hospital_fault_set(hospital=his)
        OutboxMessage.objects.filter(pk=payment.pk).update(claimed_until=None)
        # The payment notice of the now cancelled order is superseded, never sent; the cancel goes.
        assert outbox.outbox_deliver(message_id=cancel.pk).outcome == "sent"
        assert OutboxMessage.objects.get(kind="PaymentNotice").status == "superseded"
        assert SandboxPayment.objects.count() == 0 and sandbox_order(order).status == SandboxOrder.CANCELLED

    def test_after_the_retry_budget_a_message_fails_for_staff(self, api, bookable, his, settings):
        settings.DELIVERY_MAX_ATTEMPTS = 2
        _, schedule = bookable()
        order = lock(api, schedule)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, operations=["PaymentNotice"])
        api.pay(order)
        message = OutboxMessage.objects.get()
        assert outbox.outbox_deliver(message_id=message.pk).outcome == "failed"
        message.refresh_from_db()
        assert message.status == "failed" and "重试2次仍未送达" in message.last_error


class HospitalDownTests:
    def test_locks_fail_with_503_then_fast_once_the_circuit_opens_and_counts_are_kept(
        self, api, bookable, his, settings
    ):
        from regional import hospital_client

        settings.HOSPITAL_CIRCUIT_FAILURES = 2
        his_schedule, schedule = bookable(slots=3)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500)
        answers = [api.lock(schedule, n) for n in (1, 2, 3)]
        for answer in answers:
            assert answer.status_code == 503 and answer.json()["code"] == "hospital_unavailable"
            assert "请稍后重试" in answer.json()["message"]
        fast = answers[-1]
        assert "熔断" in fast.json()["message"] and fast.elapsed < dt.timedelta(seconds=1)
        # Only the calls actually attempted left (failed) orders; the fast refusals reserved nothing.
        attempted = sum("熔断" not in a.json()["message"] for a in answers)
        assert Order.objects.filter(status=Order.FAILED).count() == attempted >= 1
        # An HTTP 500 may hide an applied lock: each attempted number stays out of sale until settled.
        schedule.refresh_from_db()
        assert schedule.remaining == 3 - attempted
        undo = OutboxMessage.objects.filter(kind="UnlockReg", payload__recover=True)
        assert undo.count() == attempted and all(m.status == "pending" for m in undo)
        # The hospital is back: the sweeper reads its count back, which shows it holds nothing.
        sandbox.hospital_fault_set(hospital=his)
        hospital_client.circuit_for(schedule.hospital).reset()
        assert outbox.outbox_sweep(now=timezone.now() + dt.timedelta(hours=1)) == attempted
        assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
        his_schedule.refresh_from_db()
        schedule.refresh_from_db()
        assert his_schedule.remaining == 3 == schedule.remaining
        assert not SandboxOrder.objects.filter(status__in=SandboxOrder.ACTIVE).exists()

    def test_an_unreachable_hospital_needs_no_undoing(self, api, bookable, his):
        from tests.services import free_port

        _, schedule = bookable()
        schedule.hospital.endpoint_url = f"http://127.0.0.1:{free_port()}/ws"
        schedule.hospital.save()
        response = api.lock(schedule)
        assert response.status_code == 503 and "连接" in response.json()["message"]
        assert not OutboxMessage.objects.exists()

    def test_a_lock_whose_answer_was_lost_holds_its_number_until_settled_by_staff(self, api, bookable, his, settings):
        settings.HOSPITAL_CALL_TIMEOUT = 1
        his_schedule, schedule = bookable(slots=3)
        sandbox.hospital_fault_set(
            hospital=his, mode=SandboxHospital.FAULT_TIMEOUT, timeout_seconds=2, operations=["confirmRegistration"]
        )
        response = api.lock(schedule)
        assert response.status_code == 503 and "超时" in response.json()["message"]
        message = OutboxMessage.objects.get()
        assert message.kind == "UnlockReg" and message.payload == {"recover": True, "holds": True}
        assert message.status == "pending"  # not settled inside the request
        # The sweep settles it a minute later; by then the hospital has done what it was going to do.
        wait_for(lambda: SandboxOrder.objects.filter(status__in=SandboxOrder.ACTIVE).exists(), message="the late lock")
        sandbox.hospital_fault_set(hospital=his)
        outbox.outbox_deliver(message_id=message.pk)
        message.refresh_from_db()
        his_schedule.refresh_from_db()
        schedule.refresh_from_db()
        # The hospital's count shows the lock it made: nothing can be unlocked without its WorkFlowId.
        assert message.status == OutboxMessage.UNKNOWN and his_schedule.remaining == schedule.remaining == 2
        # The hospital's desk releases it when staff call; staff then settle it on the worklist.
        sandbox_lock = SandboxOrder.objects.get(status__in=SandboxOrder.ACTIVE)
        sandbox.order_unlock(hospital=his, work_flow_id=sandbox_lock.work_flow_id)
        assert outbox.lost_lock_released(message_ids=[message.pk], reason="医院确认已解除") == 1
        schedule.refresh_from_db()
        assert schedule.remaining == 3 and OutboxMessage.objects.get().status == "sent"


class InterruptedLockTests:
    def test_an_order_left_locking_by_a_crash_is_released_by_the_sweeper(self, api, bookable, channel):
        his_schedule, schedule = bookable(slots=3)
        # The platform reserved the slot, sent confirmRegistration and died before recording the answer.
        order = orders._order_reserve(
            channel=channel[0], schedule=schedule, patient=patients.Patient(**patient(5)), num_source_id="",
            idempotency_key="", fingerprint="",
        )  # fmt: skip
        from regional import hospital_client

        hospital_client.call(schedule.hospital, "confirmRegistration", _common._lock_message(order, schedule))
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert (schedule.remaining, his_schedule.remaining) == (2, 2)
        assert orders.orders_reconcile_locking(now=timezone.now()) == 0  # still within a call's time
        assert orders.orders_reconcile_locking(now=timezone.now() + dt.timedelta(minutes=5)) == 1
        order.refresh_from_db()
        schedule.refresh_from_db()
        assert order.status == Order.FAILED and schedule.remaining == 2  # held until settled
        message = OutboxMessage.objects.get()
        outbox.outbox_deliver(message_id=message.pk)
        message.refresh_from_db()
        schedule.refresh_from_db()
        # The hospital holds the lock (its count says so), and the platform cannot unlock it blind.
        assert message.status == OutboxMessage.UNKNOWN and schedule.remaining == 2
        assert SandboxOrder.objects.get().status in SandboxOrder.ACTIVE


class ChannelIsolationTests:
    def test_a_channel_sees_only_its_own_orders(self, api, other_api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule, 1)
        assert other_api.get(f"/api/v1/orders/{order['order_no']}").status_code == 404
        assert other_api.post(f"/api/v1/orders/{order['order_no']}/cancel").status_code == 404
        mine = api.post("/api/v1/orders/search/", {"id_card": patient(1)["id_card"]})
        theirs = other_api.post("/api/v1/orders/search/", {"id_card": patient(1)["id_card"]})
        assert [o["order_no"] for o in mine.json()["results"]] == [order["order_no"]]
        assert theirs.json()["results"] == []

    def test_the_channel_that_sent_the_patient_gets_it_back_in_full(self, api, bookable):
        _, schedule = bookable()
        order = lock(api, schedule, 1)
        assert order["patient"]["id_card"] == fake_id(1) and order["patient"]["phone"] == "13400000001"


class InFlightLockTests:
    """What happens to a lock while its confirmRegistration is on the way (the hospital answers slowly)."""

    def _lock_in_background(self, api, schedule, his) -> tuple[threading.Thread, dict]:
        sandbox.hospital_fault_set(hospital=his, latency_ms=1500, operations=["confirmRegistration"])
        outcome: dict = {}
        thread = threading.Thread(target=lambda: outcome.update(response=api.lock(schedule, 1)))
        thread.start()
        wait_for(lambda: Order.objects.filter(status=Order.LOCKING).exists(), message="the lock under way")
        return thread, outcome

    def test_a_stop_during_the_lock_cancels_the_order_and_undoes_the_hospitals_lock(self, api, bookable, his):
        his_schedule, schedule = bookable(slots=3)
        thread, outcome = self._lock_in_background(api, schedule, his)
        schedules.schedule_stop(hospital=schedule.hospital, work_id=schedule.work_id, reason="临时停诊")
        thread.join(30)
        response = outcome["response"]
        assert response.status_code == 409 and response.json()["code"] == "schedule_closed"
        order = Order.objects.get()
        assert (order.status, order.mark, order.cancelled_by) == (Order.CANCELLED, Order.MARK_STOPPED, Order.BY_STOP)
        assert OutboxMessage.objects.get().kind == "UnlockReg" and OutboxMessage.objects.get().status == "sent"
        assert SandboxOrder.objects.get().status == SandboxOrder.CANCELLED
        steps = list(order.transitions.values_list("to_status", "mark"))
        assert steps == [("locking", ""), ("locking", "stopped"), ("3", "stopped")]

    def test_a_lock_given_up_by_the_sweeper_is_undone_when_its_answer_comes(self, api, bookable, his):
        his_schedule, schedule = bookable(slots=3)
        thread, outcome = self._lock_in_background(api, schedule, his)
        assert orders.orders_reconcile_locking(now=timezone.now() + dt.timedelta(minutes=5)) == 1
        thread.join(30)
        response = outcome["response"]
        assert response.status_code == 503 and "已撤销" in response.json()["message"]
        assert Order.objects.get().status == Order.FAILED
        unlock = OutboxMessage.objects.get()
        assert unlock.status == "sent" and unlock.payload["WorkFlowId"] == SandboxOrder.objects.get().work_flow_id
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert schedule.remaining == his_schedule.remaining == 3
        assert SandboxOrder.objects.get().status == SandboxOrder.CANCELLED
