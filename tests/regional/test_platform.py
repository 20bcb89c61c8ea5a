"""Personal data handling, health, commands, admin pages and production settings."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from regional import pii
from regional.health import beat_interval
from regional.messagelog import masked_xml
from regional.messages.catalog import CONFIRM_REGISTRATION
from regional.models import HospitalCredential, MessageLog

FAKE_ID = "3306XXXXXXXXXX1234"
FAKE_PHONE = "13400001234"


class PersonalDataTests:
    def test_values_are_masked_as_the_contract_shows(self):
        assert pii.mask("330600000000001234", "id") == "3306**********1234"
        assert pii.mask(FAKE_PHONE, "phone") == "134****1234"
        assert pii.mask("张三", "name") == "张**"

    def test_a_masked_name_does_not_give_its_length_away(self):
        assert pii.mask("并二", "name") == pii.mask("并二三", "name") == pii.mask("并二三四", "name") == "并**"
        assert pii.mask("并", "name") == "**"  # a one-character name is not shown at all

    def test_encryption_round_trips_and_rotates(self, settings):
        token = pii.encrypt(FAKE_ID)
        assert FAKE_ID not in token and pii.decrypt(token) == FAKE_ID
        from cryptography.fernet import Fernet

        settings.PII_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.PII_ENCRYPTION_KEYS]
        assert pii.decrypt(token) == FAKE_ID
        rotated = pii.rotate(token)
        settings.PII_ENCRYPTION_KEYS = settings.PII_ENCRYPTION_KEYS[:1]
        assert pii.decrypt(rotated) == FAKE_ID

    def test_lookup_hashes_ignore_case_and_spaces(self):
        assert pii.lookup_hash("3306xxxxxxxxxx1234 ") == pii.lookup_hash(FAKE_ID)
        assert pii.lookup_hash(FAKE_ID) != pii.lookup_hash("3306XXXXXXXXXX1235")

    def test_the_message_log_form_of_a_message_masks_every_personal_field(self):
        data = CONFIRM_REGISTRATION.request.example(
            {"IDCode": "330600000000001234", "TelephoneNo": FAKE_PHONE, "Name": "测试患者"}
        )
        text = masked_xml(CONFIRM_REGISTRATION.request.render(data), CONFIRM_REGISTRATION.request)
        assert "330600000000001234" not in text and FAKE_PHONE not in text and "测试患者" not in text
        assert "<IDCode>3306**********1234</IDCode>" in text and "<TelephoneNo>134****1234</TelephoneNo>" in text

    def test_log_records_are_masked_whatever_logged_them(self):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        from regional.logging import MaskPersonalDataFilter

        handler.addFilter(MaskPersonalDataFilter())
        logger = logging.getLogger("test.pii")
        logger.addHandler(handler)
        try:
            logger.warning("patient %s phone %s", "330600000000001234", FAKE_PHONE)
        finally:
            logger.removeHandler(handler)
        assert "330600000000001234" not in stream.getvalue() and FAKE_PHONE not in stream.getvalue()


@pytest.mark.django_db
class HealthTests:
    @pytest.fixture(autouse=True)
    def _fresh_report(self, settings):
        settings.HEALTHZ_CACHE_SECONDS = 0  # each call checks again (the cache is CheapHealthTests')

    def test_healthz_reports_database_broker_workers_and_beat(self, client):
        response = client.get("/healthz")
        body = response.json()
        assert response.status_code == 200
        assert body["database"]["ok"] and body["broker"]["kind"] == "in-process"
        # Nothing has ever run the schedule: periodic work is not happening, and /healthz says so.
        assert body["beat"]["ok"] is False and body["status"] == "degraded"

    def test_healthz_is_ok_while_beat_ticks_and_degraded_after_two_intervals(self, client):
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
        task = PeriodicTask.objects.create(name="测试周期任务", task="booking.sweep", interval=every)
        interval = beat_interval()
        PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now() - dt.timedelta(seconds=interval / 2))
        body = client.get("/healthz").json()
        assert body["status"] == "ok" and body["beat"]["ok"] and body["beat"]["last_tick_seconds_ago"] >= interval / 2
        PeriodicTask.objects.filter(pk=task.pk).update(
            last_run_at=timezone.now() - dt.timedelta(seconds=interval * 2 + 5)
        )
        body = client.get("/healthz").json()
        assert body["status"] == "degraded" and body["beat"]["ok"] is False

    def test_healthz_reports_redis_and_no_workers_when_none_run(self, client, settings, redis_url):
        settings.REDIS_URL = redis_url
        body = client.get("/healthz").json()
        assert body["broker"]["ok"] is True and body["broker"]["kind"] == "redis"
        assert body["workers"]["ok"] is False and body["status"] == "degraded"

    def test_healthz_says_down_when_the_broker_is_unreachable(self, client, settings):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["broker"]["ok"] is False


@pytest.mark.django_db(transaction=True)
class CheapHealthTests:
    """Issue 14 item 9: 24 clients polling /healthz cost one check per interval, not one each."""

    def test_concurrent_polls_are_answered_from_one_recent_check(self, live_server, settings, redis_url):
        import time
        from concurrent.futures import ThreadPoolExecutor

        import requests

        settings.REDIS_URL = redis_url  # no worker runs: a full check waits 0.5 s for pings
        settings.HEALTHZ_CACHE_SECONDS = 30
        first = requests.get(f"{live_server.url}/healthz", timeout=10)
        assert first.status_code == 200 and first.json()["status"] in ("ok", "degraded")  # a session worker may run

        def poll(_):
            started = time.monotonic()
            body = requests.get(f"{live_server.url}/healthz", timeout=10).json()
            return time.monotonic() - started, body["checked_seconds_ago"]

        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(poll, range(96)))
        durations = sorted(d for d, _ in results)
        assert durations[len(durations) // 2] < 0.25, durations  # median: no 0.5 s ping in the path
        assert all(age >= 0 for _, age in results)


@pytest.mark.django_db
class OnboardingCommandTests:
    def test_hospital_credentials_creates_the_hospital_and_prints_a_secret_once(self):
        out = io.StringIO()
        call_command("hospital_credentials", "H0100", "--name", "测试医院", "--allow-ip", "10.0.0.0/24", stdout=out)
        secret = out.getvalue().strip().splitlines()[-1]
        credential = HospitalCredential.objects.get(hospital__hospital_no="H0100")
        assert credential.check_secret(secret) and credential.allows_address("10.0.0.7")
        assert not credential.allows_address("10.0.1.7")
        again = io.StringIO()
        call_command("hospital_credentials", "H0100", "--endpoint", "http://127.0.0.1:9/ws", stdout=again)
        assert secret not in again.getvalue() and HospitalCredential.objects.get(pk=credential.pk).check_secret(secret)

    def test_a_bad_network_is_refused_and_nothing_is_saved(self):
        from django.core.management.base import CommandError

        with pytest.raises(CommandError):
            call_command("hospital_credentials", "H0101", "--allow-ip", "not-a-network", stdout=io.StringIO())
        assert not HospitalCredential.objects.filter(hospital__hospital_no="H0101").exists()

    def test_channel_token_issues_a_token_that_replaces_the_old_one(self):
        from booking.models import Channel, hash_token

        first, second = io.StringIO(), io.StringIO()
        call_command("channel_token", "JKMZWX", "--name", "微信", stdout=first)
        call_command("channel_token", "JKMZWX", stdout=second)
        token = second.getvalue().strip().splitlines()[-1]
        channel = Channel.objects.get(code="JKMZWX")
        assert channel.name == "微信" and channel.token_hash == hash_token(token)
        assert first.getvalue().strip().splitlines()[-1] != token


@pytest.mark.django_db
class AdminTests:
    @pytest.fixture
    def staff(self, django_user_model):
        user = django_user_model.objects.create_superuser("staff", password="x-staff-pass-2026")
        c = Client()
        c.force_login(user)
        return c

    def test_the_admin_pages_of_master_data_and_the_message_log_open(self, staff, hospital, center_client_unused=None):
        from regional import services

        services.doctors_apply(
            hospital=hospital,
            records=[
                {"DoctorId": "D1", "DoctorName": "甲医生", "DepartmentId": "K1", "DepartmentName": "内科", "IsZJ": "1"}
            ],
        )
        MessageLog.objects.create(
            direction="in", side="center", interface="DoctorInfo", hospital=hospital, hospital_no="H0001", ok=True,
            request_text="<Request><IDCode>3306**********1234</IDCode></Request>",
        )  # fmt: skip
        for url in (
            "/admin/",
            "/admin/regional/hospital/",
            f"/admin/regional/hospital/{hospital.pk}/change/",
            "/admin/regional/department/",
            "/admin/regional/department/?tree=root",
            "/admin/regional/doctor/?q=JYS",
            "/admin/regional/messagelog/",
            f"/admin/regional/messagelog/{MessageLog.objects.get().pk}/change/",
            "/admin/regional/messagelog/health/",
        ):
            response = staff.get(url)
            assert response.status_code == 200, url
        assert "甲医生" in staff.get("/admin/regional/doctor/?q=JYS").content.decode()
        health = staff.get("/admin/regional/messagelog/health/").content.decode()
        assert "H0001" in health and "接口健康" in health

    def test_the_front_page_lists_the_entry_points_and_hospitals(self, client, hospital):
        page = client.get("/").content.decode()
        assert "/ws/center?wsdl" in page and "/admin/" in page and "测试第一医院" in page

    def test_the_interface_catalogue_lists_every_interface(self, client):
        page = client.get("/interfaces/").content.decode()
        for name in (
            "synchronizedWorkInfo",
            "confirmRegistration",
            "queryCardListInfo",
            "referral-apply",
            "HospitalInfo",
        ):
            assert name in page

    def test_the_interface_catalogue_has_a_table_of_contents_with_an_anchor_per_interface(self, client):
        from lxml import html

        from regional.messages.catalog import ALL_INTERFACES

        doc = html.fromstring(client.get("/interfaces/").content.decode())
        targets = [a.get("href")[1:] for a in doc.xpath("//nav[@class='toc']//li/a")]
        assert len(targets) == len(ALL_INTERFACES) == len(set(targets))
        for target in targets:
            # Each link targets a collapsed section (it opens as the link's target), titled by a link to itself.
            assert doc.xpath(f"//section[@class='iface'][@id='{target}']/h3/a[@href='#{target}']"), target

    def test_the_favicon_is_served_in_every_mode(self, client, settings):
        settings.DEBUG = False
        response = client.get("/favicon.ico")
        assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
        assert response.content[:4] == b"\x00\x00\x01\x00" and "max-age" in response["Cache-Control"]
        assert client.head("/favicon.ico").status_code == 200


class ProductionSettingsTests:
    def test_check_deploy_is_clean_with_production_settings(self, tmp_path):
        env = {
            **os.environ,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "p" * 20 + "-production-secret-key-for-the-check-0123456789",
            "DJANGO_ALLOWED_HOSTS": "platform.example.org",
            "DJANGO_SECURE_SSL_REDIRECT": "1",
            "REGIONAL_VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


class BeatScheduleTests:
    def test_every_periodic_entry_names_a_registered_task(self):
        from config.celery import app

        app.loader.import_default_modules()  # autodiscovery, as the worker and beat do at start
        entries = {name: entry["task"] for name, entry in app.conf.beat_schedule.items()}
        assert set(entries) >= {"booking-sweep", "referral-overdue-scan"}
        assert {name: task for name, task in entries.items() if task not in app.tasks} == {}

    def test_the_nightly_time_is_read_from_the_environment(self, tmp_path):
        env = {**os.environ, "RECONCILIATION_NIGHTLY_AT": "07:45", "REGIONAL_VAR_DIR": str(tmp_path)}
        code = "from django.conf import settings; e = settings.CELERY_BEAT_SCHEDULE[settings.RECONCILIATION_NIGHTLY_NAME]; "
        code += "print(sorted(e['schedule'].hour), sorted(e['schedule'].minute))"
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.stdout.strip() == "[7] [45]", result.stderr


@pytest.mark.django_db
class AuditTests:
    def test_an_admin_change_is_recorded_with_the_values_before_and_after(self, hospital, django_user_model):
        from regional.models import AuditEntry

        user = django_user_model.objects.create_superuser("auditor", password="x-audit-pass-2026")
        c = Client()
        c.force_login(user)
        url = f"/admin/regional/hospital/{hospital.pk}/change/"
        form = {
            "endpoint_url": "http://127.0.0.1:9/his/ws", "wsdl_url": "", "soap_namespace": "", "soap_part_name": "xml",
            "soap_part_form": "qualified", "soap_action_style": "operation", "soap_version": "1.1", "soap_encoding": "UTF-8", "interface_version": "2.3",
            "credential-TOTAL_FORMS": "1", "credential-INITIAL_FORMS": "1", "credential-MIN_NUM_FORMS": "0",
            "credential-MAX_NUM_FORMS": "1", "credential-0-id": str(hospital.credential.pk),
            "credential-0-hospital": str(hospital.pk), "credential-0-is_active": "on",
            "credential-0-allowed_networks": "", "_save": "保存",
        }  # fmt: skip
        response = c.post(url, form)
        assert response.status_code == 302, response.content.decode()[:2000]
        entry = AuditEntry.objects.get(model="regional.Hospital", object_id=str(hospital.pk))
        assert entry.actor == "auditor" and entry.action == "修改"
        assert entry.before["interface_version"] == "2.4" and entry.after["interface_version"] == "2.3"
        assert entry.after["endpoint_url"] == "http://127.0.0.1:9/his/ws"
        assert c.get("/admin/regional/auditentry/").status_code == 200


class LeakCheckTests:
    def test_the_suites_leak_check_finds_unmasked_numbers_and_passes_masked_ones(self):
        from tests.pii_scan import LEAKS

        assert LEAKS.search("身份证 330600000000001234 已锁号")
        assert LEAKS.search("<IDCode>3306XXXXXXXXXX1234</IDCode>")
        from tests.base import fake_id, masked_id

        assert LEAKS.search(f"<UserCardNo>{fake_id(1234)}</UserCardNo>")  # the suite's own fictitious numbers
        assert LEAKS.search(f"sfzh={fake_id(2).lower()}")  # ends in x
        assert not LEAKS.search(masked_id(1234))
        assert LEAKS.search("phone=13400001234;")
        assert not LEAKS.search("3306**********1234 134****1234 WF20261126000001 order 2026112600000123")
