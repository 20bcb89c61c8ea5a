"""Cells for every CSV and Excel export, safe against formula injection.

Text in an export often comes from a partner (a channel's trade number, a hospital's own name). A
spreadsheet runs a cell starting with `= + - @` (or a tab or carriage return before one) as a formula,
so such text is neutralised as OWASP's CSV-injection guidance says: in CSV a leading apostrophe, in
Excel a text cell with the quote prefix (the value is kept, Excel shows it as text and never runs it).
Numbers (Decimal, int) stay numbers: a negative amount is not text and is never touched.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

# OWASP's list, plus the full-width forms some spreadsheet programs also accept as operators.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def is_formula_like(text: str) -> bool:
    return text.startswith(FORMULA_STARTS)


def csv_cell(value: object) -> str:
    """The text of one CSV cell: amounts with two places, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, dt.date):
        return f"{value:%Y-%m-%d}"
    text = str(value)
    return "'" + text if is_formula_like(text) else text


def xlsx_cell(sheet, value: object, *, bold: bool = False):
    """One openpyxl write-only cell: Decimal as a 0.00 number, every string as a text cell."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    if value is not None and not isinstance(value, Decimal | int | float | bool | dt.date):
        value = str(value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        # openpyxl makes any string starting with "=" a formula; a string is always text here.
        cell.data_type = "s"
        if is_formula_like(value):
            cell.quotePrefix = True
    elif isinstance(value, Decimal):
        cell.number_format = "0.00"
    if bold:
        cell.font = Font(bold=True)
    return cell
