"""Hospitals nobody on the team wrote (issue 15): the vendor-style simulator (tests/simulators) in each
of its styles, onboarded from its settings alone, checked with check_hospital, and booked, paid, queried
and cancelled through over HTTP by a channel. What the hospital receives is compared with the
specification's request tables, version gating included."""

from __future__ import annotations

import datetime as dt
import io
import time
from xml.sax.saxutils import escape

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from booking.models import Order, OutboxMessage, Schedule
from regional.messages.catalog import HOSPITAL, SYNCHRONIZED_WORK_INFO, interface
from tests.base import SECRET, patient
from tests.regional.test_spec_tables import read_tables, spec_file
from tests.simulators.vendor_his import STYLES, hospital_releases

pytestmark = pytest.mark.django_db(transaction=True)

# Each style as the platform's settings describe it (what staff enter in the admin).
SETTINGS = {
    "cxf": {"soap_namespace": STYLES["cxf"].namespace, "soap_part_name": "xmlStr", "soap_part_form": "unqualified",
            "soap_action_style": "empty"},
    "asmx": {"soap_namespace": STYLES["asmx"].namespace, "soap_part_name": "xmlString", "soap_version": "1.2",
             "soap_action_style": "namespace"},
    "gbk": {"soap_namespace": STYLES["gbk"].namespace, "soap_part_name": "arg0", "soap_part_form": "unqualified",
            "soap_encoding": "GBK"},
}  # fmt: skip
HOSPITAL_NOS = {"cxf": "V001", "asmx": "V002", "gbk": "V003"}


def push_schedules(public_url: str, hospital_no: str, his, *, namespace: str, count: bool = False) -> None:
    """The hospital's interface engine pushes its sessions (2.1) in an envelope of its own template:
    the operation in its own namespace (item 7), without the optional Count (item 5)."""
    records = []
    for session in his.state.sessions.values():
        records.append(
            {
                "WorkId": session.work_id, "DoctorId": "D001", "DoctorName": "张三丰", "DepartmentId": "K01",
                "DepartmentName": "心血管内科", "WorkDate": session.work_date, "WorkTimeCode": "1",
                "WorkStartDate": "08:00", "WorkStopDate": "11:30", "RegistrationTypeName": "专家门诊",
                "RegistrationPrice": session.price, "RegistrationNumber": session.remaining,
                "RegistrationCount": session.remaining,
            }
        )  # fmt: skip
    data = {"TransactionId": f"{hospital_no}-sync-1", "HospitalNo": hospital_no, "IsMultiTimes": "0",
            "WorkInfo": records, "Count": len(records) if count else None}  # fmt: skip
    message = SYNCHRONIZED_WORK_INFO.request.render(data)
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:his="{namespace}"><soap:Body><his:synchronizedWorkInfo><arg0>{escape(message)}</arg0>'
        "</his:synchronizedWorkInfo></soap:Body></soap:Envelope>"
    )
    response = requests.post(
        f"{public_url}/ws/center", data=body.encode(), auth=(hospital_no, SECRET),
        headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert "&lt;ResultCode&gt;0&lt;/ResultCode&gt;" in response.text, response.text


@pytest.fixture
def onboard(vendor_his, make_hospital, public_url):
    """A running simulated hospital in `style`, onboarded from settings, with one session pushed."""

    def start(style: str, *, remaining: int = 5, version: str = "2.4", **extra):
        import datetime as dt

        hospital_no = HOSPITAL_NOS[style]
        his = vendor_his(style, hospital_no)
        work_date = (dt.date.today() + dt.timedelta(days=2)).isoformat()
        his.state.add_session(f"{hospital_no}-W1", work_date, remaining)
        make_hospital(
            hospital_no, name=f"{style}医院", endpoint_url=his.url,
            interface={**SETTINGS[style], "interface_version": version, **extra},
        )  # fmt: skip
        push_schedules(public_url, hospital_no, his, namespace=his.style.namespace)
        schedule = Schedule.objects.select_related("hospital").get(work_id=f"{hospital_no}-W1")
        return his, schedule

    return start


def wait_until(predicate, timeout: float = 10.0) -> None:
    """Wait for the simulator's own thread (it answers late on purpose); never used to let time pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the simulated hospital did not get there"
        time.sleep(0.05)


def received_names(his, operation: str) -> list[set[str]]:
    return [{child.tag for child in message} for message in his.state.messages(operation)]


def spec_request_names(operation: str, version: str) -> set[str]:
    """The request table of `operation`, less the elements newer than `version`."""
    iface = interface(HOSPITAL, operation)
    tables = [t for t in read_tables(spec_file()) if t.section == iface.section and t.side == HOSPITAL]
    newer = {f.name for f in iface.request.all_fields() if f.since and tuple(map(int, f.since.split("."))) > tuple(
        map(int, version.split(".")))}  # fmt: skip
    return {row.name for row in tables[0].rows} - newer


class VendorStyleJourneyTests:
    @pytest.mark.parametrize("style", ["cxf", "asmx", "gbk"])
    def test_book_pay_query_and_cancel_through_each_vendor_style(self, style, onboard, api):
        his, schedule = onboard(style)
        session = his.state.sessions[schedule.work_id]
        assert str(schedule.price) == "12.50" and session.price == "12.5000"  # pushed with four decimals
        body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id, "patient": patient(1)}
        locked = api.post("/api/v1/orders/", body)
        assert locked.status_code == 201, locked.text
        order = locked.json()
        assert order["status"] == "1" and order["fee"] == "12.50"  # the hospital said 12.5000 (item 3)
        assert session.remaining == 4
        paid = api.pay(order)
        assert paid.status_code == 200 and paid.json()["status"] == "2", paid.text
        assert his.state.orders[order["workflow_id"]].status == "2"
        detail = api.get(f"/api/v1/orders/{order['order_no']}")
        assert detail.status_code == 200 and detail.json()["status"] == "2"
        cancelled = api.post(f"/api/v1/orders/{order['order_no']}/cancel", {"reason": "行程有变"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "3"
        assert his.state.orders[order["workflow_id"]].status == "3" and session.remaining == 5
        assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
        for operation in ("confirmRegistration", "PaymentNotice", "getPromiseNotice", "GetOrderDetailInfo"):
            names = received_names(his, operation)
            assert names and all(n == spec_request_names(operation, "2.4") for n in names), operation

    def test_a_v20_hospital_receives_only_the_v20_elements_and_never_the_health_card(self, onboard, api):
        his, schedule = onboard("cxf", version="2.0")
        body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                "patient": patient(1, card_no="9999000011112222", card_type="02")}  # fmt: skip
        refused = api.post("/api/v1/orders/", body)
        assert refused.status_code == 400, refused.text
        assert "CardType" in refused.text and "V2.3" in refused.text
        assert not his.state.received.get("confirmRegistration")  # nothing was sent
        body["patient"] = patient(1)
        order = api.post("/api/v1/orders/", body).json()
        assert api.pay(order).json()["status"] == "2"
        for operation in ("confirmRegistration", "PaymentNotice"):
            names = received_names(his, operation)
            assert names == [spec_request_names(operation, "2.0")], operation
            assert not {"channel", "payTradeNo", "payChannel"} & names[0]

    def test_card_lists_with_java_timestamps_are_read(self, onboard, api):
        his, schedule = onboard("gbk")
        cards = api.post("/api/v1/cards/", {"hospital_no": schedule.hospital.hospital_no, "id_card": patient(1)["id_card"],
                                            "name": "测试患者1"})  # fmt: skip
        assert cards.status_code == 200, cards.text
        assert cards.json()["cards"][0]["created_at"].endswith(".0")  # item 4

    def test_a_gbk_hospital_gets_free_text_that_fits_its_byte_lengths(self, onboard, api):
        his, schedule = onboard("gbk")
        order = api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                                             "patient": patient(1)}).json()  # fmt: skip
        api.pay(order)
        reason = "患者因行程改变需要取消本次预约" * 20  # 300 characters: 600 bytes in GBK
        assert api.post(f"/api/v1/orders/{order['order_no']}/cancel", {"reason": reason}).status_code == 200
        desc = his.state.messages("getPromiseNotice")[0].findtext("desc")
        assert desc.endswith("…") and len(desc.encode("gbk")) <= 300


class VendorStyleConformanceTests:
    @pytest.mark.parametrize("style", ["cxf", "asmx", "gbk"])
    def test_check_hospital_passes_every_check_against_each_style(self, style, onboard):
        his, schedule = onboard(style)
        out = io.StringIO()
        try:
            call_command(
                "check_hospital", schedule.hospital.hospital_no, "--work-id", schedule.work_id,
                "--work-date", schedule.work_date.isoformat(), stdout=out,
            )  # fmt: skip
        except CommandError as exc:
            raise AssertionError(out.getvalue()) from exc
        assert "接入检查通过。共35项：通过35，失败0，跳过0" in out.getvalue()
        # The simulator refuses a second 退号, which the specification allows (item 9).
        assert "医院拒绝重复退号" in out.getvalue()


class VendorPaymentTests:
    def test_a_payment_answer_without_serial_number_is_delivered_once(self, onboard, api):
        his, schedule = onboard("cxf")
        his.state.payment_answer_without_serial = True
        order = api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                                             "patient": patient(1)}).json()  # fmt: skip
        assert api.pay(order).json()["status"] == "2"
        message = OutboxMessage.objects.get(kind="PaymentNotice")
        assert message.status == "sent" and message.attempts == 1
        assert len(his.state.received["PaymentNotice"]) == 1

    def test_get_registration_info_sends_what_the_platform_knows_of_the_session(self, onboard, api):
        his, schedule = onboard("cxf")
        assert api.get(f"/api/v1/schedules/{schedule.pk}/").json()["live"] is True
        sent = his.state.messages("getRegistrationInfo")[-1]
        for name in ("WorkId", "WorkDate", "DoctorId", "DoctorName", "DepartmentId", "DepartmentName",
                     "WorkTimeCode", "WorkStartDate", "WorkStopDate"):  # fmt: skip
            assert sent.findtext(name), name
        assert Order.objects.count() == 0


class LostLockTests:
    """A lock whose answer was lost, at a hospital that does not replay a repeated TransactionId
    (item 2): the outcome stays unknown, visible to staff, until the count read back settles it."""

    def test_a_lost_lock_answer_is_never_settled_by_a_repeat_and_the_number_is_held(self, onboard, api, settings):
        from booking.services import outbox

        settings.HOSPITAL_CALL_TIMEOUT = 1
        his, schedule = onboard("cxf")
        his.state.lose_answers["confirmRegistration"] = [2.5]
        started = time.monotonic()
        response = api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no,
                                                "work_id": schedule.work_id, "patient": patient(1)})  # fmt: skip
        elapsed = time.monotonic() - started
        assert response.status_code == 503 and "结果未知" in response.json()["message"], response.text
        # Nothing more was asked of the hospital inside the request (no broker: tasks run in process).
        assert elapsed < 2 and len(his.state.received["confirmRegistration"]) == 1
        wait_until(lambda: his.state.sessions[schedule.work_id].remaining == 4)  # the hospital made the lock
        schedule.refresh_from_db()
        assert schedule.remaining == 4  # not offered again while unknown
        message = OutboxMessage.objects.get(kind="UnlockReg")
        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(minutes=5))
        message.refresh_from_db()
        assert message.status == OutboxMessage.UNKNOWN, message.last_error
        assert "剩余4" in message.last_error and "无需解除" not in message.last_error
        assert len(his.state.received["confirmRegistration"]) == 1  # never repeated
        assert his.state.received["getRegistrationInfo"]  # settled by reading the count back
        schedule.refresh_from_db()
        assert schedule.remaining == 4
        # Staff see it on their worklist; the hospital's desk releases the number; a re-check settles it.
        from booking import selectors

        assert message.pk in set(selectors.lost_locks().values_list("pk", flat=True))
        hospital_releases(his.state, schedule.work_id)
        assert outbox.lost_lock_recheck(message_ids=[message.pk]) == 1
        message.refresh_from_db()
        schedule.refresh_from_db()
        assert message.status == OutboxMessage.SENT and "已释放" in message.last_error
        assert schedule.remaining == 5 == his.state.sessions[schedule.work_id].remaining

    def test_a_lost_request_is_settled_by_the_count_and_the_number_given_back(self, onboard, api, settings):
        from booking.services import outbox

        settings.HOSPITAL_CALL_TIMEOUT = 1
        his, schedule = onboard("gbk")
        his.state.lose_requests["confirmRegistration"] = [1.5]
        response = api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no,
                                                "work_id": schedule.work_id, "patient": patient(1)})  # fmt: skip
        assert response.status_code == 503
        schedule.refresh_from_db()
        assert schedule.remaining == 4
        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(minutes=5))
        message = OutboxMessage.objects.get(kind="UnlockReg")
        schedule.refresh_from_db()
        assert message.status == OutboxMessage.SENT and schedule.remaining == 5
        assert his.state.sessions[schedule.work_id].remaining == 5 and not his.state.orders

    def test_the_worklist_shows_unknown_locks_and_its_action_settles_them(self, onboard, api, settings, admin_client):
        from django.urls import reverse

        from booking.services import outbox

        settings.HOSPITAL_CALL_TIMEOUT = 1
        his, schedule = onboard("asmx")
        his.state.lose_answers["confirmRegistration"] = [2.5]
        api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                                     "patient": patient(1)})  # fmt: skip
        wait_until(lambda: his.state.sessions[schedule.work_id].remaining == 4)
        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(minutes=5))
        message = OutboxMessage.objects.get(kind="UnlockReg")
        page = admin_client.get(reverse("admin:booking_lostlock_changelist"))
        assert page.status_code == 200 and "医院很可能仍占用该号" in page.content.decode()
        hospital_releases(his.state, schedule.work_id)
        response = admin_client.post(
            reverse("admin:booking_lostlock_changelist"),
            {"action": "recheck", "_selected_action": [str(message.pk)]},
            follow=True,
        )
        assert "其中1条医院未占用、号源已释放" in response.content.decode()
        schedule.refresh_from_db()
        assert schedule.remaining == 5 and OutboxMessage.objects.get().status == "sent"

    def test_a_lock_in_flight_on_the_session_does_not_make_a_held_lost_lock_look_free(self, onboard, api, settings):
        """The settlement compares counts: another patient's lock that the platform has counted and
        the hospital not yet must not be read as the lost lock's number being free."""
        from django.db.models import F

        from booking.services import outbox
        from tests.factories import OrderFactory

        settings.HOSPITAL_CALL_TIMEOUT = 1
        his, schedule = onboard("cxf")
        his.state.lose_answers["confirmRegistration"] = [2.5]
        api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                                     "patient": patient(1)})  # fmt: skip
        wait_until(lambda: his.state.sessions[schedule.work_id].remaining == 4)  # the hospital holds it
        # A second patient's lock, counted on the platform, not yet at the hospital (3 here, 4 there).
        in_flight = OrderFactory(hospital=schedule.hospital, schedule=schedule, status=Order.LOCKING, paid_at=None)
        Schedule.objects.filter(pk=schedule.pk).update(remaining=F("remaining") - 1)
        message = OutboxMessage.objects.get(kind="UnlockReg")
        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(minutes=5))
        message.refresh_from_db()
        schedule.refresh_from_db()
        assert message.status == OutboxMessage.PENDING and "正在锁号或解锁" in message.last_error
        assert schedule.remaining == 3  # nothing released: the hospital still holds the lost lock's number
        # The other lock fails cleanly and gives its number back; the next check settles by the count.
        Order.objects.filter(pk=in_flight.pk).update(status=Order.FAILED)
        Schedule.objects.filter(pk=schedule.pk).update(remaining=F("remaining") + 1)
        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(hours=2))
        message.refresh_from_db()
        schedule.refresh_from_db()
        assert message.status == OutboxMessage.UNKNOWN and "医院很可能仍占用该号" in message.last_error
        assert schedule.remaining == 4 == his.state.sessions[schedule.work_id].remaining

    def test_staff_may_settle_a_lost_lock_the_hospital_confirmed_released(self, onboard, api, settings, admin_user):
        from booking.services import outbox

        settings.HOSPITAL_CALL_TIMEOUT = 1
        his, schedule = onboard("cxf")
        his.state.lose_answers["confirmRegistration"] = [2.5]
        api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                                     "patient": patient(1)})  # fmt: skip
        wait_until(lambda: his.state.sessions[schedule.work_id].remaining == 4)
        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(minutes=5))
        message = OutboxMessage.objects.get(kind="UnlockReg")
        assert message.status == OutboxMessage.UNKNOWN
        hospital_releases(his.state, schedule.work_id)
        assert outbox.lost_lock_released(message_ids=[message.pk], user=admin_user, reason="医院电话确认已解除") == 1
        message.refresh_from_db()
        schedule.refresh_from_db()
        assert message.status == OutboxMessage.SENT and schedule.remaining == 5


class RefusedPaymentTests:
    def test_a_refused_payment_notice_reaches_the_channel_as_order_state_and_a_notification(self, onboard, api):
        from booking.models import PatientNotification

        his, schedule = onboard("asmx")
        order = api.post("/api/v1/orders/", {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id,
                                             "patient": patient(1)}).json()  # fmt: skip
        his.state.refuse_next["PaymentNotice"] = ["该订单已超过医院支付时限"]
        paid = api.pay(order)
        assert paid.status_code == 200
        detail = api.get(f"/api/v1/orders/{order['order_no']}").json()
        assert detail["mark"] == "refused" and "该订单已超过医院支付时限" in detail["mark_reason"]
        notice = PatientNotification.objects.get(order__order_no=order["order_no"], kind="refused")
        assert "医院未确认" in notice.message
