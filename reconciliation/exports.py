"""A run exported for finance: a summary and its differences, as CSV (UTF-8 with BOM, which Excel
opens as Chinese) or as an Excel workbook (.xlsx, two sheets). Amounts stay Decimal: two places
in CSV, numbers formatted 0.00 in Excel. Text from channels and hospitals (trade numbers, names) goes
through regional.spreadsheet, so no cell can become a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.utils import timezone

from reconciliation.models import Discrepancy, ReconciliationRun
from regional.spreadsheet import csv_cell, xlsx_cell

DETAIL_HEADER = [
    "业务日期", "差异类型", "款项", "支付渠道", "医院编号", "医院", "交易流水号", "渠道交易号", "平台金额", "渠道金额",
    "差额（平台−渠道）", "医院订单状态", "说明", "处理状态", "处理意见", "处理人", "处理时间",
]  # fmt: skip


def local(moment) -> str:
    """A stored (UTC) time as the region's clock shows it, like the admin does."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}" if moment else ""


def summary(run: ReconciliationRun) -> list[tuple[str, object]]:
    later = (
        ReconciliationRun.objects.filter(
            pk__gt=run.pk, status=ReconciliationRun.Status.DONE, date_from__lte=run.date_to, date_to__gte=run.date_from
        )
        .order_by("-pk")
        .first()
    )
    rows: list[tuple[str, object]] = [
        ("对账批次", f"#{run.pk}"),
        ("日期范围", f"{run.date_from:%Y-%m-%d} 至 {run.date_to:%Y-%m-%d}"),
        ("医院", run.hospital.name if run.hospital else "全部医院"),
        ("支付渠道", run.get_pay_channel_display() or "全部渠道"),
        ("发起方式", run.get_trigger_display()),
        ("状态", run.get_status_display()),
        ("结果", run.get_result_display()),
        ("平台支付笔数", run.ledger_payment_count),
        ("平台支付金额", run.ledger_payment_total),
        ("平台退款笔数", run.ledger_refund_count),
        ("平台退款金额", run.ledger_refund_total),
        ("平台净额", run.ledger_net),
        ("渠道支付笔数", run.statement_payment_count),
        ("渠道支付金额", run.statement_payment_total),
        ("渠道退款笔数", run.statement_refund_count),
        ("渠道退款金额", run.statement_refund_total),
        ("渠道净额", run.statement_net),
        ("一致笔数", run.matched_count),
        ("差异数", run.discrepancy_count),
        ("已处理过的差异（不再重复列出）", run.resolved_count),
        ("已核对医院状态", run.hospital_checked),
        ("医院状态未能核对", run.hospital_unchecked),
        ("缺少的对账单", run.missing_statements or "无"),
        ("说明", run.note or ""),
        ("完成时间", local(run.finished_at)),
    ]
    if later is not None:
        rows.append(("提示", f"同一日期已于批次#{later.pk}重新对账，未处理的差异以最新批次为准"))
    return rows


def details(run: ReconciliationRun) -> Iterator[list[object]]:
    rows = (
        Discrepancy.objects.filter(run=run).select_related("hospital", "resolved_by").order_by("day", "type", "batch")
    )
    for d in rows.iterator(chunk_size=2000):
        yield [
            f"{d.day:%Y-%m-%d}", d.get_type_display(), d.get_entry_kind_display(), d.get_pay_channel_display(),
            d.hospital.hospital_no if d.hospital else "", d.hospital.name if d.hospital else "", d.batch,
            d.pay_trade_no, d.ledger_amount, d.statement_amount, d.difference, d.get_hospital_status_display(), d.detail,
            d.get_status_display(), d.resolution, d.resolved_by.get_username() if d.resolved_by else "",
            local(d.resolved_at),
        ]  # fmt: skip


def as_csv(run: ReconciliationRun) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["对账结果汇总"])
    for label, value in summary(run):
        writer.writerow([label, csv_cell(value)])
    writer.writerow([])
    writer.writerow(["差异明细"])
    writer.writerow(DETAIL_HEADER)
    for row in details(run):
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def as_xlsx(run: ReconciliationRun) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)

    def cell(sheet, value, *, header: bool = False):
        return xlsx_cell(sheet, value, bold=header)

    sheet = book.create_sheet("汇总")
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 40
    for label, value in summary(run):
        sheet.append([cell(sheet, label, header=True), cell(sheet, value)])
    sheet = book.create_sheet("差异明细")
    for column, width in zip(
        "ABCDEFGHIJKLMNOPQ", (12, 28, 8, 10, 12, 24, 28, 32, 12, 12, 14, 12, 40, 10, 30, 12, 20), strict=True
    ):
        sheet.column_dimensions[column].width = width
    sheet.append([cell(sheet, name, header=True) for name in DETAIL_HEADER])
    for row in details(run):
        sheet.append([cell(sheet, v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
