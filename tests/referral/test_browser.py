"""The doctors' pages in headless Chromium (Playwright, the system's /usr/bin/chromium), opened
from real servlet answers over HTTP, at the 1366×768 of a HIS workstation. Screenshots go to
artifacts/ (gitignored)."""

from __future__ import annotations

import os
import pathlib

import pytest
import requests

from referral import services
from referral.models import Referral
from tests.base import RECEIVER_NO, SECRET, SENDER_NO, SERVLET, answer, drop_dead_connections, query_xml, start_xml
from tests.services import MISSING


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


pytestmark = pytest.mark.usefixtures("fresh_state")  # clean caches, tasks in process

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "artifacts"
VIEWPORT = {"width": 1366, "height": 768}
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    """The system Chromium, or skip (fail with REQUIRE_SERVICES=1) with a SERVICE-MISSING reason."""
    reason = ""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{MISSING}: chromium: {CHROMIUM} 不存在（请安装 Debian 的 chromium 软件包）"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = f"{MISSING}: chromium: 未安装 playwright（pip install -r requirements.txt）"
    if not reason:
        return CHROMIUM
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def page(monkeypatch, settings):
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CSRF_COOKIE_SECURE = False  # the live server speaks plain HTTP
    settings.SESSION_COOKIE_SECURE = False
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
            drop_dead_connections()
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def call(public_url: str, body: str, hospital_no: str):
    response = requests.post(
        public_url + SERVLET,
        data=body.encode("utf-8"),
        headers={"Content-Type": "text/xml; charset=UTF-8"},
        auth=(hospital_no, SECRET),
        timeout=10,
    )
    return answer(response.status_code, response.headers["Content-Type"], response.content)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class DoctorPagesInBrowserTests:
    def test_the_sending_doctor_fills_the_form_and_the_receiving_doctor_accepts(
        self, page, public_url, sender, receiver
    ):
        started = call(public_url, start_xml(), SENDER_NO)
        assert started.result == "true", started.message
        page.goto(f"{public_url}/referral/referral/his.html?{started.parm}")
        assert page.title().startswith("转诊申请单")
        assert page.locator("#patient").inner_text().count("张三") == 1

        # Inline validation first: nothing chosen.
        page.fill("#id_purpose", "")
        page.click("#submit-referral")
        assert page.locator(".errorlist").first.is_visible()
        assert "请选择转入医院" in page.content() and "请填写转诊目的" in page.content()

        # Search the hospital by pinyin initials, then the department by pinyin.
        page.fill("#hospital-q", "csde")
        assert page.locator("#hospital option:not([hidden])").count() == 1
        page.select_option("#hospital", RECEIVER_NO)
        # Locator waits, not wait_for_function: the page's CSP forbids the eval that one would need.
        expect(page.locator("#department option[value]")).to_have_count(3)
        page.fill("#department-q", "xxg")
        expect(page.locator("#department option")).to_have_count(1)
        page.select_option("#department", "K01")
        page.check("input[name=urgency][value='1']")
        page.fill("#id_purpose", "高血压急症，需上级医院进一步诊治")
        page.fill("#id_notes", "已口服硝苯地平")
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
        page.screenshot(path=str(ARTIFACTS / "referral-his.png"), full_page=True)
        page.click("#submit-referral")
        page.wait_for_selector("text=转诊申请已提交")
        assert page.locator("#status").inner_text() == "待接收"
        page.screenshot(path=str(ARTIFACTS / "referral-his-submitted.png"), full_page=True)
        page.emulate_media(media="print")
        assert page.locator("#slip").is_visible() and not page.locator("header.bar").is_visible()
        page.emulate_media(media="screen")

        referral = Referral.objects.get()
        assert (referral.status, referral.receiving_department.department_id, referral.urgency) == (
            "submitted",
            "K01",
            "1",
        )
        assert referral.notes == "已口服硝苯地平"

        found = call(public_url, query_xml(), RECEIVER_NO)
        assert found.result == "true", found.message
        page.goto(f"{public_url}/referral/referral/znts.html?{found.parm}")
        assert page.title().startswith("转诊通知")
        slip = page.locator("#slip").inner_text()
        assert "张三" in slip and "高血压急症" in slip and "上转" in slip
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
        page.screenshot(path=str(ARTIFACTS / "referral-znts.png"), full_page=True)
        page.fill("#id_accept-note", "请于明日8:00至心血管内科门诊")
        page.click("#accept")
        page.wait_for_selector("text=已接收转诊")
        assert page.locator("#status").inner_text() == "已接收"
        page.screenshot(path=str(ARTIFACTS / "referral-znts-accepted.png"), full_page=True)
        referral.refresh_from_db()
        assert referral.status == "accepted" and referral.accept_note == "请于明日8:00至心血管内科门诊"
        assert [t.to_status for t in referral.transitions.all()] == ["draft", "submitted", "accepted"]

    def test_the_receiving_doctor_accepts_and_books_a_session(self, page, public_url, links, pushed):
        schedule = pushed(slots=3)
        page.goto(public_url + links[1])
        assert page.locator("#schedule-none").is_checked()
        page.check(f"input[name='accept-schedule'][value='{schedule.work_id}']")
        page.fill("#id_accept-note", "请于明日8:00至心血管内科门诊")
        page.click("#accept")
        page.wait_for_selector("text=已为患者预约挂号")
        order = Referral.objects.get().booking_order
        assert order is not None and order.status == "1"
        assert order.order_no in page.locator("#booking-order").inner_text()
        page.screenshot(path=str(ARTIFACTS / "referral-znts-booked.png"), full_page=True)

    def test_an_expired_link_shows_a_friendly_page(self, page, public_url, sender, receiver):
        started = call(public_url, start_xml(), SENDER_NO)
        Referral.objects.get().accesses.update(expires_at="2000-01-01T00:00:00Z")
        response = page.goto(f"{public_url}/referral/referral/his.html?{started.parm}")
        assert response.status == 410
        assert "转诊单链接已过期" in page.content()

    def test_staff_see_the_statistics_table_and_chart(self, page, public_url, sender, receiver, admin_user):
        for order_id in ("S1", "S2"):
            started = call(public_url, start_xml(orderid=order_id), SENDER_NO)
            assert started.result == "true"
            referral = Referral.objects.get(order_id=order_id)
            services.referral_submit(
                referral=referral,
                actor=services.Actor.doctor(sender),
                receiving_hospital=receiver,
                receiving_department=receiver.departments.first(),
                urgency="2",
                purpose="转诊",
            )
        page.goto(f"{public_url}/admin/login/?next=/admin/referral/referral/statistics/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        page.wait_for_selector("#stats-table")
        assert "测试第二人民医院" in page.locator("#stats-table").inner_text()
        assert page.locator("#chart .bar.sent").count() == 1
        page.screenshot(path=str(ARTIFACTS / "referral-statistics.png"), full_page=True)
