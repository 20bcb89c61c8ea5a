"""End to end: a channel over HTTP (live_server), the platform on PostgreSQL, a real Celery worker
on Redis delivering the outbox and the notifications, and the sandbox hospital as the hospital
(its HIS over SOAP, its interface engine reporting back to /ws/center).

Time is controlled, never slept: an expired lock is a lock whose expiry is moved into the past;
the worker is only waited for (bounded polling) because it is another process.
"""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from django.utils import timezone

from booking import tasks
from booking.models import LedgerEntry, Order, OutboxMessage, PatientNotification, Schedule
from sandbox import services as sandbox
from sandbox.models import (
    SandboxCancellation,
    SandboxHospital,
    SandboxOrder,
    SandboxPayment,
    SandboxSchedule,
)
from tests.base import demo_his, lock, patient, sandbox_order, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def all_sent(model, **filters) -> bool:
    rows = model.objects.filter(**filters)
    return rows.exists() and not rows.exclude(status="sent").exists()


@pytest.fixture
def region(public_url, make_hospital):
    """A level-1 demo hospital that has pushed its description, departments, doctors and two days of
    sessions to the center, as a real HIS does when it joins."""
    his = demo_his(public_url, platform_name="沙箱医院", name="演示市第一人民医院", level=1, days=2)
    for push in (sandbox.center_push_hospital, sandbox.center_push_departments, sandbox.center_push_doctors):
        assert push(hospital=his).ok
    assert sandbox.center_push_schedules(hospital=his).ok
    return his


@pytest.fixture
def schedule(region) -> Schedule:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    return Schedule.objects.select_related("hospital").filter(work_date=tomorrow).order_by("work_id").first()


class JourneyTests:
    def test_browse_card_lock_pay_and_fulfil(self, celery_worker, api, region):
        hospitals = api.get("/api/v1/hospitals/").json()["results"]
        assert [(h["hospital_no"], h["name"], h["level"]) for h in hospitals] == [("S001", "演示市第一人民医院", 1)]
        departments = api.get("/api/v1/hospitals/S001/departments/").json()["results"]
        assert [d["name"] for d in departments] == ["内科", "外科"]
        doctors = api.get("/api/v1/doctors/", {"hospital": "S001", "department": "NK"}).json()["results"]
        doctor = doctors[0]
        assert doctor["department_name"] == "内科"
        by_pinyin = api.get("/api/v1/doctors/", {"q": doctor["name_abbr"][:3].lower()}).json()["results"]
        assert doctor["doctor_id"] in [d["doctor_id"] for d in by_pinyin]
        tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
        listed = api.get("/api/v1/schedules/", {"hospital": "S001", "doctor": doctor["doctor_id"], "date": tomorrow})
        session = listed.json()["results"][0]
        assert session["remaining"] == 8 and session["price"] == "5.00" and session["status"] == "normal"
        live = api.get(f"/api/v1/schedules/{session['id']}/").json()
        assert live["live"] is True and live["schedule"]["remaining"] == 8
        slots = api.get(f"/api/v1/schedules/{session['id']}/slots/").json()["slots"]
        assert len(slots) == 8 and all(s["available"] for s in slots)
        queue = api.get(f"/api/v1/schedules/{session['id']}/queue/").json()
        assert queue["remaining"] == 8 and queue["waiting"] == 0
        # The patient has no card yet: the hospital registers one; it checks as valid.
        cards = api.post(
            "/api/v1/cards/", {"hospital_no": "S001", **{k: patient(1)[k] for k in ("id_card", "name", "phone")}}
        )
        card_no = cards.json()["cards"][0]["card_no"]
        assert cards.json()["cards"][0]["phone"] == "134****0001"
        check = api.post(
            "/api/v1/cards/check/",
            {"hospital_no": "S001", "card_no": card_no, "card_type": "01", "id_card": patient(1)["id_card"], "name": "测试患者1"},
        )  # fmt: skip
        assert check.json()["valid"] is True
        # Lock the third time slot with the card, pay, and the hospital is told (by the worker).
        body = {"hospital_no": "S001", "work_id": session["work_id"], "num_source_id": slots[2]["num_source_id"],
                "patient": patient(1, card_no=card_no, card_type="01")}  # fmt: skip
        order = api.post("/api/v1/orders/", body, headers={"Idempotency-Key": "journey-1"}).json()
        assert order["status"] == "1" and order["serial_number"] == 3
        assert sandbox_order(order).patient_no == card_no
        paid = api.pay(order)
        assert paid.json()["status"] == "2"
        wait_for(lambda: all_sent(OutboxMessage, kind="PaymentNotice"), message="PaymentNotice delivered")
        assert sandbox_order(order).status == SandboxOrder.PAID
        # The patient is seen; the hospital reports fulfilment (2.4) to the center.
        his_schedule = SandboxSchedule.objects.get(work_id=session["work_id"])
        assert sandbox.queue_call_next(schedule=his_schedule).work_flow_id == order["workflow_id"]
        answer = sandbox.center_push_promise(orders=[sandbox_order(order)])
        assert answer.ok and answer.data["WorkFlowId"] == order["workflow_id"]
        detail = api.get(f"/api/v1/orders/{order['order_no']}").json()
        assert detail["status"] == "4" and detail["status_label"] == "已履约"
        assert [t["to_status"] for t in detail["transitions"]] == ["locking", "1", "2", "4"]
        wait_for(lambda: all_sent(PatientNotification), message="patient notifications sent")
        assert set(PatientNotification.objects.values_list("kind", flat=True)) == {"locked", "paid"}

    def test_an_unpaid_lock_expires_and_is_unlocked_at_the_hospital(self, celery_worker, api, schedule):
        order = lock(api, schedule)
        # The lock time passes.
        Order.objects.filter(order_no=order["order_no"]).update(
            lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        tasks.expire_locks.delay()
        wait_for(lambda: Order.objects.filter(status=Order.EXPIRED).exists(), message="lock expired")
        wait_for(lambda: all_sent(OutboxMessage, kind="UnlockReg"), message="UnlockReg delivered")
        assert sandbox_order(order).status == SandboxOrder.CANCELLED
        assert SandboxCancellation.objects.get().kind == SandboxCancellation.UNLOCK
        schedule.refresh_from_db()
        assert schedule.remaining == SandboxSchedule.objects.get(work_id=schedule.work_id).remaining == 8
        wait_for(lambda: all_sent(PatientNotification, kind="expired"), message="expiry notification")

    def test_lock_pay_cancel_and_refund(self, celery_worker, api, schedule):
        order = lock(api, schedule)
        api.pay(order, pay_channel="alipay")
        # Delivered before the cancel: a payment notice still undelivered at the cancel would be superseded.
        wait_for(lambda: all_sent(OutboxMessage, kind="PaymentNotice"), message="payment notice delivered")
        cancelled = api.post(f"/api/v1/orders/{order['order_no']}/cancel", {"reason": "行程有变"}).json()
        assert cancelled["status"] == "3" and cancelled["refund_amount"] == order["fee"]
        entries = {e.kind: e for e in LedgerEntry.objects.all()}
        assert entries["payment"].amount == entries["refund"].amount and entries["refund"].pay_channel == "alipay"
        wait_for(lambda: all_sent(OutboxMessage), message="payment and cancel notices delivered")
        assert SandboxPayment.objects.count() == 1
        cancellation = SandboxCancellation.objects.get()
        assert cancellation.kind == SandboxCancellation.PLATFORM and cancellation.reason == "行程有变"
        assert sandbox_order(order).status == SandboxOrder.CANCELLED

    def test_stop_and_change_notices_carry_through_to_orders(self, celery_worker, api, region):
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        first, second = Schedule.objects.select_related("hospital").filter(work_date=tomorrow).order_by("work_id")[:2]
        stopped_paid, stopped_unpaid, moved = lock(api, first, 1), lock(api, first, 2), lock(api, second, 3)
        api.pay(stopped_paid)
        wait_for(lambda: all_sent(OutboxMessage), message="payment notice delivered")
        assert sandbox.schedule_stop_and_notify(
            schedule=SandboxSchedule.objects.get(work_id=first.work_id), reason="医生外出会诊"
        ).ok
        new_his, answer = sandbox.schedule_change_and_notify(
            schedule=SandboxSchedule.objects.get(work_id=second.work_id), reason="改由其他医生出诊"
        )
        assert answer.ok, answer.summary()
        orders = {o.order_no: o for o in Order.objects.select_related("schedule")}
        for number in (stopped_paid["order_no"], stopped_unpaid["order_no"]):
            assert (orders[number].status, orders[number].mark) == (Order.CANCELLED, Order.MARK_STOPPED)
        assert LedgerEntry.objects.get(kind="refund").order.order_no == stopped_paid["order_no"]
        follower = orders[moved["order_no"]]
        assert follower.mark == Order.MARK_CHANGED and follower.schedule.work_id == new_his.work_id
        wait_for(
            lambda: (
                all_sent(PatientNotification, kind__in=["stopped", "changed"])
                and PatientNotification.objects.filter(kind__in=["stopped", "changed"]).count() == 3
            ),
            message="stop and change notifications sent",
        )
        # The moved order lives on at the hospital under the new session: it can still be paid.
        assert api.pay(moved).status_code == 200
        wait_for(lambda: all_sent(OutboxMessage, order__order_no=moved["order_no"]), message="payment of moved order")
        assert SandboxOrder.objects.get(work_flow_id=moved["workflow_id"]).status == SandboxOrder.PAID
        assert not SandboxCancellation.objects.exists()  # the platform never cancelled towards the hospital


class HospitalDownTests:
    def test_notifications_queued_while_the_hospital_is_down_arrive_exactly_once_when_it_is_back(
        self, celery_worker, redis_url, api, region, schedule
    ):
        his = SandboxHospital.objects.get(hospital_no="S001")
        paid, cancelled, expired = (lock(api, schedule, n) for n in (1, 2, 3))
        sandbox.hospital_fault_set(
            hospital=his,
            mode=SandboxHospital.FAULT_HTTP500,
            operations=["PaymentNotice", "getPromiseNotice", "UnlockReg"],
        )
        # The platform goes on while the hospital is down: payments, a cancellation, an expiry.
        assert api.pay(paid).json()["status"] == "2"
        assert api.pay(cancelled).json()["status"] == "2"
        assert api.post(f"/api/v1/orders/{cancelled['order_no']}/cancel").json()["status"] == "3"
        Order.objects.filter(order_no=expired["order_no"]).update(
            lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        tasks.expire_locks.delay()
        wait_for(lambda: OutboxMessage.objects.count() == 4, message="four messages queued")
        # The cancelled order's payment notice, if still undelivered, is superseded by the cancellation.
        wait_for(
            lambda: (
                not OutboxMessage.objects.filter(
                    attempts=0, status="pending", kind__in=["PaymentNotice", "UnlockReg"]
                ).exists()
            ),
            message="first delivery attempts",
        )
        assert not OutboxMessage.objects.filter(status="sent").exists()
        assert SandboxPayment.objects.count() == 0
        # The hospital is back; the circuit's reset time and the messages' backoff pass.
        sandbox.hospital_fault_set(hospital=his)
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter("*circuit:hospital:S001*"):
            client.delete(key)
        OutboxMessage.objects.filter(status="pending").update(next_attempt_at=timezone.now() - dt.timedelta(hours=1))
        tasks.sweep.delay()
        wait_for(
            lambda: not OutboxMessage.objects.exclude(status__in=["sent", "superseded"]).exists(),
            timeout=60,
            message="every queued message delivered",
        )
        # Exactly once in effect: one payment for the paid order (the cancelled order's payment
        # notice was superseded by its cancellation), one cancellation each.
        superseded = OutboxMessage.objects.get(status="superseded")
        assert superseded.kind == "PaymentNotice" and superseded.order.order_no == cancelled["order_no"]
        payments = SandboxPayment.objects.values_list("order__work_flow_id", flat=True)
        assert list(payments) == [paid["workflow_id"]]
        kinds = dict(SandboxCancellation.objects.values_list("order__work_flow_id", "kind"))
        assert kinds == {
            cancelled["workflow_id"]: SandboxCancellation.PLATFORM,
            expired["workflow_id"]: SandboxCancellation.UNLOCK,
        }
        assert sandbox_order(paid).status == SandboxOrder.PAID
        assert sandbox_order(cancelled).status == sandbox_order(expired).status == SandboxOrder.CANCELLED
        schedule.refresh_from_db()
        assert schedule.remaining == SandboxSchedule.objects.get(work_id=schedule.work_id).remaining == 7
