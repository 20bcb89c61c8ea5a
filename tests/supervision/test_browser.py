"""The commission's dashboard in headless Chromium (Playwright, the system's /usr/bin/chromium) as a
member of the commission's role: the region, one hospital, the records behind one figure and the
printable report. Screenshots go to artifacts/ (gitignored)."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone

from tests.referral.test_browser import ARTIFACTS, VIEWPORT, page  # noqa: F401  (Chromium page fixture)
from tests.supervision.support import build_month

PASSWORD = "commission-test-password-1"  # noqa: S105 - a throwaway test account


def commission_role() -> Group:
    """The role as migration 0002 creates it (run again: a transactional test's flush removes it)."""
    from django.apps import apps

    migration = importlib.import_module("supervision.migrations.0002_commission_role")
    migration.create_role(apps, None)
    return Group.objects.get(name=migration.GROUP)


@pytest.fixture
def inspector(db) -> User:
    """A staff member of the health commission: in the commission's role, nothing else."""
    user = User.objects.create_user("inspector", password=PASSWORD, is_staff=True)
    user.groups.add(commission_role())
    return user


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class DashboardInBrowserTests:
    def test_the_commission_opens_the_dashboard_and_drills_into_a_figure(
        self, page, public_url, region, api, other_api, client, post, inspector  # noqa: F811
    ):  # fmt: skip
        build_month(region, api, other_api, client, post)
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        call_command("supervision_backfill", "--from", f"{tomorrow - dt.timedelta(days=4)}", "--to", f"{tomorrow}")
        month = f"{tomorrow:%Y-%m}"

        page.goto(f"{public_url}/admin/login/?next=/admin/")
        page.fill("#id_username", "inspector")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("text=监管指标看板")
        page.click("text=监管指标看板")
        page.wait_for_selector("#sv-indicators")
        page.goto(f"{public_url}/admin/supervision/dashboard/?grain=month&period={month}")
        table = page.locator("#sv-indicators")
        assert "预约成功率" in table.inner_text() and "医院确认锁号的次数" in table.inner_text()
        assert page.locator("#sv-indicators tr[data-code=bookings] a").inner_text() == "9"
        assert page.locator("svg.sv-chart").count() == 4  # two trends, the ranking, the referral flow
        assert "微信公众号（JKMZWX）" in page.locator("#sv-channels").inner_text()
        page.screenshot(path=str(ARTIFACTS / "supervision-dashboard.png"), full_page=True)

        # One hospital: its departments and doctors.
        page.select_option("select[name=hospital]", label="测试市第一人民医院")
        page.click("#sv-period button[type=submit]")
        page.wait_for_selector("text=各科室")
        assert page.locator("#sv-indicators tr[data-code=visit_rate] a").inner_text() == "75.0%"
        page.screenshot(path=str(ARTIFACTS / "supervision-hospital.png"), full_page=True)

        # Drill into 履约率: the three orders the hospital reported as seen (o1, o2, the referral's).
        page.click("#sv-indicators tr[data-code=visit_rate] a")
        page.wait_for_selector("#result_list")
        assert page.locator("#result_list tbody tr").count() == 3
        assert page.locator("#result_list").inner_text().count("已履约") == 3
        assert "身份证" not in page.content() and "3306" not in page.content()
        page.screenshot(path=str(ARTIFACTS / "supervision-drilldown.png"), full_page=True)

        # The printable monthly report of the region.
        page.goto(f"{public_url}/admin/supervision/dashboard/report/?grain=month&period={month}")
        page.wait_for_selector("text=全区域监管月报")
        page.emulate_media(media="print")
        assert not page.locator("#header").is_visible() and page.locator("#sv-indicators").is_visible()
        page.screenshot(path=str(ARTIFACTS / "supervision-report-print.png"), full_page=True)
        page.emulate_media(media="screen")
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"] + 400
