"""The hospital-side client against the sandbox hospital over real HTTP: every operation, the
outcomes, the transport settings, the faults and the circuit breaker. Faults come from the
sandbox's own settings; nothing here is mocked away."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
import zeep
from django.core.cache import cache
from django.db import connection, transaction
from lxml import etree

from regional import hospital_client, hospital_wsdl
from regional.circuit import CLOSED, OPEN
from regional.hospital_client import CalledInTransaction, HospitalBadAnswer, HospitalRefused, HospitalUnavailable
from regional.messages import MessageInvalid
from regional.models import MessageLog
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxOrder, SandboxPayment
from tests.base import confirm_registration as lock
from tests.base import shared_state_clear
from tests.factories import PATIENT, session
from tests.services import free_port


@pytest.fixture(autouse=True)
def fresh_client_state():
    shared_state_clear()  # circuit breaker state, cached SOAP clients
    yield
    cache.clear()


@pytest.fixture
def hospital(sandbox_hospital):
    """Here `hospital` is the platform's record of the sandbox hospital S001 (`sandbox_his`)."""
    return sandbox_hospital


@pytest.mark.django_db(transaction=True)
class CallTests:
    def test_it_runs_on_postgresql(self, postgres):
        assert connection.vendor == "postgresql"

    def test_a_lock_returns_the_hospitals_work_flow_id_serial_and_fee(self, hospital, sandbox_his):
        schedule = session(sandbox_his, slots=4, price="12.50")
        answer = lock(hospital, schedule, channel="JKMZWX")
        order = SandboxOrder.objects.get(work_flow_id=answer["WorkFlowId"])
        assert answer["ResultCode"] == 0
        assert answer["SerialNumber"] == 1 and answer["Fee"] == Decimal("12.50")
        assert answer["WorkId"] == schedule.work_id and answer["Worktime"] == "08:00-08:30"
        assert order.channel == "JKMZWX" and order.transaction_id  # generated, since none was given

    def test_the_transaction_id_is_generated_when_missing_and_hospital_no_is_the_hospitals(self, hospital, sandbox_his):
        schedule = session(sandbox_his)
        answer = hospital_client.call(
            hospital,
            "getRegistrationInfo",
            {"WorkId": schedule.work_id, "WorkDate": schedule.work_date, "HospitalNo": "SOMEONE-ELSE"},
        )
        record = answer["WorkInfo"][0]
        assert record["HospitalNo"] == "S001" and len(record["TransactionId"]) == 32
        assert record["RegistrationNumber"] == 5 and record["Price"] == Decimal("12.50")

    def test_an_invalid_message_is_refused_before_any_network_io(self, make_hospital):
        hospital = make_hospital("S009", endpoint_url=f"http://127.0.0.1:{free_port()}/nowhere")
        with pytest.raises(MessageInvalid) as caught:
            hospital_client.call(hospital, "confirmRegistration", {"WorkId": "W1", "Name": "测试患者一"})
        assert "TelephoneNo 为必填项" in str(caught.value) and "IDCode 为必填项" in str(caught.value)
        assert not MessageLog.objects.exists()

    def test_an_unknown_operation_name_is_a_programming_error(self, hospital):
        with pytest.raises(ValueError, match="不是医院端接口"):
            hospital_client.call(hospital, "HospitalInfo", {})

    def test_elements_newer_than_the_hospitals_interface_version_are_not_sent(self, hospital, sandbox_his):
        hospital.interface_version = "2.0"
        hospital.save()
        schedule = session(sandbox_his)
        order = lock(hospital, schedule, channel="JKMYAPP")
        hospital_client.call(
            hospital,
            "PaymentNotice",
            {
                "WorkFlowId": order["WorkFlowId"],
                "PayType": "4",
                "PayAmount": order["Fee"],
                "payTradeNo": "T0001",
                "payChannel": "wepay",
                "channel": "JKMYAPP",
            },
        )
        payment = SandboxPayment.objects.get()
        assert payment.pay_trade_no == "" and payment.pay_channel == "" and payment.channel == ""
        assert SandboxOrder.objects.get().channel == ""
        sent = MessageLog.objects.get(interface="PaymentNotice").request_text
        assert "payTradeNo" not in sent and "<channel" not in sent

    def test_a_v24_hospital_receives_the_payment_trade_number_and_channel(self, hospital, sandbox_his):
        order = lock(hospital, session(sandbox_his))
        hospital_client.call(
            hospital,
            "PaymentNotice",
            {"WorkFlowId": order["WorkFlowId"], "PayType": "4", "PayAmount": "12.50", "payTradeNo": "T0002",
             "payChannel": "alipay", "channel": "JKMZWX"},
        )  # fmt: skip
        payment = SandboxPayment.objects.get()
        assert (payment.pay_trade_no, payment.pay_channel, payment.channel) == ("T0002", "alipay", "JKMZWX")

    def test_every_operation_works_through_the_client(self, hospital, sandbox_his):
        schedule = session(sandbox_his, slots=3)
        cards = hospital_client.call(
            hospital, "queryCardListInfo", {"UserCardNo": PATIENT["IDCode"], "UserName": "测试患者一", "CardType": "01"}
        )["cardList"]
        card_no = cards[0]["CardNo"]
        check = hospital_client.call(
            hospital,
            "CheckMediCardIdService",
            {"MediCardId": card_no, "MediCardType": "01", "UserCardNo": PATIENT["IDCode"], "UserName": "测试患者一"},
        )
        assert check["IsValid"] is True
        slots = hospital_client.call(hospital, "GetDaypartingDetailInfo", {"WorkId": schedule.work_id})["NumberList"]
        assert [s["Status"] for s in slots] == ["1", "1", "1"]
        first = lock(hospital, schedule, numSourceId=slots[2]["numSourceId"], PatientNo=card_no, CardType="01")
        assert first["SerialNumber"] == 3
        detail = hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": first["WorkFlowId"]})
        assert detail["WorkFlowStatus"] == "1" and detail["PatientNo"] == card_no
        paid = hospital_client.call(
            hospital, "PaymentNotice", {"WorkFlowId": first["WorkFlowId"], "PayType": "4", "PayAmount": "12.50"}
        )
        assert paid["SerialNumber"] == 3 and paid["Worktime"] == "09:20-10:00"
        second = lock(hospital, schedule)
        hospital_client.call(hospital, "UnlockReg", {"WorkFlowId": second["WorkFlowId"]})
        lineup = hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": schedule.work_id})["WaitList"][0]
        assert (lineup["RegRemainNum"], lineup["WaitPers"], lineup["NowSeq"]) == (2, 1, "0")
        hospital_client.call(
            hospital,
            "getPromiseNotice",
            {"WorkFlowId": first["WorkFlowId"], "workDate": dt.datetime(2026, 1, 2, 3, 4, 5), "desc": "患者取消"},
        )
        remaining = hospital_client.call(
            hospital, "getRegistrationInfo", {"WorkId": schedule.work_id, "WorkDate": schedule.work_date}
        )["WorkInfo"][0]["RegistrationNumber"]
        assert remaining == 3
        assert MessageLog.objects.filter(direction=MessageLog.OUTBOUND, ok=True).count() == 11

    def test_a_refusal_carries_the_hospitals_error_message(self, hospital, sandbox_his):
        with pytest.raises(HospitalRefused) as caught:
            hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": "NO-SUCH-ORDER"})
        assert caught.value.error_msg == "WorkFlowId 挂号单NO-SUCH-ORDER不存在"
        assert caught.value.result_code == 1 and not caught.value.temporary
        assert "医院拒绝了GetOrderDetailInfo请求" in caught.value.message
        log = MessageLog.objects.get()
        assert not log.ok and log.result_code == "1" and log.direction == MessageLog.OUTBOUND

    def test_locking_a_full_session_is_refused_with_a_clear_reason(self, hospital, sandbox_his):
        schedule = session(sandbox_his, slots=1)
        lock(hospital, schedule)
        with pytest.raises(HospitalRefused) as caught:
            lock(hospital, schedule)
        assert caught.value.error_msg == f"WorkId 排班{schedule.work_id}号源已满，没有可预约的号源"

    def test_every_call_is_logged_outbound_with_personal_data_masked(self, hospital, sandbox_his):
        answer = lock(hospital, session(sandbox_his))
        hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": answer["WorkFlowId"]})
        logs = MessageLog.objects.filter(direction=MessageLog.OUTBOUND).order_by("created_at")
        assert [log.interface for log in logs] == ["confirmRegistration", "GetOrderDetailInfo"]
        for log in logs:
            text = log.request_text + log.response_text
            assert "3306XXXXXXXXXX0001" not in text and "13400000001" not in text and "测试患者一" not in text
            assert log.hospital_id == hospital.pk and log.remote_addr == hospital.endpoint_url
        assert "3306**********0001" in logs[0].request_text
        assert "134****0001" in logs[1].response_text


@pytest.mark.django_db(transaction=True)
class TransportTests:
    def test_a_gbk_hospital_with_its_own_part_name_gets_its_envelopes_and_the_text_survives(
        self, hospital, sandbox_his
    ):
        hospital.soap_encoding = "GBK"
        hospital.soap_part_name = "xmlStr"
        hospital.save()
        schedule = session(sandbox_his)
        answer = lock(hospital, schedule, Address="演示市测试路𠀀号")  # a GB18030-only character, sent as a reference
        detail = hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": answer["WorkFlowId"]})
        assert detail["Name"] == "测试患者一" and detail["Address"] == "演示市测试路𠀀号"

    def test_a_hospital_with_a_wsdl_is_called_through_its_wsdl(self, hospital):
        hospital.wsdl_url = hospital.endpoint_url + "?wsdl"
        hospital.endpoint_url = ""
        hospital.save()
        with pytest.raises(HospitalRefused, match="WorkFlowId 挂号单W-1不存在"):
            hospital_client.call(hospital, "UnlockReg", {"WorkFlowId": "W-1"})

    def test_a_wrong_namespace_is_reported_as_an_unusable_answer(self, hospital):
        hospital.soap_namespace = "http://tempuri.org/"
        hospital.save()
        with pytest.raises(HospitalBadAnswer, match="请检查命名空间、参数名和SOAP版本配置") as caught:
            hospital_client.call(hospital, "UnlockReg", {"WorkFlowId": "W-1"})
        assert not caught.value.temporary

    def test_the_generated_wsdl_speaks_soap_12_when_the_hospital_does(self):
        import io

        wsdl = hospital_wsdl.generated_wsdl(namespace="http://his.example/ws", part_name="arg0", soap_version="1.2")
        client = zeep.Client(io.BytesIO(wsdl.encode()))
        envelope = client.create_message(client.service, "UnlockReg", "<Request/>")
        assert etree.QName(envelope).namespace == "http://www.w3.org/2003/05/soap-envelope"
        body = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")
        assert body[0].tag == "{http://his.example/ws}UnlockReg" and body[0][0].tag == "{http://his.example/ws}arg0"

    def test_one_zeep_client_serves_every_call_to_a_hospital(self, hospital):
        for _ in range(3):
            with pytest.raises(HospitalRefused):
                hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": "W-1"})
        assert len(hospital_wsdl._clients) == 1

    def test_a_hospital_without_an_address_is_unavailable(self, make_hospital):
        with pytest.raises(HospitalUnavailable, match="未配置医院端接口地址"):
            hospital_client.call(make_hospital("S010"), "GetOrderDetailInfo", {"WorkFlowId": "W-1"})


def set_fault(sandbox_his: SandboxHospital, **kwargs) -> None:
    sandbox.hospital_fault_set(hospital=sandbox_his, **kwargs)


@pytest.mark.django_db(transaction=True)
class FaultTests:
    def test_a_timeout_fails_fast_as_unavailable(self, hospital, sandbox_his):
        set_fault(
            sandbox_his, mode=SandboxHospital.FAULT_TIMEOUT, timeout_seconds=4, operations=["GetLineupDetailInfo"]
        )
        started = time.monotonic()
        with pytest.raises(HospitalUnavailable, match="超时（0.5秒）") as caught:
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"}, timeout=0.5)
        assert time.monotonic() - started < 2.5
        assert caught.value.temporary
        log = MessageLog.objects.get()
        assert not log.ok and "超时" in log.error and log.response_text == ""

    def test_the_default_timeout_comes_from_settings(self, hospital, sandbox_his, settings):
        settings.HOSPITAL_CALL_TIMEOUT = 0.5
        set_fault(
            sandbox_his, mode=SandboxHospital.FAULT_TIMEOUT, timeout_seconds=4, operations=["GetLineupDetailInfo"]
        )
        with pytest.raises(HospitalUnavailable, match="超时"):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})

    def test_an_error_answer_is_a_refusal(self, hospital, sandbox_his):
        set_fault(sandbox_his, mode=SandboxHospital.FAULT_ERROR, error_message="HIS维护中")
        with pytest.raises(HospitalRefused) as caught:
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        assert caught.value.error_msg == "HIS维护中"

    def test_a_malformed_answer_is_a_bad_answer(self, hospital, sandbox_his):
        set_fault(sandbox_his, mode=SandboxHospital.FAULT_MALFORMED)
        with pytest.raises(HospitalBadAnswer, match="医院应答不是格式正确的XML"):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        assert "沙箱医院模拟的异常应答" in MessageLog.objects.get().response_text

    def test_http_500_is_unavailable(self, hospital, sandbox_his):
        set_fault(sandbox_his, mode=SandboxHospital.FAULT_HTTP500)
        with pytest.raises(HospitalUnavailable, match="返回HTTP 500"):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})

    def test_a_dead_hospital_is_unavailable(self, make_hospital):
        hospital = make_hospital("S011", endpoint_url=f"http://127.0.0.1:{free_port()}/ws")
        with pytest.raises(HospitalUnavailable, match="无法连接医院接口"):
            hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": "W-1"})

    def test_a_fault_limited_to_one_operation_leaves_the_others_alone(self, hospital, sandbox_his):
        # A latency far above any scheduling noise, so the comparison below cannot flake on a busy machine.
        set_fault(sandbox_his, mode=SandboxHospital.FAULT_HTTP500, latency_ms=3000, operations=["PaymentNotice"])
        started = time.monotonic()
        with pytest.raises(HospitalRefused):
            hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": "W-1"})
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        with pytest.raises(HospitalUnavailable):
            hospital_client.call(hospital, "PaymentNotice", {"WorkFlowId": "W-1", "PayType": "4", "PayAmount": "1"})
        assert time.monotonic() - started >= 3.0

    def test_the_circuit_opens_after_n_failures_fails_fast_and_recovers(self, hospital, sandbox_his, settings):
        settings.HOSPITAL_CIRCUIT_FAILURES = 3
        settings.HOSPITAL_CIRCUIT_RESET_SECONDS = 1
        set_fault(sandbox_his, mode=SandboxHospital.FAULT_HTTP500, latency_ms=2500)
        breaker = hospital_client.circuit_for(hospital)
        for _ in range(3):
            with pytest.raises(HospitalUnavailable, match="HTTP 500"):
                hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        assert breaker.state() == OPEN
        started = time.monotonic()
        with pytest.raises(HospitalUnavailable, match="熔断中"):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        assert time.monotonic() - started < 1.5  # never reached the hospital, which takes 2.5 s
        time.sleep(1.1)  # half-open: one trial; it fails, so the circuit opens again at once
        with pytest.raises(HospitalUnavailable, match="HTTP 500"):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        assert breaker.state() == OPEN
        set_fault(sandbox_his)
        time.sleep(1.1)
        schedule = session(sandbox_his)
        answer = hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": schedule.work_id})
        assert answer["WaitList"][0]["RegRemainNum"] == 5
        assert breaker.state() == CLOSED and breaker.failure_count() == 0
        assert MessageLog.objects.filter(error__contains="熔断中").count() == 1

    def test_refusals_do_not_open_the_circuit(self, hospital, settings):
        settings.HOSPITAL_CIRCUIT_FAILURES = 2
        for _ in range(4):
            with pytest.raises(HospitalRefused):
                hospital_client.call(hospital, "GetOrderDetailInfo", {"WorkFlowId": "W-1"})
        assert hospital_client.circuit_for(hospital).state() == CLOSED

    def test_the_circuit_state_lives_in_the_shared_cache(self, hospital, sandbox_his, settings, redis_url):
        import redis

        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
        settings.HOSPITAL_CIRCUIT_FAILURES = 1
        set_fault(sandbox_his, mode=SandboxHospital.FAULT_HTTP500)
        with pytest.raises(HospitalUnavailable):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        keys = redis.Redis.from_url(redis_url).keys("*circuit:hospital:S001:open_until*")
        assert keys
        hospital_client.circuit_for(hospital).reset()


@pytest.mark.django_db(transaction=True)
class ChokepointTests:
    def test_it_refuses_to_call_a_hospital_inside_a_database_transaction(self, hospital, his):
        with transaction.atomic(), pytest.raises(CalledInTransaction, match="不能在数据库事务中"):
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        with transaction.atomic(), pytest.raises(CalledInTransaction):
            hospital_client.send_raw(hospital, "GetLineupDetailInfo", "<Request/>")
        assert not MessageLog.objects.exists()  # nothing was sent

    def test_a_call_that_never_left_says_it_cannot_have_arrived(self, make_hospital):
        dead = make_hospital("S011", endpoint_url=f"http://127.0.0.1:{free_port()}/ws")
        with pytest.raises(HospitalUnavailable) as refused:
            hospital_client.call(dead, "GetOrderDetailInfo", {"WorkFlowId": "W-1"})
        with pytest.raises(HospitalUnavailable) as unconfigured:
            hospital_client.call(make_hospital("S010"), "GetOrderDetailInfo", {"WorkFlowId": "W-1"})
        assert not refused.value.may_have_arrived and not unconfigured.value.may_have_arrived

    def test_a_call_without_an_answer_may_have_arrived(self, hospital, his):
        set_fault(his, mode=SandboxHospital.FAULT_HTTP500)
        with pytest.raises(HospitalUnavailable) as failed:
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"})
        set_fault(his, mode=SandboxHospital.FAULT_TIMEOUT, timeout_seconds=4, operations=["GetLineupDetailInfo"])
        with pytest.raises(HospitalUnavailable) as timed_out:
            hospital_client.call(hospital, "GetLineupDetailInfo", {"WorkId": "W-1"}, timeout=0.5)
        assert failed.value.may_have_arrived and timed_out.value.may_have_arrived
