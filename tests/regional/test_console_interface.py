"""Issue 13, the interface team's day in the browser (Chromium, 1366×768, an English browser):
onboard a hospital, issue its secret and see it once, point it at the sandbox hospital's WSDL, run
its conformance check from the button and read the result table; open the interface-health
dashboard and see a circuit-broken hospital marked. No English on the way."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings

from regional.auth import check_secret
from regional.hospital_client import circuit_for
from regional.messages.catalog import ALL_INTERFACES
from regional.models import ConformanceRun, Hospital
from tests.base import his_url, hospital_make
from tests.console import assert_no_english, english_page, login, shot  # noqa: F401 - english_page is a fixture
from tests.factories import session
from tests.regional.test_admin_interface import role_staff

# Operation names are the specification's own identifiers, shown next to their Chinese titles; the
# SOAP settings name the products and headers staff configure (.NET asmx, JAX-WS/CXF, SOAPAction).
OPERATIONS = {part for iface in ALL_INTERFACES for part in re.findall(r"[A-Za-z]+", iface.name)}  # referral-query
ELEMENTS = set()  # element names of the messages, quoted in the check's notes (WorkId, WorkFlowStatus)


def _elements(nodes) -> None:
    for node in nodes:
        ELEMENTS.add(node.name)
        _elements(getattr(node, "fields", ()))


for _iface in ALL_INTERFACES:
    _elements(_iface.request.fields)
    _elements(_iface.response.fields)


def identifier_words(text: str) -> set[str]:
    """The letters of identifiers (tokens holding a digit: WF2026…, NOSUCH3A…, masked JZ***0001) and of URLs in `text`."""
    words = set()
    for token in re.findall(r"[A-Za-z0-9_*-]*\d[A-Za-z0-9_*-]*", text) + re.findall(r"https?://\S+", text):
        words.update(re.findall(r"[A-Za-z]+", token))
    return words


SOAP_PRODUCTS = {"NET", "asmx", "Spyne", "JAX", "WS", "CXF", "Java", "SOAPAction", "qualified", "unqualified", "tempuri",
                 "org", "http", "xmlStr", "CIDR"}  # fmt: skip


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class InterfaceTeamConsoleTests:
    def test_the_interface_team_onboards_checks_and_watches_a_hospital(self, english_page, public_url, sandbox_his):  # noqa: F811
        page = english_page
        user = role_staff("interface", "接口运维一")  # a Chinese name: the header greets the user by it
        schedule = session(sandbox_his, slots=3)
        login(page, public_url, user, next_path="/admin/regional/hospital/add/")

        # Onboard: the code, the name and the interface settings, in Chinese fieldsets.
        page.goto(f"{public_url}/admin/regional/hospital/add/")
        assert_no_english(page, allowed=OPERATIONS | SOAP_PRODUCTS)
        page.fill("#id_hospital_no", "S001")
        page.fill("#id_name", "测试沙箱医院")
        page.fill("#id_wsdl_url", his_url(public_url, "S001") + "?wsdl")
        page.click("input[name=_continue]")
        page.wait_for_load_state("load")
        hospital = Hospital.objects.get(hospital_no="S001")
        assert f"/admin/regional/hospital/{hospital.pk}/change/" in page.url
        assert page.locator("#issue-secret").input_value() == "签发接入密钥"

        # Issue the secret: shown on its own page, once.
        page.click("#issue-secret")
        page.wait_for_load_state("load")
        secret = page.locator("code.issued-secret").inner_text().strip()
        assert check_secret("S001", secret) == hospital
        assert_no_english(page, allowed=set(re.findall(r"[A-Za-z]+", secret)))  # random letters, not words
        shot(page, "interface-secret")
        page.click("#secret-back")
        page.wait_for_load_state("load")
        assert secret not in page.content()
        assert page.locator("#issue-secret").input_value() == "重新生成接入密钥"
        assert_no_english(page, allowed=OPERATIONS | SOAP_PRODUCTS | identifier_words(page.inner_text("body")))
        assert page_width(page) <= 1366
        shot(page, "interface-onboard")

        # The conformance check from the button, with the hospital's test session.
        page.fill("#id_work_id", schedule.work_id)
        page.fill("#id_work_date", schedule.work_date.isoformat())
        page.click("#run-check")
        page.wait_for_load_state("load")
        # The page refreshes itself while the run is queued or running (with a worker it takes a while).
        page.wait_for_selector("#run-pending", state="detached", timeout=60_000)
        run = ConformanceRun.objects.get()
        assert run.status == ConformanceRun.Status.PASSED, list(run.checks.values_list("case", "note"))
        rows = page.locator("#conformance-result tbody tr")
        assert rows.count() == run.total == 35
        assert "通过" in page.locator("#conformance-result").inner_text()
        assert "共35项：通过35，失败0，跳过0" in page.inner_text("body")
        assert_no_english(page, allowed=OPERATIONS | ELEMENTS | identifier_words(page.inner_text("body")))
        assert page_width(page) <= 1366
        shot(page, "interface-check")
        page.click("#back-to-hospital")
        page.wait_for_load_state("load")
        assert page.locator("#conformance-history tbody tr").count() == 1

        # The morning dashboard: a circuit-broken hospital in red, with the words 熔断中.
        broken = hospital_make("H0002", name="测试第二医院")
        for _ in range(django_settings.HOSPITAL_CIRCUIT_FAILURES):
            circuit_for(broken).record_failure()
        page.goto(f"{public_url}/admin/regional/messagelog/health/?hours=24")
        first = page.locator("tr.hospital-row").first
        assert "测试第二医院（H0002）" in first.inner_text() and "熔断中" in first.inner_text()
        colour = first.locator("td.circuit-open").evaluate("el => getComputedStyle(el).color")
        assert colour == "rgb(186, 33, 33)"
        sandbox_row = page.locator("tr.hospital-row[data-hospital=S001]")
        assert "测试沙箱医院（S001）" in sandbox_row.inner_text() and "正常" in sandbox_row.inner_text()
        assert page.locator("svg.health-trend").count() == 1
        assert_no_english(page, allowed=OPERATIONS | ELEMENTS)
        assert page_width(page) <= 1366
        shot(page, "interface-health")

        # The message log of those calls: fits the screen with 成功, 耗时, 错误 in view.
        page.goto(f"{public_url}/admin/regional/messagelog/")
        headers = page.locator("#result_list thead th").all_inner_texts()
        for header in ("成功", "耗时(毫秒)", "错误"):
            assert any(header in text for text in headers), headers
        error_header = page.locator("#result_list thead th.column-short_error")
        assert error_header.evaluate("el => el.getBoundingClientRect().right") <= 1366
        # Shortened cells are data (transaction ids, the hospital's error texts cut mid-word), their
        # full value on hover; everything else on the page must be Chinese.
        data = " ".join(
            page.eval_on_selector_all("#result_list td span[title]", "els => els.map(e => e.title + ' ' + e.innerText)")
        )
        assert_no_english(page, allowed=OPERATIONS | ELEMENTS | set(re.findall(r"[A-Za-z]+", data)))

        # The periodic tasks of the beat schedule, each by its Chinese title.
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
        for name, entry in django_settings.CELERY_BEAT_SCHEDULE.items():
            # update: reconciliation's migration already made the nightly row, as beat would find it
            PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": entry["task"], "interval": every, "crontab": None}
            )
        page.goto(f"{public_url}/admin/django_celery_beat/periodictask/")
        listing = page.inner_text("#result_list")
        from config.admin import TASK_TITLES

        for entry in django_settings.CELERY_BEAT_SCHEDULE.values():
            assert TASK_TITLES[entry["task"]] in listing
        # The entries' keys and task names are the schedule's identifiers (booking-sweep, reconciliation.nightly).
        identifiers = " ".join(
            f"{name} {entry['task']}" for name, entry in django_settings.CELERY_BEAT_SCHEDULE.items()
        )
        assert_no_english(page, allowed=set(re.findall(r"[A-Za-z]+", identifiers)))
