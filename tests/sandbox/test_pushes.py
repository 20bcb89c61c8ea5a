"""The sandbox hospital pushes to the center over its real SOAP interface (/ws/center), with its
own credentials, like any hospital. Master data (5.1–5.3) must land; for the schedule notices the
message must be sent and the center's answer surfaced, whatever the center answers."""

from __future__ import annotations

import pytest

from regional.errors import DomainError
from regional.models import Department, Doctor, Hospital, MessageLog
from sandbox import services
from sandbox.center import CenterUnreachable
from sandbox.models import SandboxOrder, SandboxSchedule
from tests.base import demo_his


@pytest.fixture
def his(db, public_url):
    return demo_his(public_url, platform_name="沙箱医院（平台登记名）", name="测试沙箱医院", level=2, days=2)


def inbound(interface: str) -> MessageLog:
    return MessageLog.objects.filter(direction=MessageLog.INBOUND, interface=interface).latest("created_at")


@pytest.mark.django_db(transaction=True)
class MasterDataPushTests:
    def test_the_hospital_its_departments_and_doctors_land_at_the_center(self, his):
        for push in (services.center_push_hospital, services.center_push_departments, services.center_push_doctors):
            answer = push(hospital=his)
            assert answer.ok, answer.summary()
        hospital = Hospital.objects.get(hospital_no="S001")
        assert hospital.name == "测试沙箱医院" and hospital.degree_name == "二级甲等" and hospital.level == 2
        assert sorted(Department.objects.filter(hospital=hospital).values_list("department_id", flat=True)) == [
            "EK", "FCK", "NK", "WK",
        ]  # fmt: skip
        doctors = Doctor.objects.filter(hospital=hospital).select_related("department")
        assert doctors.count() == 8
        expert = doctors.get(doctor_id="NK01")
        assert expert.is_expert and expert.department.name == "内科" and expert.title == "主任医师"
        assert inbound("DoctorInfo").ok and inbound("DoctorInfo").remote_addr

    def test_the_center_counts_what_it_received(self, his):
        answer = services.center_push_doctors(hospital=his)
        assert answer.data["Count"] == 8 and answer.data["HospitalNo"] == "S001"

    def test_wrong_credentials_are_reported_as_the_center_being_unreachable(self, his):
        his.center_secret = "not-the-secret-0000"
        his.save()
        with pytest.raises(CenterUnreachable, match="HTTP 401"):
            services.center_push_hospital(hospital=his)

    def test_a_hospital_without_a_center_address_is_refused_clearly(self, his):
        his.center_url = ""
        with pytest.raises(DomainError, match="未配置平台中心端地址"):
            services.center_push_hospital(hospital=his)


@pytest.mark.django_db(transaction=True)
class ScheduleNoticeTests:
    def test_a_full_schedule_push_is_sent_and_the_centers_answer_surfaces(self, his):
        services.center_push_departments(hospital=his)
        services.center_push_doctors(hospital=his)
        answer = services.center_push_schedules(hospital=his)
        log = inbound("synchronizedWorkInfo")
        assert answer.interface == "synchronizedWorkInfo" and log.transaction_id == answer.transaction_id
        assert "<IsMultiTimes>1</IsMultiTimes>" in log.request_text
        assert f"<Count>{SandboxSchedule.objects.count()}</Count>" in log.request_text
        assert answer.ok or answer.error_msg  # accepted, or refused with the center's reason shown
        assert answer.summary().startswith("synchronizedWorkInfo：")
        if answer.ok:
            assert answer.data["Count"] == SandboxSchedule.objects.count()

    def test_a_stop_notice_is_sent_after_the_session_is_stopped_locally(self, his):
        schedule = SandboxSchedule.objects.first()
        answer = services.schedule_stop_and_notify(schedule=schedule, reason="医生外出会诊")
        schedule.refresh_from_db()
        assert schedule.status == SandboxSchedule.STOPPED and schedule.remaining == 0
        log = inbound("stopWorkNotice")
        assert f"<WorkId>{schedule.work_id}</WorkId>" in log.request_text and "医生外出会诊" in log.request_text
        assert answer.ok or answer.error_msg

    def test_a_change_notice_carries_the_new_session_and_moves_the_orders(self, his):
        schedule = SandboxSchedule.objects.filter(doctor__doctor_id="NK01").first()
        order = services.order_lock(
            hospital=his,
            transaction_id="T-1",
            work_id=schedule.work_id,
            num_source_id=None,
            patient={"Name": "测试患者一", "TelephoneNo": "13400000001", "IDCode": "3306XXXXXXXXXX0001"},
        )
        other = his.doctors.get(doctor_id="NK02")
        new, answer = services.schedule_change_and_notify(schedule=schedule, reason="医生临时换诊", doctor=other)
        order.refresh_from_db()
        schedule.refresh_from_db()
        assert order.schedule_id == new.pk and order.slot.schedule_id == new.pk
        assert schedule.status == SandboxSchedule.REPLACED and schedule.replaced_by_id == new.pk
        assert new.doctor_id == other.pk and new.remaining == schedule.total - 1
        log = inbound("changeWorkNotice")
        assert f"<OldWorkId>{schedule.work_id}</OldWorkId>" in log.request_text
        assert f"<WorkId>{new.work_id}</WorkId>" in log.request_text
        assert answer.ok or answer.error_msg

    def test_fulfilment_and_no_shows_are_reported_with_the_promise_notice(self, his):
        schedule = SandboxSchedule.objects.first()
        patient = {"Name": "测试患者一", "TelephoneNo": "13400000001", "IDCode": "3306XXXXXXXXXX0001"}
        seen, missed = (
            services.order_lock(hospital=his, transaction_id=f"T-{n}", work_id=schedule.work_id, num_source_id=None,
                                patient=patient)
            for n in (1, 2)
        )  # fmt: skip
        services.queue_call_next(schedule=schedule)
        services.order_mark_no_show(order=missed)
        orders = list(SandboxOrder.objects.filter(pk__in=[seen.pk, missed.pk]).order_by("serial_number"))
        answer = services.center_push_promise(orders=orders)
        log = inbound("getPromiseNotice")
        assert "<workType>4</workType>" in log.request_text and "<workType>6</workType>" in log.request_text
        assert answer.interface == "getPromiseNotice" and (answer.ok or answer.error_msg)
        reported = set(SandboxOrder.objects.values_list("reported_status", flat=True))
        assert reported == ({"4", "6"} if answer.ok else {""})

    def test_an_active_order_has_nothing_to_report(self, his):
        schedule = SandboxSchedule.objects.first()
        order = services.order_lock(
            hospital=his,
            transaction_id="T-9",
            work_id=schedule.work_id,
            num_source_id=None,
            patient={"Name": "测试患者一", "TelephoneNo": "13400000001", "IDCode": "3306XXXXXXXXXX0001"},
        )
        with pytest.raises(DomainError, match="没有可报告的履约状态"):
            services.center_push_promise(orders=[order])
