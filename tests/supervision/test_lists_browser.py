"""The referral and supervision admin lists at 1366×768 in headless Chromium (#13, lists that fit):
a month of activity across three hospitals, each list opened by a superuser whose browser asks for
English; the table must end inside the window (no sideways scrolling) with the key columns first.
Screenshots go to artifacts/lists-*.png."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from tests.console import PASSWORD, english_page, login, shot  # noqa: F401 - english_page is a fixture
from tests.supervision.support import build_month

# list URL -> the headers that must come first, in this order
LISTS = {
    "/admin/referral/referral/": ("转诊编码", "状态", "患者"),
    "/admin/referral/overduereferral/": ("转诊编码", "紧急程度"),
    "/admin/referral/referralnotification/": ("状态",),
    "/admin/supervision/supervisedorder/": ("平台订单号", "状态"),
    "/admin/supervision/supervisedschedule/": ("排班班次", "出诊日期"),
    "/admin/supervision/supervisedreferral/": ("转诊编码", "状态"),
    "/admin/supervision/supervisedmessage/": ("时间",),
}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class ListsAt1366Tests:
    def test_each_list_fits_the_window_with_its_key_columns_first(
        self, english_page, public_url, region, api, other_api, client, post  # noqa: F811
    ):  # fmt: skip
        build_month(region, api, other_api, client, post)
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        call_command("supervision_backfill", "--from", f"{tomorrow - dt.timedelta(days=4)}", "--to", f"{tomorrow}")
        admin_user = User.objects.create_superuser("列表检查员", "lists@example.invalid", PASSWORD)
        login(english_page, public_url, admin_user)
        problems, empty = [], []
        for url, first in LISTS.items():
            english_page.goto(f"{public_url}{url}")
            if english_page.locator("#result_list tbody tr").count() == 0:
                empty.append(url)  # an empty list has no table to measure
                continue
            shot(english_page, "lists-" + url.strip("/").replace("/", "-").removeprefix("admin-"))
            headers = [h.strip() for h in english_page.locator("#result_list thead th").all_inner_texts()]
            # The action checkbox has no header text; a sorted column shows its sort priority above.
            headers = [h.splitlines()[-1].strip() for h in headers if h]
            if tuple(headers[: len(first)]) != first:
                problems.append(f"{url}: 列顺序 {headers}")
            # The admin scrolls a too-wide table inside its box: the table must fit that box, and the page the window.
            table, box = english_page.eval_on_selector(
                "#result_list", "t => [t.scrollWidth, t.closest('.results').clientWidth]"
            )
            page_width, window = english_page.evaluate(
                "() => [document.documentElement.scrollWidth, window.innerWidth]"
            )
            if table > box or page_width > window:
                problems.append(f"{url}: 表格宽 {table}px，表格区 {box}px；页面宽 {page_width}px，窗口 {window}px")
        assert not problems, "\n".join(problems)
        # The month leaves no overdue referral (and so no reminder); every other list has rows to measure.
        assert set(empty) <= {"/admin/referral/overduereferral/", "/admin/referral/referralnotification/"}
