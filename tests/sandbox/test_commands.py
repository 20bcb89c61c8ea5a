"""check_hospital against the sandbox, seed_demo building the center over SOAP, and sandbox_serve
running the sandbox as its own server process."""

from __future__ import annotations

import datetime as dt
import io
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from booking.models import BookingRules, Channel, LedgerEntry, Order, PatientNotification, Schedule, WaitlistEntry
from booking.services.waitlist import waitlist_join
from config.management.commands import _demo_day as demo_day
from reconciliation.models import Discrepancy, ReconciliationRun, Statement
from referral.models import Referral
from regional import hospital_client
from regional.errors import DomainError
from regional.models import Department, Doctor, Hospital
from regional.roles import ROLES
from sandbox import services
from sandbox.models import SandboxHospital, SandboxSchedule
from tests.base import his_url
from tests.factories import session
from tests.services import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def closed_circuits():
    cache.clear()
    yield
    cache.clear()


def check(*args: str) -> str:
    out = io.StringIO()
    try:
        call_command("check_hospital", *args, stdout=out)
    except CommandError as exc:
        raise AssertionError(out.getvalue()) from exc
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
class CheckHospitalTests:
    def test_the_sandbox_passes_every_check(self, public_url, make_hospital, his):
        make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        schedule = session(his, slots=3)
        output = check("S001", "--work-id", schedule.work_id, "--work-date", schedule.work_date.isoformat())
        assert "接入检查通过。共35项：通过35，失败0，跳过0" in output
        for operation in ("confirmRegistration", "UnlockReg", "PaymentNotice", "getRegistrationInfo",
                          "getPromiseNotice", "GetOrderDetailInfo", "GetLineupDetailInfo", "GetDaypartingDetailInfo",
                          "CheckMediCardIdService", "queryCardListInfo"):  # fmt: skip
            assert operation in output
        assert "3306XXXXXXXXXX0001" not in output
        assert SandboxSchedule.objects.get().remaining == 3  # the check leaves the session as it found it

    def test_it_fails_with_reasons_when_the_hospital_misbehaves(self, public_url, make_hospital, his):
        make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        schedule = session(his, slots=3)
        services.hospital_fault_set(
            hospital=his, mode=SandboxHospital.FAULT_MALFORMED, operations=["PaymentNotice", "UnlockReg"]
        )
        out = io.StringIO()
        with pytest.raises(CommandError, match="接入检查未通过"):
            call_command(
                "check_hospital", "S001", "--work-id", schedule.work_id, "--work-date", str(schedule.work_date),
                stdout=out,
            )  # fmt: skip
        failed = [line for line in out.getvalue().splitlines() if "失败" in line and "HospitalBadAnswer" in line]
        assert failed and all(("PaymentNotice" in line or "UnlockReg" in line) for line in failed)

    def test_without_a_test_session_the_booking_round_is_skipped(self, public_url, make_hospital, his):
        make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        output = check("S001")
        assert "跳过" in output and "检查不完整" in output

    def test_an_unknown_hospital_is_refused(self, db):
        with pytest.raises(CommandError, match="医院NOPE未在平台登记"):
            call_command("check_hospital", "NOPE")


@pytest.mark.django_db(transaction=True)
class SeedDemoTests:
    def test_it_refuses_to_run_without_debug(self, settings):
        settings.DEBUG = False
        with pytest.raises(CommandError, match="只能在 DEBUG 模式下运行"):
            call_command("seed_demo")

    def test_it_builds_the_center_by_pushing_over_soap_and_can_run_again(self, settings, live_server, public_url):
        settings.DEBUG = True
        port = int(live_server.url.rsplit(":", 1)[1])
        out = io.StringIO()
        call_command("seed_demo", "--serve-port", str(port), "--days", "2", stdout=out, stderr=io.StringIO())
        output = out.getvalue()
        assert "令牌" in output and "演示数据已就绪" in output
        hospitals = Hospital.objects.filter(hospital_no__startswith="DEMO").order_by("hospital_no")
        assert [(h.hospital_no, h.level) for h in hospitals] == [("DEMO001", 3), ("DEMO002", 2), ("DEMO003", 1)]
        assert Department.objects.filter(hospital__hospital_no="DEMO001").count() == 6
        assert Doctor.objects.filter(hospital__hospital_no="DEMO003").count() == 2
        assert get_user_model().objects.get(username="demo").check_password("demo-admin-2026")
        first_counts = (Department.objects.count(), Doctor.objects.count(), SandboxSchedule.objects.count())
        again = io.StringIO()
        call_command("seed_demo", "--serve-port", str(port), "--days", "2", stdout=again, stderr=io.StringIO())
        assert "渠道 JKMZWX 已存在（令牌不变）" in again.getvalue()
        assert (Department.objects.count(), Doctor.objects.count(), SandboxSchedule.objects.count()) == first_counts
        # The demo hospitals are real SOAP endpoints on the platform's address.
        demo = Hospital.objects.get(hospital_no="DEMO002")
        assert demo.endpoint_url == f"{public_url}/sandbox/his/DEMO002/ws"
        schedule = SandboxSchedule.objects.filter(hospital__hospital_no="DEMO002").first()
        answer = hospital_client.call(
            demo, "getRegistrationInfo", {"WorkId": schedule.work_id, "WorkDate": schedule.work_date}
        )
        assert answer["WorkInfo"][0]["RegistrationNumber"] == 10

    def test_the_demo_gives_every_role_a_day_of_work_and_is_built_once(self, settings, live_server, client):
        settings.DEBUG = True
        port = int(live_server.url.rsplit(":", 1)[1])
        out = io.StringIO()
        call_command("seed_demo", "--serve-port", str(port), "--days", "2", stdout=out, stderr=io.StringIO())
        output = out.getvalue()
        for key, role in ROLES.items():
            assert f"岗位账号 {role.group}：{demo_day.staff_username(key)} / {demo_day.staff_password(key)}" in output
        yesterday, before = timezone.localdate() - dt.timedelta(days=1), timezone.localdate() - dt.timedelta(days=2)
        # Finance: both past days paid and refunded, yesterday's bills imported and reconciled with differences.
        for day in (yesterday, before):
            entries = LedgerEntry.objects.filter(created_at__date=day)
            assert entries.filter(kind="payment").count() == 6 and entries.filter(kind="refund").count() == 2
        run = ReconciliationRun.objects.get()
        assert (run.date_from, run.status, run.result) == (yesterday, "done", "discrepancies"), run.note
        assert Statement.objects.filter(bill_date=yesterday).count() == 2
        assert {d.type for d in Discrepancy.objects.all()} >= {"platform_only", "channel_only", "amount_mismatch"}
        # The waitlist is open at one hospital by its booking rule, with a full session and a queue.
        rules = BookingRules.objects.get(hospital__hospital_no="DEMO003")
        assert rules.waitlist_close_minutes == 60
        assert WaitlistEntry.objects.filter(status="waiting", schedule__hospital=rules.hospital).count() == 2
        stopped = Schedule.objects.get(status=Schedule.STOPPED)
        assert stopped.hospital.hospital_no == "DEMO002" and Order.objects.filter(schedule=stopped).count() == 3
        assert PatientNotification.objects.filter(order__schedule=stopped).exists()
        # The platform's counts still agree with the hospitals' for every open session (a stopped
        # one has no bookable count: the hospital zeroes it).
        hospital_counts = dict(SandboxSchedule.objects.values_list("work_id", "remaining"))
        open_sessions = Schedule.objects.filter(status=Schedule.NORMAL)
        assert not [s.work_id for s in open_sessions if s.remaining != hospital_counts.get(s.work_id)]
        # Referrals from the community centre in several states (posted over the servlet, then acted on).
        assert set(Referral.objects.values_list("status", flat=True)) == {
            "draft", "submitted", "accepted", "rejected", "completed",
        }  # fmt: skip
        # Elsewhere the refusal says which rule opens the waitlist and where staff set it.
        # A session still to come, whatever the time of day the test runs at (this morning's is over
        # in the afternoon, and refused for that first).
        sessions = Schedule.objects.filter(hospital__hospital_no="DEMO001", status=Schedule.NORMAL)
        closed = next(s for s in sessions.order_by("work_date", "start_time") if s.is_bookable(timezone.now()))
        with pytest.raises(DomainError) as refused:
            waitlist_join(
                channel=Channel.objects.get(code="JKMZWX"), schedule_id=closed.pk, patient=demo_day.patient(900)
            )
        assert "候补截止（开诊前分钟数）" in refused.value.message and "预约规则" in refused.value.message
        assert "演示市第一人民医院" in refused.value.message

        # Each role's own pages have something to work on.
        pages = {
            "finance": [
                ("admin:reconciliation_discrepancy_changelist", "待处理"),
                ("admin:reconciliation_reconciliationrun_changelist", "有差异"),
                ("admin:reconciliation_statement_changelist", "查看"),
                ("admin:reconciliation_run_monthly", "演示市第一人民医院"),
            ],
            "hotline": [("admin:booking_order_changelist", "演示"), ("admin:booking_waitlistentry_changelist", "候补")],
            "regional_admin": [("admin:booking_bookingrules_changelist", "演示街道社区卫生服务中心")],
            "interface": [("admin:regional_messagelog_changelist", "stopWorkNotice")],
            "referral_desk": [("admin:referral_referral_changelist", "待接收")],
        }
        for key, expected in pages.items():
            client.force_login(get_user_model().objects.get(username=demo_day.staff_username(key)))
            for name, text in expected:
                page = client.get(reverse(name))
                assert page.status_code == 200 and text in page.content.decode(), (key, name)

        counts = (Order.objects.count(), LedgerEntry.objects.count(), Discrepancy.objects.count())
        again = io.StringIO()
        call_command("seed_demo", "--serve-port", str(port), "--days", "2", stdout=again, stderr=io.StringIO())
        assert "未重复生成" in again.getvalue()
        assert (Order.objects.count(), LedgerEntry.objects.count(), Discrepancy.objects.count()) == counts

    def test_demo_data_contains_no_real_looking_personal_data(self, settings, live_server):
        settings.DEBUG = True
        call_command("seed_demo", "--days", "1", stdout=io.StringIO(), stderr=io.StringIO())
        names = set(Doctor.objects.values_list("name", flat=True))
        assert names and all(name.startswith("测试医生") for name in names)


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sandbox_serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("sandbox_serve did not start listening")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class SandboxServeTests:
    def test_the_sandbox_runs_as_its_own_server_serving_only_the_sandbox(self, postgres, make_hospital, his):
        schedule = session(his, slots=2)
        port = free_port()
        database = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "sandbox_serve", "--port", str(port), "--workers", "1", "--threads", "4"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, proc)
            base = f"http://127.0.0.1:{port}"
            assert requests.get(f"{base}/ws/center", timeout=10).status_code == 404
            assert (
                f'location="{base}/sandbox/his/S001/ws"' in requests.get(f"{base}/sandbox/his/S001/ws", timeout=10).text
            )
            hospital = make_hospital("S001", endpoint_url=f"{base}/sandbox/his/S001/ws")
            answer = hospital_client.call(hospital, "confirmRegistration", {
                "WorkId": schedule.work_id, "Name": "测试患者一", "TelephoneNo": "13400000001",
                "IDCode": "3306XXXXXXXXXX0001"})  # fmt: skip
            assert answer["SerialNumber"] == 1
            assert SandboxSchedule.objects.get().remaining == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
