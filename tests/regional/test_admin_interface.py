"""Issue 13, the interface team's admin: onboarding a hospital, its secret issued once, the
conformance check from a button (stored per check), the interface-health dashboard, and the
append-only message log in Chinese."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from regional import circuit
from regional.auth import check_secret
from regional.conformance import conformance_execute
from regional.hospital_client import circuit_for
from regional.models import ConformanceCheck, ConformanceRun, Hospital, HospitalCredential, MessageLog
from tests.base import his_url
from tests.booking.test_admin import shown_secrets
from tests.console import PASSWORD, staff
from tests.factories import session

pytestmark = pytest.mark.usefixtures("fresh_state")  # tasks in process (unless the real worker runs them)

HEALTH = "/admin/regional/messagelog/health/"


@pytest.fixture(autouse=True)
def closed_circuits():
    cache.clear()
    yield
    cache.clear()


def role_staff(role_key: str, username: str | None = None):
    """`tests.console.staff(role_key)`; until every helper's permissions of #13 are merged (another
    role may name one not yet defined on this branch), a member of this one role's group, with
    exactly the permissions regional/roles.py gives it (each must exist)."""
    from django.contrib.auth.models import Group, Permission, User

    from regional.roles import ROLES

    try:
        return staff(role_key, username)
    except LookupError:
        role = ROLES[role_key]
        perms = [
            Permission.objects.get(content_type__app_label=label.split(".")[0], codename=label.split(".")[1])
            for label in role.permissions
        ]
        group, _ = Group.objects.get_or_create(name=role.group)
        group.permissions.set(perms)
        user = User.objects.create_user(username or role_key, password=PASSWORD, is_staff=True)
        user.groups.add(group)
        return user


def console(role: str = "interface", username: str | None = None) -> Client:
    client = Client()
    client.force_login(role_staff(role, username))
    return client


def add_form(hospital_no: str, name: str, **extra) -> dict:
    """The admin's add form of a hospital with its credential inline, as the browser posts it."""
    return {
        "hospital_no": hospital_no,
        "name": name,
        "short_name": "",
        "endpoint_url": "",
        "wsdl_url": "",
        "soap_namespace": "",
        "soap_part_name": "xml",
        "soap_part_form": Hospital.PART_QUALIFIED,
        "soap_action_style": Hospital.ACTION_OPERATION,
        "soap_version": Hospital.SOAP_11,
        "soap_encoding": "UTF-8",
        "interface_version": "2.4",
        "credential-TOTAL_FORMS": "1",
        "credential-INITIAL_FORMS": "0",
        "credential-MIN_NUM_FORMS": "0",
        "credential-MAX_NUM_FORMS": "1",
        "credential-0-is_active": "on",
        "credential-0-allowed_networks": "",
        **extra,
    }


def log(hospital: Hospital | None, interface: str, *, ok: bool, failure: str = "", ms: int = 10, ago: int = 5, **kw):
    side = kw.pop("side", "center")
    return MessageLog.objects.create(
        direction=kw.pop("direction", MessageLog.INBOUND),
        side=side,
        interface=interface,
        hospital=hospital,
        hospital_no=hospital.hospital_no if hospital else "",
        ok=ok,
        failure="" if ok else failure,
        duration_ms=ms,
        created_at=timezone.now() - dt.timedelta(minutes=ago),
        **kw,
    )


@pytest.mark.django_db
class OnboardingTests:
    def test_the_interface_team_adds_a_hospital_with_its_interface_settings(self):
        client = console()
        assert client.get("/admin/regional/hospital/add/").status_code == 200
        response = client.post(
            "/admin/regional/hospital/add/",
            add_form("H0900", "新接入医院", wsdl_url="http://his.example/ws?wsdl", soap_part_form="unqualified"),
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        hospital = Hospital.objects.get(hospital_no="H0900")
        assert (hospital.name, hospital.wsdl_url, hospital.soap_part_form) == (
            "新接入医院", "http://his.example/ws?wsdl", "unqualified",
        )  # fmt: skip
        # No secret yet: it is issued by its own button, then shown once.
        assert not HospitalCredential.objects.filter(hospital=hospital).exclude(secret_hash="").exists()

    def test_the_change_page_groups_the_settings_in_chinese_fieldsets_and_offers_the_buttons(self, hospital):
        page = console().get(f"/admin/regional/hospital/{hospital.pk}/change/").content.decode()
        for label in (
            "接口地址",
            "报文格式（未配置WSDL时生效）",
            "编码与版本",
            "重新生成接入密钥",
            "运行接入检查",
            "接入检查记录",
        ):
            assert label in page

    def test_the_referral_desk_may_not_add_hospitals_or_issue_secrets(self, hospital):
        client = console("referral_desk")
        assert client.get("/admin/regional/hospital/add/").status_code == 403
        assert client.post(f"/admin/regional/hospital/{hospital.pk}/secret/").status_code == 403
        assert client.post(f"/admin/regional/hospital/{hospital.pk}/conformance/").status_code == 403

    def test_a_secret_is_issued_by_post_and_shown_once_on_its_own_page(self, hospital):
        client = console()
        assert client.get(f"/admin/regional/hospital/{hospital.pk}/secret/").status_code == 405
        response = client.post(f"/admin/regional/hospital/{hospital.pk}/secret/")
        [secret] = shown_secrets(response)
        assert check_secret(hospital.hospital_no, secret) == hospital
        again = client.get(f"/admin/regional/hospital/{hospital.pk}/change/")
        assert secret not in again.content.decode() and not list(again.context["messages"])
        [rotated] = shown_secrets(client.post(f"/admin/regional/hospital/{hospital.pk}/secret/"))
        assert rotated != secret
        assert check_secret(hospital.hospital_no, secret) is None  # the old one stops working at once
        assert check_secret(hospital.hospital_no, rotated) == hospital

    def test_a_check_of_a_hospital_without_an_address_is_refused_with_a_reason(self, hospital):
        hospital.endpoint_url = ""
        hospital.save()
        response = console().post(f"/admin/regional/hospital/{hospital.pk}/conformance/", follow=True)
        assert "未配置医院端接口地址或WSDL地址" in response.content.decode()
        assert not ConformanceRun.objects.exists()


@pytest.mark.django_db(transaction=True)
class ConformanceButtonTests:
    def test_the_button_runs_the_check_and_stores_a_row_per_check(self, public_url, make_hospital, his):
        hospital = make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        schedule = session(his, slots=3)
        client = console()
        response = client.post(
            f"/admin/regional/hospital/{hospital.pk}/conformance/",
            {"work_id": schedule.work_id, "work_date": schedule.work_date.isoformat()},
        )
        run = ConformanceRun.objects.get()
        assert response.status_code == 302 and response["Location"].endswith(f"/conformancerun/{run.pk}/change/")
        assert (run.status, run.total, run.passed, run.failed, run.skipped) == ("passed", 35, 35, 0, 0)
        assert list(run.checks.values_list("seq", flat=True)) == list(range(1, 36))
        page = client.get(response["Location"]).content.decode()
        assert "检查结果" in page and "查询/自动建档" in page and 'http-equiv="refresh"' not in page
        assert "诊疗卡列表查询（queryCardListInfo）" in page
        assert "3306XXXXXXXXXX0001" not in page
        history = client.get(f"/admin/regional/hospital/{hospital.pk}/change/").content.decode()
        assert f"/conformancerun/{run.pk}/change/" in history and "通过" in history
        listing = client.get("/admin/regional/hospital/").content.decode()
        assert f'/conformancerun/{run.pk}/change/">通过</a>' in listing and "启用" in listing
        assert circuit_for(hospital).state() == circuit.CLOSED

    def test_a_queued_run_page_refreshes_and_a_second_delivery_runs_nothing(self, public_url, make_hospital, his):
        hospital = make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        run = ConformanceRun.objects.create(hospital=hospital, endpoint=hospital.endpoint_url)
        page = console().get(f"/admin/regional/conformancerun/{run.pk}/change/").content.decode()
        assert 'http-equiv="refresh"' in page and "排队中" in page
        assert conformance_execute(run_id=run.pk).status == "passed"  # skips only: no test session given
        run.refresh_from_db()
        assert run.skipped > 0 and run.failed == 0
        count = ConformanceCheck.objects.filter(run=run).count()
        assert conformance_execute(run_id=run.pk) is None
        assert ConformanceCheck.objects.filter(run=run).count() == count

    def test_a_misbehaving_hospital_fails_with_its_failed_checks_named(self, public_url, make_hospital, his):
        from sandbox import services as sandbox
        from sandbox.models import SandboxHospital

        hospital = make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        schedule = session(his, slots=3)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_MALFORMED, operations=["PaymentNotice"])
        console().post(
            f"/admin/regional/hospital/{hospital.pk}/conformance/",
            {"work_id": schedule.work_id, "work_date": schedule.work_date.isoformat()},
        )
        run = ConformanceRun.objects.get()
        assert run.status == "failed" and run.failed > 0
        failed = run.checks.filter(result="失败")
        payments = failed.filter(operation="PaymentNotice", case="支付通知")
        assert payments and all("HospitalBadAnswer" in check.note for check in payments)
        assert not failed.filter(operation__in=["queryCardListInfo", "UnlockReg", "GetLineupDetailInfo"]).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class ConformanceWorkerTests:
    def test_a_real_worker_runs_the_queued_check_while_its_page_refreshes(
        self, celery_worker, public_url, make_hospital, his
    ):
        from tests.base import wait_for

        hospital = make_hospital("S001", endpoint_url=his_url(public_url, "S001"))
        client = console()
        response = client.post(f"/admin/regional/hospital/{hospital.pk}/conformance/")
        run = ConformanceRun.objects.get()
        assert response["Location"].endswith(f"/conformancerun/{run.pk}/change/")
        finished = wait_for(
            lambda: ConformanceRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(),
            timeout=60,
            message="the worker to finish the conformance run",
        )
        assert finished.status == "passed" and finished.total == finished.checks.count() > 0
        page = client.get(response["Location"]).content.decode()
        assert 'http-equiv="refresh"' not in page and "共" in page


@pytest.mark.django_db
class InterfaceHealthDashboardTests:
    def test_it_counts_a_hospitals_invalid_messages_apart_from_interface_failures(self, make_hospital):
        first = make_hospital("H0001", name="测试第一医院")
        for minutes in range(10):
            log(first, "synchronizedWorkInfo", ok=True, ms=10 * (minutes + 1), ago=minutes + 1)
        log(first, "synchronizedWorkInfo", ok=False, failure=MessageLog.Failure.INPUT)
        log(first, "synchronizedWorkInfo", ok=False, failure=MessageLog.Failure.INPUT)
        log(first, "synchronizedWorkInfo", ok=False, failure=MessageLog.Failure.PLATFORM)
        log(first, "confirmRegistration", ok=False, failure=MessageLog.Failure.REFUSED,
            direction=MessageLog.OUTBOUND, side="hospital")  # fmt: skip
        response = console().get(HEALTH, {"hours": 24})
        [health] = response.context["hospitals"]
        assert (health.name, health.code) == ("测试第一医院", "H0001")
        rows = {row.interface: row for row in health.rows}
        sync = rows["synchronizedWorkInfo"]
        assert (sync.calls, sync.failures, sync.invalid_input, sync.refused) == (13, 1, 2, 0)
        assert sync.p95_ms is not None and 90 <= sync.p95_ms <= 100
        assert rows["confirmRegistration"].failures == 0 and rows["confirmRegistration"].refused == 1
        page = response.content.decode()
        assert "医院排班信息（synchronizedWorkInfo）" in page and "<svg" in page

    def test_its_failure_link_opens_the_failing_messages_in_the_message_log(self, make_hospital):
        first = make_hospital("H0001")
        log(first, "HospitalInfo", ok=True)
        failing = log(first, "HospitalInfo", ok=False, failure=MessageLog.Failure.PLATFORM, transaction_id="TXFAIL")
        log(first, "HospitalInfo", ok=False, failure=MessageLog.Failure.INPUT, transaction_id="TXINPUT")
        client = console()
        [health] = client.get(HEALTH).context["hospitals"]
        [row] = health.rows
        listing = client.get(row.failures_url)
        assert listing.status_code == 200
        assert [entry.pk for entry in listing.context["cl"].result_list] == [failing.pk]
        invalid = client.get(row.invalid_url)
        assert [entry.transaction_id for entry in invalid.context["cl"].result_list] == ["TXINPUT"]

    def test_a_circuit_broken_hospital_is_shown_first_in_red_even_without_calls(self, make_hospital, settings):
        calm = make_hospital("H0001", name="测试第一医院")
        broken = make_hospital("H0002", name="测试第二医院")
        log(calm, "HospitalInfo", ok=True)
        breaker = circuit_for(broken)
        for _ in range(settings.HOSPITAL_CIRCUIT_FAILURES):
            breaker.record_failure()
        response = console().get(HEALTH, {"hours": 1})
        hospitals = response.context["hospitals"]
        assert [h.code for h in hospitals] == ["H0002", "H0001"]
        assert hospitals[0].circuit_label == "熔断中" and hospitals[1].circuit_label == "正常"
        page = response.content.decode()
        assert re.search(r'class="circuit-open">熔断中<', page)
        assert "熔断中：测试第二医院（H0002）" in page

    def test_the_window_selector_limits_the_figures(self, make_hospital):
        first = make_hospital("H0001")
        log(first, "HospitalInfo", ok=True, ago=30)
        log(first, "HospitalInfo", ok=True, ago=60 * 30)
        client = console()
        assert client.get(HEALTH, {"hours": 1}).context["hospitals"][0].calls == 1
        assert client.get(HEALTH, {"hours": 168}).context["hospitals"][0].calls == 2
        one_hospital = client.get(HEALTH, {"hours": 168, "hospital": first.pk})
        assert one_hospital.context["selected"] == first


@pytest.mark.django_db
class MessageLogAdminTests:
    def test_nobody_deletes_message_log_entries_not_even_a_superuser(self, admin_client, hospital):
        entry = log(hospital, "HospitalInfo", ok=True)
        assert admin_client.get(f"/admin/regional/messagelog/{entry.pk}/delete/").status_code in (403, 302)
        assert MessageLog.objects.filter(pk=entry.pk).exists()
        listing = admin_client.get("/admin/regional/messagelog/").content.decode()
        assert "delete_selected" not in listing

    def test_the_list_shows_directions_and_operations_in_chinese(self, hospital):
        log(hospital, "HospitalInfo", ok=True)
        log(hospital, "confirmRegistration", ok=False, failure=MessageLog.Failure.HOSPITAL,
            direction=MessageLog.OUTBOUND, side="hospital", error="调用医院接口confirmRegistration超时（10秒）" * 3)  # fmt: skip
        page = console().get("/admin/regional/messagelog/").content.decode()
        for text in ("医院→平台", "平台→医院", "机构信息（HospitalInfo）", "医院接口故障", "平台端接口"):
            assert text in page
        assert ">center<" not in page and ">hospital<" not in page

    def test_replayed_transactions_have_chinese_headers(self, hospital):
        from regional.models import InboundTransaction

        InboundTransaction.objects.create(
            hospital=hospital, transaction_id="T" * 40, interface="HospitalInfo", body_hash="0" * 64,
            response_text="<Response/>",
        )  # fmt: skip
        client = console()
        page = client.get("/admin/regional/inboundtransaction/").content.decode()
        for header in ("处理时间", "医院", "访问流水号", "接口"):
            assert f">{header}<" in page or f">{header}</a>" in page
        entry = InboundTransaction.objects.get()
        detail = client.get(f"/admin/regional/inboundtransaction/{entry.pk}/change/").content.decode()
        assert "报文摘要（SHA-256）" in detail and "Body hash" not in detail

    def test_the_periodic_tasks_are_listed_by_their_chinese_titles(self, settings):
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        every = IntervalSchedule.objects.create(every=30, period="seconds")
        PeriodicTask.objects.create(name="booking-expire-locks", task="booking.expire_locks", interval=every)
        page = console().get("/admin/django_celery_beat/periodictask/").content.decode()
        from config.admin import TASK_TITLES  # the titles live with the project's admin of beat

        assert TASK_TITLES["booking.expire_locks"] in page and "每 30 秒" in page
        assert "Scheduler" not in page and ">scheduler<" not in page.lower()
