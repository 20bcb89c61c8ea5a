"""Reading the payment providers' daily bills (对账单), as they give them to merchants.

- WeChat Pay 交易账单 (ALL): a header row `交易时间,公众账号ID,商户号,…`, one row per payment
  (交易状态 SUCCESS) or refund (REFUND; REVOKED for a cancelled payment), every value prefixed
  with a backtick so that spreadsheets keep long numbers, then the summary header
  `总交易单数,应结订单总金额,退款总金额,…` and its values. Columns are found by name: their order
  and number change between account types and over the years (应结订单金额 was 总金额).
- Alipay 业务明细: `#` comment lines (`#支付宝业务明细查询`, `#账号：[…]`, `#起始日期：[…]   终止日期：[…]`),
  a header row `支付宝交易号,商户订单号,业务类型,…`, one row per 交易 or 退款 (values padded with
  a tab, refund amounts negative), `#-----业务明细列表结束-----` and `#交易合计：…` summary lines.
  Its 账务明细 (`#支付宝账务明细查询`, `账务流水号,业务流水号,商户订单号,…,收入金额（+元）,支出金额（-元）,…`)
  is read too: income with a merchant order number is a payment, a 交易退款 outgo a refund, fees
  and withdrawals are skipped; `#收入合计`/`#支出合计` are checked.

Files arrive in GBK (read as GB18030, its superset) or UTF-8, with or without a BOM. They are
read as a stream, row by row, so a bill of any size needs little memory; the summary lines are
checked against the rows at the end, so a truncated or edited file is refused. Every refusal is
a `StatementFileError` naming the line and the reason in Chinese.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from django.utils import timezone

from regional.errors import DomainError

WECHAT, ALIPAY = "wechat", "alipay"
LAYOUT_NAMES = {WECHAT: "微信支付交易账单", ALIPAY: "支付宝业务明细"}
PAYMENT, REFUND = "payment", "refund"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
CHUNK = 1 << 20


class StatementFileError(DomainError):
    """A bill that cannot be imported: which line, and why."""

    code = "statement_invalid"

    def __init__(self, line: int | None, reason: str):
        super().__init__(f"对账单第{line}行：{reason}" if line else f"对账单无法导入：{reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One transaction of a bill: a payment or a refund, amount positive."""

    line_no: int
    kind: str
    batch: str
    pay_trade_no: str
    refund_no: str
    amount: Decimal
    occurred_at: dt.datetime
    status: str
    hospital_hint: str


@dataclass
class Totals:
    payment_count: int = 0
    payment_total: Decimal = ZERO
    refund_count: int = 0
    refund_total: Decimal = ZERO

    def add(self, row: StatementRow) -> None:
        if row.kind == PAYMENT:
            self.payment_count += 1
            self.payment_total += row.amount
        else:
            self.refund_count += 1
            self.refund_total += row.amount

    @property
    def line_count(self) -> int:
        return self.payment_count + self.refund_count


# -- encodings ------------------------------------------------------------------------------------


def detect_encoding(stream: BinaryIO) -> str:
    """`utf-8-sig`, `utf-8` or `gb18030`, by decoding the whole stream (in chunks); rewinds it.

    A file that is neither is refused at the line where the encoding that read further stopped.
    """
    stream.seek(0)
    if stream.read(3) == codecs.BOM_UTF8:
        candidates = ("utf-8-sig",)
    else:
        candidates = ("utf-8", "gb18030")
    failures = []
    for encoding in candidates:
        failed_at = _decodes(stream, encoding)
        if failed_at is None:
            stream.seek(0)
            return encoding
        failures.append(failed_at)
    raise StatementFileError(_line_at(stream, max(failures)), "含有无法识别的字符（文件应为UTF-8或GBK编码的CSV文本）")


def encoding_label(encoding: str) -> str:
    return {"utf-8-sig": "UTF-8（带BOM）", "utf-8": "UTF-8", "gb18030": "GBK"}.get(encoding, encoding)


def _decodes(stream: BinaryIO, encoding: str) -> int | None:
    """None when the whole stream decodes; else the byte offset of the first bad byte."""
    stream.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        while chunk := stream.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset + max(exc.start, 0)
            offset += len(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None


def _line_at(stream: BinaryIO, offset: int) -> int:
    stream.seek(0)
    line, done = 1, 0
    while done < offset and (chunk := stream.read(min(CHUNK, offset - done))):
        line += chunk.count(b"\n")
        done += len(chunk)
    return line


# -- values ---------------------------------------------------------------------------------------

_SCIENTIFIC = re.compile(r"^\d+(\.\d+)?[eE][+-]?\d+$")


def _amount(text: str, line: int, name: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "")) if text else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise StatementFileError(line, f"{name}“{text}”不是金额")
    if value != value.quantize(CENT):
        raise StatementFileError(line, f"{name}“{text}”应为最多两位小数的金额（单位：元）")
    return value.quantize(CENT)


def _time(text: str, line: int, name: str) -> dt.datetime:
    """A naive local time `yyyy-MM-dd HH:mm:ss` (spaces between date and time tolerated)."""
    value = text if len(text) == 19 else " ".join(text.split())
    try:
        if len(value) != 19 or value[10] != " ":
            raise ValueError
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise StatementFileError(line, f"{name}“{text}”格式应为yyyy-MM-dd HH:mm:ss")


def _trade_no(text: str, line: int, name: str, *, required: bool = True) -> str:
    if required and not text:
        raise StatementFileError(line, f"{name}为空")
    if ("E" in text or "e" in text) and _SCIENTIFIC.match(text):
        raise StatementFileError(
            line, f"{name}“{text}”是科学计数法，文件可能经Excel另存而损坏，请使用渠道下载的原始文件"
        )
    if len(text) > 100:
        raise StatementFileError(line, f"{name}超过100个字符")
    return text


def _header_name(text: str) -> str:
    return text.strip().lstrip("\ufeff").lstrip("`").strip().replace("(", "（").replace(")", "）")


# -- the reader -----------------------------------------------------------------------------------


@dataclass
class Bill:
    """An opened bill: its layout, encoding and header, then its rows as a stream (`rows()`).

    `totals` holds the counts and amounts once `rows()` is exhausted (and the summary lines
    have been checked against them).
    """

    layout: str
    encoding: str
    bill_date: dt.date
    account: str = ""
    totals: Totals = field(default_factory=Totals)
    _reader: Iterator[list[str]] | None = None
    _csv: object = None
    _first: tuple[int, list[str]] | None = None
    _text: io.TextIOWrapper | None = None
    _period: tuple[dt.datetime | None, dt.datetime | None] = (None, None)

    def rows(self) -> Iterator[StatementRow]:
        body = _wechat_rows(self) if self.layout == WECHAT else _alipay_rows(self)
        try:
            for row in body:
                self.totals.add(row)
                yield row
        finally:
            self.close()

    def close(self) -> None:
        if self._text is not None:
            self._text.detach()  # leave the caller's binary stream open
            self._text = None

    @property
    def line(self) -> int:
        return self._csv.line_num  # type: ignore[attr-defined]


def open_bill(stream: BinaryIO, *, bill_date: dt.date, layout: str | None = None) -> Bill:
    """Open `stream` (binary, seekable) as a bill of `bill_date`; `layout` is what the source expects."""
    encoding = detect_encoding(stream)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    reader = csv.reader(text)
    first = None
    for values in reader:
        if any(v.strip() for v in values):
            first = values
            break
    if first is None:
        text.detach()
        raise StatementFileError(None, "文件为空")
    head = first[0].strip().lstrip("\ufeff")
    names = {_header_name(v) for v in first}
    if head.startswith("#") or "支付宝交易号" in names:
        found = ALIPAY
    elif {"交易时间", "商户订单号"} <= names:
        found = WECHAT
    else:
        line = reader.line_num
        text.detach()
        raise StatementFileError(line, "无法识别的对账单格式（应为微信支付交易账单或支付宝业务明细CSV）")
    if layout and found != layout:
        line = reader.line_num
        text.detach()
        raise StatementFileError(line, f"文件是{LAYOUT_NAMES[found]}，与所选来源（{LAYOUT_NAMES[layout]}）不符")
    bill = Bill(layout=found, encoding=encoding, bill_date=bill_date)
    bill._reader, bill._csv, bill._text = reader, reader, text
    bill._first = (reader.line_num, first)
    if found == ALIPAY:
        _alipay_header(bill)
    return bill


# -- WeChat Pay -----------------------------------------------------------------------------------

WECHAT_STATUSES = {"SUCCESS": PAYMENT, "REFUND": REFUND, "REVOKED": REFUND}


def _clean(value: str) -> str:
    value = value.strip()
    return value[1:].strip() if value.startswith("`") else value


def _wechat_rows(bill: Bill) -> Iterator[StatementRow]:
    _, header = bill._first  # type: ignore[misc]
    names = [_header_name(v) for v in header]
    index = {name: i for i, name in enumerate(names) if name}
    missing = [n for n in ("交易时间", "微信订单号", "商户订单号", "交易状态") if n not in index]
    if missing:
        raise StatementFileError(bill.line, f"表头缺少列：{'、'.join(missing)}")
    order_col = next((index[n] for n in ("订单金额", "应结订单金额", "总金额") if n in index), None)
    if order_col is None:
        raise StatementFileError(bill.line, "表头缺少金额列（订单金额或应结订单金额）")
    refund_col = next((index[n] for n in ("申请退款金额", "退款金额") if n in index), None)
    settled_col = next((index[n] for n in ("应结订单金额", "总金额") if n in index), None)
    refunded_col = index.get("退款金额")
    time_col, status_col = index["交易时间"], index["交易状态"]
    batch_col, trade_col = index["商户订单号"], index["微信订单号"]
    refund_no_cols = [index[n] for n in ("商户退款单号", "微信退款单号") if n in index]
    attach_col, merchant_col = index.get("商户数据包"), index.get("商户号")
    width = len(names)
    tz = timezone.get_current_timezone()
    bill_date = bill.bill_date
    settled_sum, refunded_sum, count = ZERO, ZERO, 0
    summary: tuple[int, list[str], list[str]] | None = None
    reader = bill._reader
    for values in reader:  # type: ignore[union-attr]
        line = bill.line
        if len(values) != width:
            if not any(v.strip() for v in values):
                continue
            if _clean(values[0]) == "总交易单数" and summary is None:
                totals = next(reader, None)  # type: ignore[arg-type]
                if totals is None:
                    raise StatementFileError(line, "汇总表头之后缺少汇总数据")
                summary = (bill.line, [_header_name(v) for v in values], [_clean(v) for v in totals])
                continue
            if summary is not None:
                raise StatementFileError(line, "汇总数据之后不应再有内容")
            raise StatementFileError(line, f"应有{width}列，实际{len(values)}列")
        if summary is not None:
            raise StatementFileError(line, "汇总数据之后不应再有内容")
        status = _clean(values[status_col]).upper()
        kind = WECHAT_STATUSES.get(status)
        if kind is None:
            raise StatementFileError(line, f"交易状态“{status}”无法识别（应为SUCCESS、REFUND或REVOKED）")
        order_amount = _amount(_clean(values[order_col]), line, names[order_col])
        if settled_col is not None:
            settled_sum += _amount(_clean(values[settled_col]), line, names[settled_col])
        if refunded_col is not None:
            refunded_sum += _amount(_clean(values[refunded_col]) or "0", line, "退款金额")
        refund_no = ""
        if kind == PAYMENT:
            amount = order_amount
        else:
            requested = ZERO
            if refund_col is not None:
                requested = _amount(_clean(values[refund_col]) or "0", line, names[refund_col])
            amount = requested if requested > 0 else order_amount  # a REVOKED payment returns it whole
            refund_no = next((v for v in (_clean(values[c]) for c in refund_no_cols) if v not in ("", "0")), "")
            refund_no = _trade_no(refund_no, line, "退款单号", required=False)
        if amount <= 0:
            raise StatementFileError(line, "金额应大于0")
        occurred = _time(_clean(values[time_col]), line, "交易时间")
        if occurred.date() != bill_date:
            raise StatementFileError(line, f"交易时间{occurred:%Y-%m-%d}不在账单日期{bill_date:%Y-%m-%d}内")
        count += 1
        hint = _clean(values[attach_col]) if attach_col is not None else ""
        yield StatementRow(
            line_no=line,
            kind=kind,
            batch=_trade_no(_clean(values[batch_col]), line, "商户订单号"),
            pay_trade_no=_trade_no(_clean(values[trade_col]), line, "微信订单号"),
            refund_no=refund_no,
            amount=amount,
            occurred_at=occurred.replace(tzinfo=tz),
            status=status,
            hospital_hint="" if hint == "0" else hint[:128],
        )
        if not bill.account and merchant_col is not None:
            bill.account = _clean(values[merchant_col])[:64]
    if summary is None:
        raise StatementFileError(bill.line + 1, "缺少汇总数据（总交易单数、应结订单总金额…），文件可能不完整")
    _check_wechat_summary(summary, count, settled_sum, refunded_sum)


def _check_wechat_summary(summary, count: int, settled: Decimal, refunded: Decimal) -> None:
    line, names, values = summary
    stated = dict(zip(names, values, strict=False))
    if stated.get("总交易单数", "") != str(count):
        raise StatementFileError(line, f"汇总的总交易单数为{stated.get('总交易单数') or '空'}，明细实有{count}笔")
    for name, actual in (("应结订单总金额", settled), ("总交易额", settled), ("退款总金额", refunded)):
        if name in stated and _amount(stated[name], line + 1, name) != actual:
            raise StatementFileError(line + 1, f"汇总的{name}为{stated[name]}，明细合计为{actual}")


# -- Alipay ---------------------------------------------------------------------------------------

ALIPAY_TYPES = {"交易": PAYMENT, "退款": REFUND}
_BRACKETED = re.compile(r"\[([^\]]*)\]")
_CN_TIME = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日\s*(\d{1,2}):(\d{2}):(\d{2})")
_TOTAL_LINE = re.compile(r"^#\s*(交易|退款)合计[：:]\s*(\d+)\s*笔[，,]\s*商家实收(?:共|[：:])?\s*(-?[\d.,]+)\s*元")
_FLOW_TOTAL = re.compile(r"^#\s*(收入|支出)合计[：:]\s*(\d+)\s*笔[，,]\s*共\s*(-?[\d.,]+)\s*元")


def _cn_time(text: str) -> dt.datetime | None:
    match = _CN_TIME.search(text)
    if not match:
        return None
    return dt.datetime(*(int(g) for g in match.groups()))  # local time, naive like the rows


def _alipay_header(bill: Bill) -> None:
    """Read the `#` lines before the header row: account and period. Leaves `_first` at the header."""
    line, values = bill._first  # type: ignore[misc]
    reader = bill._reader
    start = end = None
    while True:
        joined = ",".join(values).strip().lstrip("\ufeff")
        if not joined.startswith("#"):
            break
        if joined.startswith("#账号"):
            found = _BRACKETED.search(joined)
            bill.account = (found.group(1) if found else joined.split("：", 1)[-1]).strip()[:64]
        elif joined.startswith("#起始日期"):
            parts = _BRACKETED.findall(joined)
            start = _cn_time(parts[0]) if parts else None
            end = _cn_time(parts[1]) if len(parts) > 1 else None
            if start is None:
                raise StatementFileError(line, "起始日期格式无法识别（应为[yyyy年MM月dd日 HH:mm:ss]）")
            if start.date() != bill.bill_date:
                raise StatementFileError(
                    line, f"账单起始日期为{start:%Y-%m-%d}，与账单日期{bill.bill_date:%Y-%m-%d}不符"
                )
        values = next(reader, None)  # type: ignore[arg-type]
        if values is None:
            raise StatementFileError(bill.line + 1, "缺少业务明细表头（支付宝交易号,商户订单号,业务类型,…）")
        line = bill.line
        while not any(v.strip() for v in values):
            values = next(reader, None)  # type: ignore[arg-type]
            if values is None:
                raise StatementFileError(bill.line + 1, "缺少业务明细表头（支付宝交易号,商户订单号,业务类型,…）")
            line = bill.line
    bill._first = (line, values)
    bill._period = (start, end)


def _detail_row(values: list[str], *, width: int, line: int, ended: bool, end: str) -> bool:
    """Whether a row is a detail to read: a blank short row is skipped; a short row, or any row
    after the bill's end marker `end`, makes the file unreadable."""
    if len(values) < width:
        if not any(v.strip() for v in values):
            return False
        raise StatementFileError(line, f"应有{width}列，实际{len(values)}列")
    if ended:
        raise StatementFileError(line, f"“{end}”之后不应再有明细")
    return True


def _alipay_rows(bill: Bill) -> Iterator[StatementRow]:
    line, header = bill._first  # type: ignore[misc]
    names = [_header_name(v) for v in header]
    index = {name: i for i, name in enumerate(names) if name}
    if "账务流水号" in index:
        yield from _alipay_account_rows(bill, names, index)
        return
    time_name = "完成时间" if "完成时间" in index else "创建时间"
    missing = [n for n in ("支付宝交易号", "商户订单号", "业务类型", "订单金额（元）", time_name) if n not in index]
    if missing:
        raise StatementFileError(line, f"表头缺少列：{'、'.join(missing)}")
    received = index.get("商家实收（元）")
    tz = timezone.get_current_timezone()
    start, end = bill._period
    width = len(names)
    counted = {PAYMENT: 0, REFUND: 0}
    received_sum = {PAYMENT: ZERO, REFUND: ZERO}
    ended = False
    stated: dict[str, tuple[int, int, Decimal]] = {}
    type_col, amount_col, time_col = index["业务类型"], index["订单金额（元）"], index[time_name]
    batch_col, trade_col = index["商户订单号"], index["支付宝交易号"]
    refund_col, note_col = index.get("退款批次号/请求号"), index.get("备注")
    bill_date = bill.bill_date
    for values in bill._reader:  # type: ignore[union-attr]
        line = bill.line
        first = values[0].lstrip() if values else ""
        if first.startswith("#"):
            joined = ",".join(values).strip()
            if "业务明细列表结束" in joined:
                ended = True
            elif (total := _TOTAL_LINE.match(joined)) is not None:
                kind = PAYMENT if total.group(1) == "交易" else REFUND
                stated[kind] = (line, int(total.group(2)), _amount(total.group(3), line, "商家实收合计"))
            continue
        if not _detail_row(values, width=width, line=line, ended=ended, end="业务明细列表结束"):
            continue
        # Alipay pads numbers with a tab to keep spreadsheets off them: strip what is used.
        business = values[type_col].strip()
        kind = ALIPAY_TYPES.get(business)
        if kind is None:
            raise StatementFileError(line, f"业务类型“{business}”无法识别（应为交易或退款）")
        amount = abs(_amount(values[amount_col].strip(), line, "订单金额（元）"))
        if amount <= 0:
            raise StatementFileError(line, "订单金额应不为0")
        if received is not None:
            received_sum[kind] += _amount(values[received].strip() or "0", line, "商家实收（元）")
        occurred = _time(values[time_col].strip(), line, time_name)
        if start is not None and (occurred < start or (end is not None and occurred >= end)):
            raise StatementFileError(line, f"{time_name}{values[time_col].strip()}不在账单起止日期内")
        if start is None and occurred.date() != bill_date:
            raise StatementFileError(line, f"{time_name}不在账单日期{bill_date:%Y-%m-%d}内")
        counted[kind] += 1
        refund_no = values[refund_col].strip() if refund_col is not None else ""
        yield StatementRow(
            line_no=line,
            kind=kind,
            batch=_trade_no(values[batch_col].strip(), line, "商户订单号"),
            pay_trade_no=_trade_no(values[trade_col].strip(), line, "支付宝交易号"),
            refund_no=_trade_no(refund_no, line, "退款批次号/请求号", required=False),
            amount=amount,
            occurred_at=occurred.replace(tzinfo=tz),
            status=business,
            hospital_hint=values[note_col].strip()[:128] if note_col is not None else "",
        )
    if not ended and (start is not None or stated):
        raise StatementFileError(bill.line + 1, "缺少“业务明细列表结束”标记，文件可能不完整")
    for kind, (stated_line, count, total) in stated.items():
        label = "交易" if kind == PAYMENT else "退款"
        if count != counted[kind]:
            raise StatementFileError(stated_line, f"{label}合计为{count}笔，明细实有{counted[kind]}笔")
        if received is not None and total != received_sum[kind]:
            raise StatementFileError(stated_line, f"{label}合计商家实收为{total}元，明细合计为{received_sum[kind]}元")


def _alipay_account_rows(bill: Bill, names: list[str], index: dict[str, int]) -> Iterator[StatementRow]:
    """Alipay 账务明细 (the account's money movements): a trade's payment is income with the merchant
    order number, its refund an outgo of type 交易退款; fees (收费), withdrawals and transfers are
    not trades and are skipped, but count towards the 收入合计/支出合计 lines that are checked."""
    line = bill._first[0]  # type: ignore[index]
    income_col = next((index[n] for n in ("收入金额（+元）", "收入金额") if n in index), None)
    outgo_col = next((index[n] for n in ("支出金额（-元）", "支出金额") if n in index), None)
    missing = [n for n in ("业务流水号", "商户订单号", "发生时间", "业务类型") if n not in index]
    if income_col is None or outgo_col is None:
        missing.append("收入金额（+元）/支出金额（-元）")
    if missing:
        raise StatementFileError(line, f"表头缺少列：{'、'.join(missing)}")
    tz = timezone.get_current_timezone()
    start, end = bill._period
    width = len(names)
    moved = {"收入": [0, ZERO], "支出": [0, ZERO]}
    stated: dict[str, tuple[int, int, Decimal]] = {}
    ended = False
    for values in bill._reader:  # type: ignore[union-attr]
        line = bill.line
        if values and values[0].lstrip().startswith("#"):
            joined = ",".join(values).strip().rstrip(",")
            if "账务明细列表结束" in joined:
                ended = True
            elif (total := _FLOW_TOTAL.match(joined)) is not None:
                stated[total.group(1)] = (
                    line,
                    int(total.group(2)),
                    _amount(total.group(3), line, f"{total.group(1)}合计"),
                )
            continue
        if not _detail_row(values, width=width, line=line, ended=ended, end="账务明细列表结束"):
            continue
        income = _amount(values[income_col].strip() or "0", line, names[income_col])
        outgo = abs(_amount(values[outgo_col].strip() or "0", line, names[outgo_col]))
        for label, value in (("收入", income), ("支出", outgo)):
            if value:
                moved[label][0] += 1
                moved[label][1] += value
        occurred = _time(values[index["发生时间"]].strip(), line, "发生时间")
        if start is not None and (occurred < start or (end is not None and occurred >= end)):
            raise StatementFileError(line, f"发生时间{values[index['发生时间']].strip()}不在账单起止日期内")
        if start is None and occurred.date() != bill.bill_date:
            raise StatementFileError(line, f"发生时间不在账单日期{bill.bill_date:%Y-%m-%d}内")
        batch = values[index["商户订单号"]].strip()
        business = values[index["业务类型"]].strip()
        if not batch:
            continue  # 收费, 提现, 转账: money of the account, not of a trade
        if income > 0 and not outgo:
            kind, amount = PAYMENT, income
        elif outgo > 0 and not income and "退款" in business:
            kind, amount = REFUND, outgo
        else:
            continue
        yield StatementRow(
            line_no=line,
            kind=kind,
            batch=_trade_no(batch, line, "商户订单号"),
            pay_trade_no=_trade_no(values[index["业务流水号"]].strip(), line, "业务流水号"),
            refund_no="",
            amount=amount,
            occurred_at=occurred.replace(tzinfo=tz),
            status=business[:20],
            hospital_hint=values[index["备注"]].strip()[:128] if "备注" in index else "",
        )
    if not ended and (start is not None or stated):
        raise StatementFileError(bill.line + 1, "缺少“账务明细列表结束”标记，文件可能不完整")
    for label, (stated_line, count, total) in stated.items():
        if count != moved[label][0] or abs(total) != moved[label][1]:
            raise StatementFileError(
                stated_line, f"{label}合计为{count}笔{abs(total)}元，明细实有{moved[label][0]}笔{moved[label][1]}元"
            )
