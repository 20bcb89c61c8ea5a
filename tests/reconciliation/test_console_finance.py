"""Finance's day in the staff console (#13), in Chromium at 1366×768 with an English browser, as a
member of the 财务人员 role: upload the day's bill and watch its import finish, reconcile a past
day from the admin's button and watch the run's page
follow the real Celery worker to the end, resolve a difference from its page, export the run to
Excel and find there the times the admin shows (the region's local time). No English on the pages.

Screenshots: artifacts/finance-run.png, finance-discrepancies.png, finance-export.png.
"""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook

from reconciliation.models import Discrepancy, ReconciliationRun, StatementSource
from tests.base import bill, yesterday
from tests.base import local as at
from tests.console import assert_no_english, english_page, login, shot, staff  # noqa: F401 - fixture
from tests.factories import pay, refund, source

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# 导出Excel is upper-cased by the admin's object-tools style; SBX… is the sandbox channel's trade number
# (data); GBK and UTF-8 are the bills' encodings by their names.
ALLOWED = {"EXCEL", "SBX", "GBK", "UTF"}
ADMIN_TIME = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日\s*(\d{1,2}):(\d{2})")


def shown(text: str) -> str:
    """The admin's 2026年12月2日 09:16 as 2026-12-02 09:16 (to the minute, as it shows it)."""
    found = ADMIN_TIME.search(text)
    assert found, f"页面上没有时间：{text!r}"
    year, month, day, hour, minute = (int(g) for g in found.groups())
    return f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}"


def fits(page, selector: str) -> None:
    """The element ends inside the 1366 px window and inside the list's own box (the admin lets a
    wide table scroll sideways within it: a column past its edge is hidden)."""
    right, edge = page.eval_on_selector(
        selector,
        """el => {
            const box = el.closest('.results') || document.documentElement;
            return [el.getBoundingClientRect().right, Math.min(box.getBoundingClientRect().right, 1366)];
        }""",
    )
    assert right <= edge + 1, f"{selector} 超出可见宽度（右边缘 {right:.0f}px，可见到 {edge:.0f}px）"


class FinanceConsoleTests:
    def test_finance_reconciles_a_past_day_resolves_a_difference_and_exports_excel(
        self,
        celery_worker,
        english_page,  # noqa: F811 - the fixture imported from tests.console
        public_url,
        hospital,
        tmp_path,
    ):
        page = english_page
        day = yesterday()
        payments = [pay(hospital, day=day, amount=f"{10 + i}.00") for i in range(6)]
        refund(payments[-1], when=at(day, 21))
        # The channel's bill leaves out one payment and has one the platform never saw.
        content, _ = bill("wepay", day, missing_payment=1, extra_payment=1)
        upload = tmp_path / "微信支付交易账单.csv"  # the file name is shown on the import page
        upload.write_bytes(content)
        source("wepay", adapter=StatementSource.UPLOAD)
        # A Chinese user name: the admin's header shows it upper-cased, a Latin one would read as English.
        user = staff("finance", username="财务小李")
        login(page, public_url, user, next_path="/admin/reconciliation/statement/")

        # The bill is uploaded; the worker imports it while its page follows.
        page.click(".object-tools a:has-text('上传对账单')")
        page.fill("#id_bill_date", f"{day:%Y-%m-%d}")
        page.set_input_files("#id_file", str(upload))
        assert_no_english(page, ALLOWED)
        page.click("input[type=submit][value=上传并导入]")
        page.wait_for_url(re.compile(r"/statementimport/\d+/change/"))
        page.wait_for_selector(".recon-progress:has-text('已完成')", timeout=60_000)
        assert "已读取明细行数：7" in page.inner_text(".recon-progress")
        assert_no_english(page, ALLOWED)
        page.goto(f"{public_url}/admin/reconciliation/statement/")
        fits(page, "#result_list")  # the day's bills, every column on the screen
        assert "查看7笔" in page.inner_text("#result_list")
        assert_no_english(page, ALLOWED)
        page.goto(f"{public_url}/admin/reconciliation/reconciliationrun/")
        assert_no_english(page, ALLOWED)

        # 立即对账 from the list's button: the run is queued for the worker, its page follows it.
        page.click(".object-tools a:has-text('立即对账')")
        page.fill("#id_date_from", f"{day:%Y-%m-%d}")
        page.fill("#id_date_to", f"{day:%Y-%m-%d}")
        page.select_option("#id_hospital_check", ReconciliationRun.HospitalCheck.NONE)
        page.uncheck("#id_fetch")  # the day's bill is imported already
        assert_no_english(page, ALLOWED)
        page.click("input[type=submit][value=开始对账]")
        page.wait_for_url(re.compile(r"/reconciliationrun/\d+/change/"))
        run = ReconciliationRun.objects.get()
        first = page.inner_text(".recon-progress")
        assert any(state in first for state in ("排队中", "对账中", "已完成")), first
        # The page refreshes itself (meta refresh) until the worker has finished the run.
        page.wait_for_selector(".recon-progress:has-text('已完成')", timeout=60_000)
        page.wait_for_selector(".object-tools a:has-text('导出Excel')")
        run.refresh_from_db()
        assert (run.status, run.result, run.started_by) == ("done", "discrepancies", user)
        assert run.checks_done == run.checks_total == 2 and run.rows_read > 0
        assert page.locator("meta[http-equiv=refresh]").count() == 0
        assert_no_english(page, ALLOWED)
        shot(page, "finance-run")
        finished_on_page = shown(page.inner_text(".field-finished_at"))

        # The run's differences, money and state within the screen; resolve one from its own page.
        page.click(".object-tools a:has-text('全部差异')")
        page.wait_for_selector("#result_list")
        for column in ("平台金额", "渠道金额", "差额", "处理状态"):
            fits(page, f"#result_list thead th:has-text('{column}')")
        fits(page, "#result_list")
        assert_no_english(page, ALLOWED)
        missing = Discrepancy.objects.get(run=run, type=Discrepancy.Type.PLATFORM_ONLY)
        page.locator(f"#result_list a[href*='/{missing.pk}/change/']").first.click()
        page.locator(".object-tools a", has_text=re.compile("^说明$")).click()
        page.fill("textarea[name=reason]", "渠道次日补单，已与商户平台核实")
        assert_no_english(page, ALLOWED)
        page.click("input[type=submit][value=确认处理]")
        page.wait_for_url(re.compile(rf"/discrepancy/{missing.pk}/change/"))
        missing.refresh_from_db()
        assert (missing.status, missing.resolved_by) == ("explained", user)
        resolved_on_page = shown(page.inner_text(".field-resolved_at"))
        assert "已说明" in page.inner_text(".field-status")
        assert_no_english(page, ALLOWED)
        page.goto(f"{public_url}/admin/reconciliation/discrepancy/?run__id__exact={run.pk}")
        assert "已说明" in page.inner_text("#result_list")
        shot(page, "finance-discrepancies")

        # Excel: the times are the ones the admin showed (local time, not UTC).
        page.goto(f"{public_url}/admin/reconciliation/reconciliationrun/")
        fits(page, "#result_list")
        assert "有差异" in page.inner_text("#result_list")
        page.goto(f"{public_url}/admin/reconciliation/reconciliationrun/{run.pk}/change/")
        with page.expect_download() as download:
            page.click(".object-tools a:has-text('导出Excel')")
        path = download.value.path()
        book = load_workbook(io.BytesIO(open(path, "rb").read()))  # noqa: SIM115, PTH123 - Playwright's temp file
        summary = {row[0].value: row[1].value for row in book["汇总"].iter_rows() if row[0].value}
        assert str(summary["完成时间"])[:16] == finished_on_page
        sheet = book["差异明细"]
        header = [c.value for c in next(sheet.iter_rows(max_row=1))]
        rows = [dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
        explained = next(r for r in rows if r["交易流水号"] == missing.batch)
        assert explained["处理状态"] == "已说明" and explained["处理人"] == user.username
        assert str(explained["处理时间"])[:16] == resolved_on_page
        assert {r["差异类型"] for r in rows} == {"平台有支付，渠道无记录", "渠道已收款，平台无记录"}
        assert_no_english(page, ALLOWED)
        shot(page, "finance-export")
