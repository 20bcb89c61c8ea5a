"""The monthly report as Excel (openpyxl) and CSV: the indicator table with its definitions, the
hospitals, the months and the referral flow, from the same Overview as the pages."""

from __future__ import annotations

import csv
import io

from supervision.definitions import INDICATORS, Indicator
from supervision.selectors import Overview, display

DIRECTIONS = {"up": "上转", "down": "下转", "lateral": "平级", "unknown": "级别未知"}


def _value(indicator: Indicator, figures) -> float | int | str:
    value = figures.value(indicator.code)
    return "" if value is None else value


def _unit(indicator: Indicator) -> str:
    return indicator.unit


def workbook(overview: Overview) -> bytes:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Alignment, Font

    scope = overview.hospital.name if overview.hospital else "全区域"
    book = Workbook()
    sheet = book.active
    sheet.title = "指标"
    sheet.append([f"{scope}监管月报 {overview.period.label}"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(["分组", "指标", "数值", "单位", "分子", "分母", "不计入"])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for indicator in INDICATORS:
        sheet.append([
            indicator.group, indicator.name, _value(indicator, overview.total), _unit(indicator),
            indicator.numerator_text, indicator.denominator_text, indicator.excluded,
        ])  # fmt: skip
    for column, width in zip("ABCDEFG", (8, 20, 12, 8, 50, 40, 40), strict=True):
        sheet.column_dimensions[column].width = width
    for row in sheet.iter_rows(min_row=3):
        for cell in row[4:]:
            cell.alignment = Alignment(wrap_text=True, vertical="top")

    hospitals = book.create_sheet("医院")
    hospitals.append(["医院编号", "医院", *[f"{i.name}（{i.unit}）" for i in INDICATORS]])
    for hospital, figures in overview.hospitals:
        hospitals.append([hospital.hospital_no, hospital.name, *[_value(i, figures) for i in INDICATORS]])
    if overview.hospitals:
        chart = BarChart()
        chart.title, chart.y_axis.title = "各医院预约量", "人次"
        column = 3 + [i.code for i in INDICATORS].index("bookings")
        data = Reference(hospitals, min_col=column, min_row=1, max_row=len(overview.hospitals) + 1)
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(Reference(hospitals, min_col=2, min_row=2, max_row=len(overview.hospitals) + 1))
        hospitals.add_chart(chart, f"A{len(overview.hospitals) + 4}")

    months = book.create_sheet("月度趋势")
    months.append(["月份", *[f"{i.name}（{i.unit}）" for i in INDICATORS]])
    for month, figures in overview.months:
        months.append([f"{month:%Y-%m}", *[_value(i, figures) for i in INDICATORS]])
    if overview.months:
        line = LineChart()
        line.title = "预约量趋势"
        column = 2 + [i.code for i in INDICATORS].index("bookings")
        line.add_data(Reference(months, min_col=column, min_row=1, max_row=len(overview.months) + 1),
                      titles_from_data=True)  # fmt: skip
        line.set_categories(Reference(months, min_col=1, min_row=2, max_row=len(overview.months) + 1))
        months.add_chart(line, f"A{len(overview.months) + 4}")

    channels = book.create_sheet("渠道")
    channels.append(["渠道代码", "渠道", "预约量", "锁号请求", "锁号成功", "预约成功率（%）"])
    for row in overview.channels:
        channels.append([row["channel__code"], row["channel__name"], row["bookings"], row["lock_attempts"],
                         row["locks_confirmed"], "" if row["success_rate"] is None else row["success_rate"]])  # fmt: skip

    flows = book.create_sheet("转诊流向")
    flows.append(["转出医院", "转入医院", "方向", "提交", "接收"])
    for row in overview.flows:
        flows.append([row["sending__name"], row["receiving__name"], DIRECTIONS.get(row["direction"], ""),
                      row["submitted"], row["accepted"]])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_text(overview: Overview) -> str:
    """One row per hospital (and a 合计 row) with every indicator; UTF-8 with BOM for Excel."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(["期间", "医院编号", "医院", *[f"{i.name}（{i.unit}）" for i in INDICATORS]])
    label = overview.period.label
    for hospital, figures in overview.hospitals:
        writer.writerow([label, hospital.hospital_no, hospital.name,
                         *[display(i, figures.value(i.code)).replace(",", "") for i in INDICATORS]])  # fmt: skip
    writer.writerow(
        [label, "", "合计", *[display(i, overview.total.value(i.code)).replace(",", "") for i in INDICATORS]]
    )
    return out.getvalue()
