"""The sandbox HIS's own rules: locks, unlocks, payments, cancellations, the queue and the cards,
exercised over HTTP through the platform's client (and directly for what only staff do)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, connections

from regional import hospital_client
from regional.errors import Conflict
from regional.hospital_client import HospitalRefused
from sandbox import services
from sandbox.models import SandboxCard, SandboxOrder, SandboxPayment, SandboxSchedule, SandboxSlot
from tests.base import confirm_registration as lock
from tests.factories import PATIENT, session


@pytest.fixture(autouse=True)
def closed_circuits():
    cache.clear()
    yield
    cache.clear()


def remaining(schedule: SandboxSchedule) -> int:
    return SandboxSchedule.objects.values_list("remaining", flat=True).get(pk=schedule.pk)


def slot_statuses(schedule: SandboxSchedule) -> list[str]:
    return list(schedule.slots.order_by("cur_num").values_list("status", flat=True))


@pytest.mark.django_db(transaction=True)
class LockTests:
    def test_concurrent_locks_on_the_last_numbers_give_exactly_the_remaining_count(self, hospital, his, postgres):
        assert connection.vendor == "postgresql"
        schedule = session(his, slots=5)
        lock(hospital, schedule)
        lock(hospital, schedule)  # three numbers left for twelve callers
        barrier = threading.Barrier(12)
        won, refused, other = [], [], []

        def attempt(n: int) -> None:
            try:
                barrier.wait(timeout=10)
                won.append(lock(hospital, schedule, TelephoneNo=f"134000000{n:02d}")["SerialNumber"])
            except HospitalRefused as exc:
                refused.append(exc.error_msg)
            except Exception as exc:  # noqa: BLE001
                other.append(repr(exc))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert other == []
        assert sorted(won) == [3, 4, 5]
        assert len(refused) == 9 and all("号源已满" in reason for reason in refused)
        assert remaining(schedule) == 0
        assert SandboxOrder.objects.filter(schedule=schedule).count() == 5
        assert slot_statuses(schedule) == ["4"] * 5

    def test_a_time_slot_can_be_locked_only_once(self, hospital, his):
        schedule = session(his, slots=3)
        source = schedule.slots.get(cur_num=2).num_source_id
        assert lock(hospital, schedule, numSourceId=source)["SerialNumber"] == 2
        with pytest.raises(HospitalRefused) as caught:
            lock(hospital, schedule, numSourceId=source)
        assert caught.value.error_msg == f"numSourceId 号源{source}已锁号，不能预约"
        assert remaining(schedule) == 2  # the refused attempt gave its count back

    def test_a_slot_of_another_session_is_refused(self, hospital, his):
        schedule = session(his)
        with pytest.raises(HospitalRefused, match="numSourceId 号源X-001不属于排班"):
            lock(hospital, schedule, numSourceId="X-001")

    def test_a_repeated_lock_with_the_same_transaction_id_returns_the_same_order(self, hospital, his):
        schedule = session(his)
        first = lock(hospital, schedule, TransactionId="TX-REPEAT-1")
        again = lock(hospital, schedule, TransactionId="TX-REPEAT-1")
        assert again["WorkFlowId"] == first["WorkFlowId"] and again["SerialNumber"] == first["SerialNumber"]
        assert remaining(schedule) == 4

    def test_a_session_without_time_slots_numbers_its_orders_in_turn(self, hospital, his):
        schedule = session(his, slots=3, timeshare=False)
        serials = [lock(hospital, schedule)["SerialNumber"] for _ in range(3)]
        assert serials == [1, 2, 3]
        assert (
            hospital_client.call(hospital, "GetDaypartingDetailInfo", {"WorkId": schedule.work_id})["NumberList"] == []
        )

    def test_a_stopped_session_cannot_be_booked(self, hospital, his):
        schedule = services.schedule_stop(schedule=session(his), reason="医生外出会诊")
        with pytest.raises(HospitalRefused, match="已停诊，不能挂号"):
            lock(hospital, schedule)
        assert set(slot_statuses(schedule)) == {SandboxSlot.INVALID}

    def test_a_session_in_the_past_cannot_be_booked(self, hospital, his):
        with pytest.raises(HospitalRefused, match="已过"):
            lock(hospital, session(his, days_ahead=-1))

    def test_registration_info_checks_the_date_of_the_session(self, hospital, his):
        schedule = session(his)
        with pytest.raises(HospitalRefused, match="WorkDate 2020-01-01与排班"):
            hospital_client.call(
                hospital, "getRegistrationInfo", {"WorkId": schedule.work_id, "WorkDate": "2020-01-01"}
            )


@pytest.mark.django_db(transaction=True)
class UnlockPayCancelTests:
    def test_unlocking_an_unpaid_lock_frees_its_slot_and_a_repeat_is_answered_the_same(self, hospital, his):
        schedule = session(his, slots=2)
        order = lock(hospital, schedule)
        for _ in range(2):
            answer = hospital_client.call(
                hospital, "UnlockReg", {"WorkFlowId": order["WorkFlowId"], "SerialNumber": order["SerialNumber"]}
            )
            assert answer["WorkFlowId"] == order["WorkFlowId"]
        assert remaining(schedule) == 2 and slot_statuses(schedule) == ["1", "1"]
        assert SandboxOrder.objects.get().status == SandboxOrder.CANCELLED
        assert SandboxOrder.objects.get().cancellations.get().kind == "unlock"

    def test_unlocking_with_the_wrong_serial_number_is_refused(self, hospital, his):
        order = lock(hospital, session(his))
        with pytest.raises(HospitalRefused, match="SerialNumber 9与挂号单"):
            hospital_client.call(hospital, "UnlockReg", {"WorkFlowId": order["WorkFlowId"], "SerialNumber": "9"})

    def test_a_paid_order_cannot_be_unlocked(self, hospital, his):
        order = lock(hospital, session(his))
        hospital_client.call(
            hospital, "PaymentNotice", {"WorkFlowId": order["WorkFlowId"], "PayType": "4", "PayAmount": "12.50"}
        )
        with pytest.raises(HospitalRefused, match="已支付，不能解除锁定"):
            hospital_client.call(hospital, "UnlockReg", {"WorkFlowId": order["WorkFlowId"]})

    def test_payment_marks_the_order_paid_once_and_a_repeat_is_answered_the_same(self, hospital, his):
        schedule = session(his)
        order = lock(hospital, schedule)
        notice = {"WorkFlowId": order["WorkFlowId"], "PayType": "4", "PayAmount": "12.50", "payTradeNo": "PAY-1"}
        first = hospital_client.call(hospital, "PaymentNotice", notice)
        again = hospital_client.call(hospital, "PaymentNotice", notice)
        assert first["SerialNumber"] == again["SerialNumber"] == 1
        assert SandboxOrder.objects.get().status == SandboxOrder.PAID
        assert SandboxPayment.objects.count() == 1
        assert slot_statuses(schedule)[0] == SandboxSlot.TAKEN
        with pytest.raises(HospitalRefused, match="payTradeNo 挂号单.*已由另一笔支付（PAY-1）支付"):
            hospital_client.call(hospital, "PaymentNotice", {**notice, "payTradeNo": "PAY-2"})

    def test_a_payment_of_the_wrong_amount_is_refused(self, hospital, his):
        order = lock(hospital, session(his))
        with pytest.raises(HospitalRefused, match="PayAmount 支付金额10.00与挂号费12.50不一致"):
            hospital_client.call(
                hospital, "PaymentNotice", {"WorkFlowId": order["WorkFlowId"], "PayType": "4", "PayAmount": "10"}
            )

    def test_an_onsite_payment_keeps_the_number_for_the_counter(self, hospital, his):
        order = lock(hospital, session(his))
        hospital_client.call(
            hospital, "PaymentNotice", {"WorkFlowId": order["WorkFlowId"], "PayType": "3", "PayAmount": "12.50"}
        )
        stored = SandboxOrder.objects.get()
        assert stored.status == SandboxOrder.BOOKED and stored.onsite_payment
        assert stored.payments.get().amount == Decimal("12.50")

    def test_cancelling_frees_the_slot_and_a_repeat_is_answered_the_same(self, hospital, his):
        schedule = session(his, slots=1)
        order = lock(hospital, schedule)
        hospital_client.call(
            hospital, "PaymentNotice", {"WorkFlowId": order["WorkFlowId"], "PayType": "4", "PayAmount": "12.50"}
        )
        for _ in range(2):
            hospital_client.call(
                hospital,
                "getPromiseNotice",
                {"WorkFlowId": order["WorkFlowId"], "workDate": "2026-01-02 03:04:05", "desc": "患者取消"},
            )
        assert remaining(schedule) == 1 and slot_statuses(schedule) == ["1"]
        cancellation = SandboxOrder.objects.get().cancellations.get()
        assert cancellation.kind == "platform" and cancellation.reason == "患者取消"
        detail = hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": order["WorkFlowId"]})
        assert detail["WorkFlowStatus"] == "3"
        assert lock(hospital, schedule)["SerialNumber"] == 1  # the freed number is bookable again

    def test_a_visited_order_cannot_be_cancelled(self, hospital, his):
        schedule = session(his)
        order = lock(hospital, schedule)
        services.queue_call_next(schedule=schedule)
        with pytest.raises(HospitalRefused, match="已履约，不能退号"):
            hospital_client.call(hospital, "getPromiseNotice", {"WorkFlowId": order["WorkFlowId"]})


@pytest.mark.django_db(transaction=True)
class QueueTests:
    def test_the_queue_advances_when_the_next_patient_is_called(self, hospital, his):
        schedule = session(his, slots=4)
        orders = [lock(hospital, schedule) for _ in range(3)]
        services.order_check_in(order=SandboxOrder.objects.get(work_flow_id=orders[1]["WorkFlowId"]))

        def lineup() -> dict:
            return hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": schedule.work_id})["WaitList"][0]

        before = lineup()
        assert (before["NowSeq"], before["WaitPers"], before["RegNum"], before["HasRegNum"]) == ("0", 3, 0, 3)
        assert (before["NotReportNum"], before["ReportWaitNum"], before["RegRemainNum"]) == (2, 1, 1)
        called = services.queue_call_next(schedule=schedule)
        assert called.serial_number == 1 and called.status == SandboxOrder.VISITED
        after = lineup()
        assert (after["NowSeq"], after["WaitPers"], after["RegNum"]) == ("1", 2, 1)
        services.queue_call_next(schedule=schedule)
        services.queue_call_next(schedule=schedule)
        assert services.queue_call_next(schedule=schedule) is None
        assert lineup()["NowSeq"] == "3"

    def test_a_no_show_can_be_marked_only_while_the_order_is_active(self, hospital, his):
        order = SandboxOrder.objects.get(work_flow_id=lock(hospital, session(his))["WorkFlowId"])
        services.order_mark_no_show(order=order)
        assert order.status == SandboxOrder.NO_SHOW
        with pytest.raises(Conflict, match="已爽约，不能标记爽约"):
            services.order_mark_no_show(order=order)


@pytest.mark.django_db(transaction=True)
class CardTests:
    def test_query_card_list_registers_a_new_patient_once(self, hospital, his):
        query = {"UserCardNo": PATIENT["IDCode"], "UserName": "测试患者一", "UserTel": "13400000001", "CardType": "01"}
        first = hospital_client.call(hospital, "queryCardListInfo", query)["cardList"]
        again = hospital_client.call(hospital, "queryCardListInfo", query)["cardList"]
        assert len(first) == 1 and [c["CardNo"] for c in again] == [first[0]["CardNo"]]
        assert first[0]["CardNo"] == "JZK0000000001" and first[0]["Name"] == "测试患者一"
        assert SandboxCard.objects.count() == 1

    def test_an_unregistered_patient_without_a_name_is_refused(self, hospital, his):
        with pytest.raises(HospitalRefused, match="UserName 患者未在本院建档"):
            hospital_client.call(hospital, "queryCardListInfo", {"UserCardNo": PATIENT["IDCode"], "CardType": "01"})

    def test_a_health_card_is_registered_under_its_own_number(self, hospital, his):
        cards = hospital_client.call(
            hospital,
            "queryCardListInfo",
            {"UserCardNo": PATIENT["IDCode"], "UserName": "测试患者一", "CardType": "02", "HealthCardNum": "HC0001"},
        )["cardList"]
        assert cards[0]["CardNo"] == "HC0001" and SandboxCard.objects.get().card_type == "02"

    def test_card_check_validates_the_card_its_owner_and_name(self, hospital, his):
        services.card_list_or_register(hospital=his, id_code=PATIENT["IDCode"], name="测试患者一", card_type="01")

        def check(**override) -> dict:
            data = {"MediCardId": "JZK0000000001", "MediCardType": "01", "UserCardNo": PATIENT["IDCode"],
                    "UserName": "测试患者一", **override}  # fmt: skip
            return hospital_client.call(hospital, "CheckMediCardIdService", data)

        assert check()["IsValid"] is True
        assert check(UserName="测试患者二")["IsValid"] is False
        assert check(UserCardNo="3306XXXXXXXXXX0002")["ErrorMsg"] == "UserCardNo 身份证号与诊疗卡登记的不一致"
        assert check(MediCardId="JZK9")["IsValid"] is False

    def test_a_lock_with_somebody_elses_card_is_refused(self, hospital, his):
        services.card_list_or_register(hospital=his, id_code="3306XXXXXXXXXX0002", name="测试患者二", card_type="01")
        with pytest.raises(HospitalRefused, match="PatientNo 诊疗卡JZ\\*+0001与身份证号不符"):
            lock(hospital, session(his), PatientNo="JZK0000000001", CardType="01")

    def test_personal_data_is_encrypted_at_rest(self, hospital, his):
        lock(hospital, session(his))
        services.card_list_or_register(hospital=his, id_code=PATIENT["IDCode"], name="测试患者一", card_type="01")
        with connection.cursor() as cursor:
            cursor.execute("SELECT id_code, name, telephone, address FROM sandbox_sandboxorder")
            order_row = cursor.fetchone()
            cursor.execute("SELECT id_code, name FROM sandbox_sandboxcard")
            card_row = cursor.fetchone()
        stored = " ".join([*order_row, *card_row])
        for value in (PATIENT["IDCode"], PATIENT["Name"], PATIENT["TelephoneNo"], PATIENT["Address"]):
            assert value not in stored
        assert SandboxOrder.objects.get().id_code == PATIENT["IDCode"]
