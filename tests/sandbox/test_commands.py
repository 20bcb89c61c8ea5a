"""check_hospital against the sandbox, seed_demo building the center over SOAP, and sandbox_serve
running the sandbox as its own server process."""

from __future__ import annotations

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

from regional import hospital_client
from regional.models import Department, Doctor, Hospital
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
