"""Fetching bills: the HTTP adapter against the sandbox channel served over HTTP, and the nightly
task that django-celery-beat runs (its entry is in the settings' one beat schedule)."""

from __future__ import annotations

import gzip

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from reconciliation import services, tasks
from reconciliation.adapters import HttpAdapter, StatementUnavailable
from reconciliation.models import ReconciliationRun, Statement, StatementSource
from regional.env import env_clock
from tests.base import local as at
from tests.base import yesterday
from tests.factories import pay, refund, source

Run = ReconciliationRun


def a_day(hospital, pay_channel="alipay"):
    day = yesterday()
    payments = [pay(hospital, day=day, pay_channel=pay_channel, amount=f"{20 + i}.00") for i in range(6)]
    refund(payments[0], when=at(day, 22))
    return day


@pytest.fixture
def served(public_url):
    """The sandbox channel serving Alipay bills over HTTP, and a source that downloads them."""
    channel = source("alipay", adapter=StatementSource.HTTP, username="platform", merchant_id="2088000000000156")
    channel.set_secret("bill-secret-0001")
    channel.url = f"{public_url}/sandbox/pay/alipay/bill?date={{date}}"
    channel.sandbox_options = {"encoding": "gbk", "missing_payment": 1}
    channel.save()
    return channel


@pytest.mark.django_db(transaction=True)
class HttpAdapterTests:
    def test_a_bill_is_downloaded_imported_and_reconciled(self, hospital, served):
        day = a_day(hospital)
        statement = services.statement_fetch(source=served, bill_date=day)
        assert (statement.origin, statement.layout, statement.encoding) == ("http", "alipay", "GBK")
        assert statement.account == "2088000000000156" and statement.payment_count == 5
        assert statement.filename.endswith(f"_{day:%Y%m%d}_业务明细.csv")
        served.refresh_from_db()
        assert served.last_fetched_at is not None and served.last_error == ""
        run = services.reconciliation_run(date_from=day, date_to=day, pay_channel="alipay")
        assert run.result == Run.Result.DISCREPANCIES and run.discrepancy_count == 1

    def test_the_channel_refuses_wrong_credentials_and_bills_not_yet_made(self, hospital, served):
        url = served.url.format(date=f"{yesterday():%Y%m%d}")
        refused = requests.get(url, auth=("platform", "wrong"), timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        assert requests.get(url, timeout=10).status_code == 401
        with pytest.raises(StatementUnavailable, match="尚未生成.*HTTP 404"):
            services.statement_fetch(source=served, bill_date=timezone.localdate())
        served.refresh_from_db()
        assert "HTTP 404" in served.last_error and not Statement.objects.exists()

    def test_a_refusal_by_the_gateway_names_the_credentials(self, served, monkeypatch):
        class Refused:
            status_code, headers = 401, {}

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        # Only the transport is replaced, to stand for a gateway that holds other credentials.
        monkeypatch.setattr("reconciliation.adapters.requests.get", lambda *a, **k: Refused())
        with pytest.raises(StatementUnavailable, match="拒绝了下载请求（HTTP 401），请检查用户名和密钥"):
            services.statement_fetch(source=served, bill_date=yesterday())

    def test_a_gzip_body_is_unpacked(self, hospital, served, live_server, monkeypatch):
        day = a_day(hospital)
        plain, _ = HttpAdapter().fetch(served, day)
        body = plain.read()
        packed = gzip.compress(body)

        class Packed:
            status_code, headers = 200, {"Content-Disposition": 'attachment; filename="bill.csv.gz"'}

            def iter_content(self, size):
                yield packed

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        # Only the transport is replaced, to hand over what a gateway with tar_type=GZIP sends.
        monkeypatch.setattr("reconciliation.adapters.requests.get", lambda *a, **k: Packed())
        file, name = HttpAdapter().fetch(served, day)
        assert file.read() == body and name == "bill.csv"


@pytest.mark.django_db
class NightlyScheduleTests:
    def test_the_schedule_exists_and_staff_can_change_its_time(self, monkeypatch):
        from django_celery_beat.schedulers import ModelEntry

        from config.celery import app

        # What beat's DatabaseScheduler does at start (update_from_dict): each settings entry into the tables.
        for name, entry in app.conf.beat_schedule.items():
            ModelEntry.from_entry(name, app=app, **entry)
        # One row: the entry took over the row of migration 0002 instead of adding a second night.
        task = PeriodicTask.objects.get(task=tasks.NIGHTLY)
        assert task.enabled and (task.crontab.hour, task.crontab.minute) == ("10", "30")
        assert str(task.crontab.timezone) == "Asia/Shanghai"
        # Its time is set by the environment (RECONCILIATION_NIGHTLY_AT), and a bad value is refused.
        monkeypatch.setenv("RECONCILIATION_NIGHTLY_AT", "11:05")
        assert env_clock("RECONCILIATION_NIGHTLY_AT", "10:30") == (11, 5)
        monkeypatch.setenv("RECONCILIATION_NIGHTLY_AT", "25:00")
        with pytest.raises(ImproperlyConfigured, match="HH:MM"):
            env_clock("RECONCILIATION_NIGHTLY_AT", "10:30")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("public_url")
class NightlyTests:
    def test_the_nightly_task_fetches_yesterdays_bills_and_reconciles(self, hospital):
        day = a_day(hospital, "wepay")
        a_day(hospital, "alipay")
        source("wepay", adapter=StatementSource.SANDBOX)
        source("alipay", adapter=StatementSource.SANDBOX, sandbox_options={"extra_payment": 1})
        outcome = tasks.nightly_reconciliation.apply().get()
        run = Run.objects.get(pk=outcome["run"])
        assert outcome["fetched"] == {"wepay": "ok", "alipay": "ok"}
        assert (run.trigger, run.date_from, run.date_to) == (Run.Trigger.SCHEDULE, day, day)
        assert run.result == Run.Result.DISCREPANCIES and run.discrepancy_count == 1
        # Running the night again is harmless: the same bills, the same single difference.
        again = tasks.nightly_reconciliation.apply(kwargs={"day": day.isoformat()}).get()
        assert Run.objects.get(pk=again["run"]).discrepancy_count == 1
        assert Statement.objects.count() == 2

    def test_a_source_that_fails_is_reported_and_its_day_left_incomplete(self, hospital):
        a_day(hospital, "wepay")
        source("wepay", adapter=StatementSource.HTTP, url="http://127.0.0.1:9/bill?date={date}", timeout_seconds=2)
        outcome = tasks.nightly_reconciliation.apply().get()
        assert "无法连接" in outcome["fetched"]["wepay"]
        run = Run.objects.get(pk=outcome["run"])
        assert run.result == Run.Result.INCOMPLETE and "微信支付" in run.missing_statements
