"""2.1–2.3 (synchronizedWorkInfo, stopWorkNotice, changeWorkNotice) over HTTP through a zeep
client generated from /ws/center?wsdl, on PostgreSQL; the services directly where time matters."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from booking.models import Schedule
from booking.services import schedules
from regional.messages import MessageInvalid
from regional.models import Department, Doctor, InboundTransaction, MessageLog
from tests.base import apply, cleaned_record, elements, record, spec_example, sync_message
from tests.base import reply_fields as answer

ROOT = pathlib.Path(__file__).resolve().parents[2]
TODAY = timezone.localdate()
TOMORROW = TODAY + dt.timedelta(days=1)
YESTERDAY = TODAY - dt.timedelta(days=1)


def stop_message(stops: list[tuple[str, str]], *, tx: str) -> str:
    body = "".join(f"<Record><WorkId>{w}</WorkId><StopReason>{r}</StopReason></Record>" for w, r in stops)
    return f"<Request><TransactionId>{tx}</TransactionId><HospitalNo>H0001</HospitalNo><WorkInfo>{body}</WorkInfo></Request>"


def change_message(old_work_id: str, new: dict[str, str], *, tx: str, reason: str = "医生临时外出会诊") -> str:
    return (
        f"<Request><TransactionId>{tx}</TransactionId><HospitalNo>H0001</HospitalNo><WorkInfo><Record>"
        f"<OldWorkId>{old_work_id}</OldWorkId><ChangeReason>{reason}</ChangeReason>"
        f"<NewWorkInfo>{elements(new)}</NewWorkInfo></Record></WorkInfo></Request>"
    )


def fill(example: str, values: dict[str, str]) -> str:
    """The specification's example with its empty elements filled in, layout kept."""
    for name, value in values.items():
        example = example.replace(f"<{name}></{name}>", f"<{name}>{value}</{name}>", 1)
    return example


def fill_records(example: str, records: list[dict[str, str]]) -> str:
    """Every `<Record>` of the example filled from `records`, its `………` placeholder record dropped."""
    example = re.sub(r"\s*<Record>\s*[.…]+\s*</Record>", "", example)
    template = re.search(r"<Record>.*?</Record>", example, re.S).group(0)
    filled = "\n        ".join(fill(template, values) for values in records)
    return example.replace(template, filled)


def statuses() -> dict[str, str]:
    return dict(Schedule.objects.values_list("work_id", "status"))


@pytest.mark.django_db(transaction=True)
class SynchronizedWorkInfoTests:
    def test_it_runs_on_postgresql(self, postgres):
        assert connection.vendor == "postgresql"

    def test_the_specifications_example_applies(self, hospital, center_client):
        xml = fill(spec_example("center.synchronizedWorkInfo.request.xml"), {"TransactionId": "s-1", "HospitalNo": "H0001", "Count": "2", "IsMultiTimes": "0"})  # fmt: skip
        xml = fill_records(xml, [record(1), record(2, WorkTimeCode="3", WorkStartDate="14:00", WorkStopDate="17:00", HosLockedCount="")])  # fmt: skip
        assert "<Count>2</Count>" in xml and xml.count("<WorkId>") == 2
        result = answer(center_client().service.synchronizedWorkInfo(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "Count": "2", "HospitalNo": "H0001"}
        morning = Schedule.objects.select_related("doctor", "department").get(work_id="W00001")
        assert (morning.work_date, morning.time_code, morning.start_time, morning.stop_time) == (
            TOMORROW, Schedule.MORNING, dt.time(8, 0), dt.time(11, 30),
        )  # fmt: skip
        assert (morning.price, morning.remaining, morning.total, morning.hospital_reserved) == (
            Decimal("25.50"),
            18,
            20,
            2,
        )
        assert (morning.registration_type_id, morning.registration_type_name) == ("1", "专家号")
        assert morning.status == Schedule.NORMAL and morning.work_addr == "门诊楼二楼"
        assert (morning.doctor.doctor_id, morning.department.department_id) == ("D01", "K01")
        assert (morning.doctor_code, morning.department_code) == ("D01", "K01")
        assert Schedule.objects.get(work_id="W00002").hospital_reserved == 0
        log = MessageLog.objects.get(interface="synchronizedWorkInfo")
        assert log.ok and log.transaction_id == "s-1"

    def test_departments_and_doctors_named_only_by_a_schedule_are_created(self, hospital, center_client):
        xml = sync_message(
            [record(1), record(2, DoctorId="D77", DoctorName="李时珍", DepartmentId="K09", DepartmentName="骨科")],
            tx="s-new",
        )
        assert answer(center_client().service.synchronizedWorkInfo(xml))["ResultCode"] == "0"
        doctor = Doctor.objects.select_related("department").get(hospital=hospital, doctor_id="D77")
        assert (doctor.name, doctor.name_abbr, doctor.department.name) == ("李时珍", "LSZ", "骨科")
        assert Department.objects.get(hospital=hospital, department_id="K01").name_abbr == "XXGNK"
        assert Schedule.objects.get(work_id="W00002").doctor == doctor

    def test_a_known_doctor_is_left_as_doctor_info_described_them(self, hospital, center_client):
        Doctor.objects.create(hospital=hospital, doctor_id="D01", name="张三丰", skill="高血压", department_code="K00")
        apply(hospital, [record(1, DoctorName="改名")])
        doctor = Doctor.objects.get(doctor_id="D01")
        assert (doctor.name, doctor.skill, doctor.department_code) == ("张三丰", "高血压", "K00")

    def test_a_record_sent_again_updates_its_schedule_and_keeps_the_platforms_order_count(self, hospital):
        apply(hospital, [record(1)])
        first = Schedule.objects.get(work_id="W00001")
        Schedule.objects.filter(pk=first.pk).update(booked_count=3)
        apply(hospital, [record(1, RegistrationNumber="5", RegistrationPrice="30", DoctorId="D02", DoctorName="王五")])
        again = Schedule.objects.select_related("doctor").get(work_id="W00001")
        assert again.pk == first.pk and again.booked_count == 3
        assert (again.remaining, again.price, again.doctor.doctor_id) == (5, Decimal("30.00"), "D02")
        assert again.updated_at > first.updated_at

    def test_a_work_id_twice_in_one_batch_is_refused_naming_both_records(self, hospital):
        # Issue 14: collapsing them silently hid which one the hospital meant.
        from regional.messages import MessageInvalid

        with pytest.raises(MessageInvalid) as refused:
            apply(hospital, [record(1, RegistrationNumber="1"), record(2), record(1, RegistrationNumber="7")])
        assert "WorkInfo/Record[3] WorkId W00001在本批次中重复（与第1条相同）" in refused.value.summary()
        assert not Schedule.objects.exists()

    def test_every_broken_rule_is_reported_with_its_path_and_nothing_is_applied(self, hospital, center_client):
        xml = sync_message(
            [
                record(1, DepartmentId="K99", DepartmentName="新科室"),
                record(2, WorkStartDate="11:00", WorkStopDate="08:00"),
                record(3, RegistrationNumber="21", RegistrationCount="20"),
                record(4, HosLockedCount="30"),
                record(5, RegistrationCount="-1", RegistrationNumber="0"),
            ],
            tx="s-bad",
        )
        result = answer(center_client().service.synchronizedWorkInfo(xml))
        assert result["ResultCode"] == "1" and result["HospitalNo"] == "H0001"
        assert result["ErrorMsg"] == (
            "WorkInfo/Record[2]/WorkStopDate 结束时间08:00应晚于开始时间11:00；"
            "WorkInfo/Record[3]/RegistrationNumber 剩余号源数21大于号源总数20；"
            "WorkInfo/Record[4]/HosLockedCount 医院保留号源数30大于号源总数20；"
            "WorkInfo/Record[5]/RegistrationCount 号源总数不能为负数（-1）"
        )
        assert Schedule.objects.count() == 0
        assert not Department.objects.filter(department_id="K99").exists()
        assert not InboundTransaction.objects.exists()

    def test_the_message_descriptions_rules_are_reported_with_their_paths(self, hospital, center_client):
        xml = sync_message([record(1, WorkDate="2026/13/01"), record(2, WorkTimeCode="5")], tx="s-fmt", count=3)
        message = answer(center_client().service.synchronizedWorkInfo(xml))["ErrorMsg"]
        assert "WorkInfo/Record[1]/WorkDate 格式应为yyyy-mm-dd" in message
        assert "WorkInfo/Record[2]/WorkTimeCode 取值应为0（全天）" in message

    def test_count_must_equal_the_records_sent(self, hospital, center_client):
        result = answer(center_client().service.synchronizedWorkInfo(sync_message([record(1)], tx="s-c", count=2)))
        assert result["ResultCode"] == "1"
        assert result["ErrorMsg"] == "Count 为2，与实际发送的1条Record不一致"
        assert not Schedule.objects.exists()

    def test_a_repeated_transaction_id_returns_the_stored_answer_without_applying_twice(self, hospital, center_client):
        client = center_client()
        xml = sync_message([record(1)], tx="s-rep")
        first = client.service.synchronizedWorkInfo(xml)
        Schedule.objects.filter(work_id="W00001").update(remaining=0)
        assert client.service.synchronizedWorkInfo(xml) == first
        assert Schedule.objects.get(work_id="W00001").remaining == 0
        other = answer(client.service.synchronizedWorkInfo(sync_message([record(2)], tx="s-rep")))
        assert other["ResultCode"] == "1" and "访问流水号s-rep已用于另一报文" in other["ErrorMsg"]
        assert not Schedule.objects.filter(work_id="W00002").exists()

    def test_a_hospital_cannot_write_another_hospitals_schedules(self, make_hospital, center_client):
        make_hospital("H0001")
        make_hospital("H0002", name="测试第二医院")
        xml = sync_message([record(1)], tx="s-x").replace("<HospitalNo>H0001", "<HospitalNo>H0002")
        result = answer(center_client("H0001").service.synchronizedWorkInfo(xml))
        assert result["ResultCode"] == "1" and "H0002与认证的医院H0001不一致" in result["ErrorMsg"]
        assert not Schedule.objects.exists()

    def test_two_hospitals_may_use_the_same_work_id(self, make_hospital):
        first, second = make_hospital("H0001"), make_hospital("H0002", name="测试第二医院")
        apply(first, [record(1)])
        apply(second, [record(1, RegistrationNumber="3")])
        assert Schedule.objects.get(hospital=first).remaining == 18
        assert Schedule.objects.get(hospital=second).remaining == 3

    @pytest.mark.slow
    def test_ten_thousand_records_in_one_call_succeed(self, hospital, center_client):
        records = [
            record(
                n,
                DoctorId=f"D{n % 300:03d}",
                DoctorName=f"医生{n % 300}",
                DepartmentId=f"K{n % 40:02d}",
                DepartmentName=f"科室{n % 40}",
                WorkDate=(TOMORROW + dt.timedelta(days=n % 14)).isoformat(),
            )
            for n in range(1, 10_001)
        ]
        xml = sync_message(records, tx="s-10k", multi="1")
        result = answer(center_client().service.synchronizedWorkInfo(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "Count": "10000", "HospitalNo": "H0001"}
        assert Schedule.objects.filter(hospital=hospital).count() == 10_000
        assert Doctor.objects.filter(hospital=hospital).count() == 300
        assert Department.objects.filter(hospital=hospital).count() == 40


@pytest.mark.django_db(transaction=True)
class IsMultiTimesTests:
    def test_a_full_resync_clears_future_schedules_and_keeps_past_ones(self, hospital, center_client):
        apply(hospital, [record(1, WorkDate=YESTERDAY.isoformat()), record(2), record(3)])
        xml = sync_message([record(3, RegistrationNumber="9"), record(4)], tx="m-1", multi="1")
        assert answer(center_client().service.synchronizedWorkInfo(xml))["ResultCode"] == "0"
        assert statuses() == {"W00001": "normal", "W00003": "normal", "W00004": "normal"}
        assert Schedule.objects.get(work_id="W00003").remaining == 9

    def test_a_schedule_with_orders_is_kept_and_marked_withdrawn(self, hospital, center_client):
        apply(hospital, [record(1), record(2)])
        Schedule.objects.filter(work_id="W00001").update(booked_count=1)
        xml = sync_message([record(3)], tx="m-2", multi="1")
        assert answer(center_client().service.synchronizedWorkInfo(xml))["ResultCode"] == "0"
        assert statuses() == {"W00001": "withdrawn", "W00003": "normal"}
        kept = Schedule.objects.get(work_id="W00001")
        assert kept.retired_at is not None and kept.booked_count == 1

    def test_a_withdrawn_schedule_sent_again_in_a_later_batch_is_back_in_service(self, hospital):
        apply(hospital, [record(1), record(2)])
        Schedule.objects.filter(work_id="W00001").update(booked_count=1)
        apply(hospital, [record(2)], multi="1")
        apply(hospital, [record(1, RegistrationNumber="4")], multi="0")
        again = Schedule.objects.get(work_id="W00001")
        assert (again.status, again.retired_at, again.remaining, again.booked_count) == ("normal", None, 4, 1)

    def test_a_stopped_schedule_with_orders_stays_stopped(self, hospital):
        apply(hospital, [record(1)])
        Schedule.objects.filter(work_id="W00001").update(booked_count=2)
        schedules.schedule_stop(hospital=hospital, work_id="W00001", reason="医生休假")
        apply(hospital, [record(2)], multi="1")
        apply(hospital, [record(1)], multi="0")
        assert statuses() == {"W00001": "stopped", "W00002": "normal"}

    def test_is_multi_times_0_only_upserts(self, hospital, center_client):
        apply(hospital, [record(1), record(2)])
        xml = sync_message([record(3)], tx="m-0", multi="0")
        assert answer(center_client().service.synchronizedWorkInfo(xml))["ResultCode"] == "0"
        assert set(statuses()) == {"W00001", "W00002", "W00003"}

    def test_clearing_only_unlinks_a_retired_schedule_from_a_replacement_it_deletes(self, hospital):
        apply(hospital, [record(1), record(2)])
        Schedule.objects.filter(work_id="W00001").update(booked_count=1)
        schedules.schedule_change(
            hospital=hospital, old_work_id="W00001", reason="换医生", new=cleaned_record(record(2))
        )
        Schedule.objects.filter(work_id="W00002").update(booked_count=0)
        apply(hospital, [record(5)], multi="1")
        old = Schedule.objects.get(work_id="W00001")
        assert (old.status, old.replaced_by) == ("changed", None)
        assert set(statuses()) == {"W00001", "W00005"}

    def test_a_schedule_booked_while_a_resync_waits_for_it_is_kept_and_withdrawn(self, hospital):
        apply(hospital, [record(1), record(2)])
        locked, release, failures = threading.Event(), threading.Event(), []

        def in_thread(fn):
            def run():
                try:
                    fn()
                except Exception as exc:  # noqa: BLE001  (reported by the main thread)
                    failures.append(exc)
                finally:
                    connections.close_all()

            thread = threading.Thread(target=run)
            thread.start()
            return thread

        def order():
            # What the orders issue will do: take a slot and count the order in one conditional UPDATE.
            with transaction.atomic():
                Schedule.objects.filter(work_id="W00001", remaining__gt=0).update(
                    remaining=F("remaining") - 1, booked_count=F("booked_count") + 1
                )
                locked.set()
                release.wait(10)

        ordering = in_thread(order)
        assert locked.wait(10)
        resync = in_thread(lambda: apply(hospital, [record(3)], multi="1"))
        with connection.cursor() as cursor:  # wait until the resync's DELETE waits for the order's row
            for _ in range(200):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.025)
            else:
                pytest.fail("the resync never waited for the booked row")
        release.set()
        ordering.join(10)
        resync.join(10)
        assert not failures
        assert statuses() == {"W00001": "withdrawn", "W00003": "normal"}
        assert Schedule.objects.get(work_id="W00001").booked_count == 1

    def test_a_session_that_has_ended_today_is_not_in_the_future(self, hospital):
        apply(hospital, [record(1, WorkStartDate="08:00", WorkStopDate="11:30"), record(2, WorkTimeCode="3", WorkStartDate="14:00", WorkStopDate="17:00")])  # fmt: skip
        Schedule.objects.update(work_date=TODAY)
        noon = timezone.make_aware(dt.datetime.combine(TODAY, dt.time(12, 0)))
        assert list(Schedule.objects.not_over(noon).values_list("work_id", flat=True)) == ["W00002"]

    def test_the_generic_upsert_used_on_sqlite_gives_the_same_result(self, tmp_path):
        # SQLite (the embedded mode) takes the generic upsert: the same sequence, run where it runs,
        # in a process of its own on a fresh SQLite database.
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "REGIONAL_VAR_DIR": str(tmp_path),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("REDIS_URL", None)
        run = subprocess.run(
            [sys.executable, "-c", SQLITE_SYNC], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stdout + run.stderr
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["vendor"] == "sqlite"
        assert result["statuses"] == {"W00001": "withdrawn", "W00003": "normal"}
        assert tuple(result["again"]) == ("normal", 6, 1)
        assert result["W00003"] == 2


# The sync on SQLite, as the embedded mode runs it; prints what the test above checks.
SQLITE_SYNC = """
import json

import django
from django.conf import settings

# The tables straight from the models, no migrations replayed: this database lives for one run.
settings.MIGRATION_MODULES = {app.rsplit(".", 1)[-1]: None for app in settings.INSTALLED_APPS}
django.setup()

from django.core.management import call_command
from django.db import connection

from booking.models import Schedule
from tests.base import apply, hospital_make, record

call_command("migrate", run_syncdb=True, verbosity=0)
hospital = hospital_make()
apply(hospital, [record(1), record(2)])
Schedule.objects.filter(work_id="W00001").update(booked_count=1)
apply(hospital, [record(3, RegistrationNumber="2")], multi="1")
statuses = dict(Schedule.objects.values_list("work_id", "status"))
apply(hospital, [record(1, RegistrationNumber="6")])
again = Schedule.objects.get(work_id="W00001")
print(json.dumps({
    "vendor": connection.vendor,
    "statuses": statuses,
    "again": [again.status, again.remaining, again.booked_count],
    "W00003": Schedule.objects.get(work_id="W00003").remaining,
}))
"""


@pytest.mark.django_db(transaction=True)
class StopWorkNoticeTests:
    def test_the_specifications_example_stops_the_schedule(self, hospital, center_client):
        apply(hospital, [record(1)])
        xml = fill(
            spec_example("center.stopWorkNotice.request.xml"),
            {"TransactionId": "stop-1", "HospitalNo": "H0001", "WorkId": "W00001", "StopReason": "医生参加义诊"},
        )
        xml = re.sub(r"\s*<Record>\s*[.…]+\s*</Record>", "", xml)
        result = answer(center_client().service.stopWorkNotice(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "HospitalNo": "H0001"}
        stopped = Schedule.objects.get(work_id="W00001")
        assert (stopped.status, stopped.stop_reason) == ("stopped", "医生参加义诊")
        assert stopped.stopped_at is not None

    def test_an_unknown_work_id_is_named_and_nothing_is_stopped(self, hospital, center_client):
        apply(hospital, [record(1)])
        xml = stop_message([("W00001", "停诊"), ("W09999", "停诊")], tx="stop-2")
        result = answer(center_client().service.stopWorkNotice(xml))
        assert result["ResultCode"] == "1"
        assert result["ErrorMsg"] == "WorkInfo/Record[2]/WorkId 排班W09999不存在"
        assert statuses() == {"W00001": "normal"}

    def test_stopping_twice_keeps_the_first_stop_time(self, hospital, center_client):
        apply(hospital, [record(1)])
        client = center_client()
        assert (
            answer(client.service.stopWorkNotice(stop_message([("W00001", "医生病假")], tx="stop-3")))["ResultCode"]
            == "0"
        )
        first = Schedule.objects.get(work_id="W00001").stopped_at
        again = answer(client.service.stopWorkNotice(stop_message([("W00001", "医生病假（补）")], tx="stop-4")))
        assert again["ResultCode"] == "0"
        stopped = Schedule.objects.get(work_id="W00001")
        assert (stopped.status, stopped.stopped_at, stopped.stop_reason) == ("stopped", first, "医生病假（补）")

    def test_a_repeated_transaction_id_is_answered_from_the_store(self, hospital, center_client):
        apply(hospital, [record(1)])
        client = center_client()
        xml = stop_message([("W00001", "医生病假")], tx="stop-5")
        first = client.service.stopWorkNotice(xml)
        assert client.service.stopWorkNotice(xml) == first
        assert InboundTransaction.objects.filter(transaction_id="stop-5").count() == 1

    def test_a_changed_schedule_cannot_be_stopped_its_successor_can(self, hospital, center_client):
        apply(hospital, [record(1)])
        schedules.schedule_change(
            hospital=hospital, old_work_id="W00001", reason="换医生", new=cleaned_record(record(2))
        )
        result = answer(center_client().service.stopWorkNotice(stop_message([("W00001", "停诊")], tx="stop-6")))
        assert result["ErrorMsg"] == "WorkInfo/Record[1]/WorkId 排班W00001已换诊为W00002，请对W00002停诊"

    def test_a_withdrawn_schedule_can_be_stopped(self, hospital):
        apply(hospital, [record(1)])
        Schedule.objects.filter(work_id="W00001").update(booked_count=1)
        apply(hospital, [record(2)], multi="1")
        schedules.schedule_stop(hospital=hospital, work_id="W00001", reason="医院取消该班次")
        assert statuses()["W00001"] == "stopped"


def _new_work_info(n: int = 2, **overrides: str) -> dict[str, str]:
    values = record(n, WorkTimeCode="3", WorkStartDate="14:00", WorkStopDate="17:00")
    del values["HosLockedCount"]
    extra = {
        "DoctorNameAbbr": "LSZ",
        "DoctorDesc": "主任医师，从事骨科临床工作二十年",
        "DoctorDegreeCode": "231",
        "DoctorDegreeName": "主任医师",
        "DepartmentNameAbbr": "GK",
        "DoctorSkill": "骨折、关节置换",
    }
    values.update(DoctorId="D77", DoctorName="李时珍", DepartmentId="K09", DepartmentName="骨科", **extra)
    values.update(overrides)
    return values


@pytest.mark.django_db(transaction=True)
class ChangeWorkNoticeTests:
    def test_the_specifications_example_retires_the_old_schedule_and_links_the_new_one(self, hospital, center_client):
        apply(hospital, [record(1)])
        Schedule.objects.filter(work_id="W00001").update(booked_count=2)
        xml = fill(spec_example("center.changeWorkNotice.request.xml"), {"TransactionId": "chg-1", "HospitalNo": "H0001", "OldWorkId": "W00001", "ChangeReason": "原医生外出会诊"})  # fmt: skip
        xml = re.sub(r"\s*<Record>\s*[.…]+\s*</Record>", "", fill(xml, _new_work_info(2)))
        result = answer(center_client().service.changeWorkNotice(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": ""}
        old = Schedule.objects.select_related("replaced_by").get(work_id="W00001")
        assert (old.status, old.change_reason, old.booked_count) == ("changed", "原医生外出会诊", 2)
        assert old.retired_at is not None and old.replaced_by.work_id == "W00002"
        new = Schedule.objects.select_related("doctor", "department").get(work_id="W00002")
        assert (new.status, new.time_code, new.start_time, new.hospital_reserved) == ("normal", 3, dt.time(14), 0)
        assert list(new.replaces.all()) == [old]
        doctor = new.doctor
        assert (doctor.doctor_id, doctor.name_abbr, doctor.title, doctor.skill) == (
            "D77",
            "LSZ",
            "主任医师",
            "骨折、关节置换",
        )
        assert doctor.description.startswith("主任医师") and doctor.department.department_id == "K09"
        assert (new.department.name, new.department.name_abbr) == ("骨科", "GK")

    def test_a_known_doctors_profile_is_updated_but_keeps_their_department(self, hospital, center_client):
        apply(hospital, [record(1)])
        Doctor.objects.filter(doctor_id="D01").update(skill="高血压")
        new = _new_work_info(
            2, DoctorId="D01", DoctorName="张三丰", DoctorNameAbbr="", DoctorSkill="", DoctorDesc="新简介"
        )
        assert answer(center_client().service.changeWorkNotice(change_message("W00001", new, tx="chg-2")))["ResultCode"] == "0"  # fmt: skip
        doctor = Doctor.objects.select_related("department").get(doctor_id="D01")
        assert (doctor.skill, doctor.description, doctor.name_abbr) == ("高血压", "新简介", "ZSF")
        assert doctor.department.department_id == "K01"
        assert Schedule.objects.get(work_id="W00002").department.department_id == "K09"

    def test_an_unknown_old_work_id_and_broken_rules_are_named_with_their_paths(self, hospital, center_client):
        new = _new_work_info(2, WorkStartDate="18:00", WorkStopDate="17:00")
        result = answer(center_client().service.changeWorkNotice(change_message("W09999", new, tx="chg-3")))
        assert result["ResultCode"] == "1"
        assert "WorkInfo/Record[1]/OldWorkId 原排班W09999不存在" in result["ErrorMsg"]
        assert "WorkInfo/Record[1]/NewWorkInfo/WorkStopDate 结束时间17:00应晚于开始时间18:00" in result["ErrorMsg"]
        assert not Schedule.objects.exists() and not Doctor.objects.filter(doctor_id="D77").exists()

    def test_repeating_a_change_is_harmless_and_a_second_target_is_refused(self, hospital, center_client):
        apply(hospital, [record(1)])
        client = center_client()
        assert answer(client.service.changeWorkNotice(change_message("W00001", _new_work_info(2), tx="chg-4")))["ResultCode"] == "0"  # fmt: skip
        retired_at = Schedule.objects.get(work_id="W00001").retired_at
        again = answer(client.service.changeWorkNotice(change_message("W00001", _new_work_info(2), tx="chg-5")))
        assert again["ResultCode"] == "0"
        assert Schedule.objects.get(work_id="W00001").retired_at == retired_at
        other = answer(client.service.changeWorkNotice(change_message("W00001", _new_work_info(3), tx="chg-6")))
        assert other["ErrorMsg"] == "排班W00001已换诊为W00002，不能再换诊为W00003"
        assert set(statuses()) == {"W00001", "W00002"}

    def test_a_change_to_the_same_work_id_updates_the_schedule_in_place(self, hospital, center_client):
        apply(hospital, [record(1)])
        pk = Schedule.objects.get(work_id="W00001").pk
        new = _new_work_info(1, RegistrationNumber="3", RegistrationCount="10")
        assert answer(center_client().service.changeWorkNotice(change_message("W00001", new, tx="chg-7")))["ResultCode"] == "0"  # fmt: skip
        schedule = Schedule.objects.select_related("doctor").get(work_id="W00001")
        assert (schedule.pk, schedule.status, schedule.doctor.doctor_id) == (pk, "normal", "D77")
        assert (schedule.remaining, schedule.total, schedule.change_reason) == (3, 10, "医生临时外出会诊")

    def test_one_message_may_change_a_schedule_it_has_just_created(self, hospital, center_client):
        apply(hospital, [record(1)])
        first = change_message("W00001", _new_work_info(2), tx="chg-8")
        second = change_message("W00002", _new_work_info(3), tx="x")
        xml = first.replace(
            "</Record></WorkInfo>", "</Record>" + second.split("<WorkInfo>")[1].split("</WorkInfo>")[0] + "</WorkInfo>"
        )
        assert answer(center_client().service.changeWorkNotice(xml))["ResultCode"] == "0"
        chain = Schedule.objects.select_related("replaced_by").order_by("work_id")
        assert [(s.work_id, s.status, s.replaced_by and s.replaced_by.work_id) for s in chain] == [
            ("W00001", "changed", "W00002"), ("W00002", "changed", "W00003"), ("W00003", "normal", None),
        ]  # fmt: skip

    def test_a_change_onto_an_existing_schedule_updates_it(self, hospital):
        apply(hospital, [record(1), record(2, HosLockedCount="5")])
        new = record(2, RegistrationCount="30", RegistrationNumber="30")
        del new["HosLockedCount"]  # NewWorkInfo has none: the known reservation is kept
        schedules.schedule_change(hospital=hospital, old_work_id="W00001", reason="合并", new=cleaned_record(new))
        merged = Schedule.objects.get(work_id="W00002")
        assert (merged.total, merged.hospital_reserved, merged.status) == (30, 5, "normal")
        assert Schedule.objects.count() == 2


@pytest.mark.django_db
class ScheduleServiceTests:
    def test_the_service_refuses_records_with_every_violation_listed(self, hospital):
        with pytest.raises(MessageInvalid) as caught:
            apply(hospital, [record(1, RegistrationNumber="30"), record(2, RegistrationPrice="123456789")])
        paths = [v.path for v in caught.value.violations]
        assert paths == ["WorkInfo/Record[1]/RegistrationNumber", "WorkInfo/Record[2]/RegistrationPrice"]

    def test_has_orders_reads_the_booked_count(self, hospital):
        apply(hospital, [record(1)])
        schedule = Schedule.objects.get()
        assert not schedule.has_orders and Schedule.objects.with_orders().count() == 0
        Schedule.objects.update(booked_count=1)
        assert Schedule.objects.get().has_orders and Schedule.objects.with_orders().count() == 1
