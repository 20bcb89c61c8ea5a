"""The sandbox payment channel: writes a day's bill from the platform's own ledger, in the
provider's real layout (WeChat Pay 交易账单 or Alipay 业务明细) and encoding, so that the whole
reconciliation — fetch, import, match — runs end to end without a payment provider.

Knobs inject the differences reconciliation must find, deterministically (the first payments
of the day in time order that have never been refunded, so a test knows which): a payment left
out, an extra payment the platform never recorded, a payment billed at another amount, a refund
at the channel only, a recorded refund left out. `write_bill` returns which Batches it altered.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import BinaryIO

from django.utils import timezone

from reconciliation.statements import ALIPAY, PAYMENT, REFUND, WECHAT
from regional.errors import DomainError

FEE_RATE = Decimal("0.006")
ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "gbk": "gbk", "gb18030": "gb18030"}
GOODS = {"1": "预约挂号费", "2": "诊间支付"}

WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
).split(",")
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额".split(
    ","
)
ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
    "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
    "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
).split(",")
ALIPAY_RULE = "#-----------------------------------------业务明细列表----------------------------------------"
ALIPAY_END = "#-----------------------------------------业务明细列表结束------------------------------------"


@dataclass(frozen=True)
class Knobs:
    """Differences to inject into a sandbox bill (counts of trades), and the file's encoding."""

    missing_payment: int = 0
    extra_payment: int = 0
    amount_mismatch: int = 0
    refund_channel_only: int = 0
    refund_platform_only: int = 0
    encoding: str = "utf-8"

    @classmethod
    def from_options(cls, options: dict | None) -> Knobs:
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise DomainError(f"沙箱差异设置含未知项：{'、'.join(unknown)}（可用：{'、'.join(sorted(known))}）")
        encoding = str(options.pop("encoding", "utf-8")).lower()
        if encoding not in ENCODINGS:
            raise DomainError(f"沙箱对账单编码“{encoding}”不支持（可用：utf-8、utf-8-sig、gbk）")
        try:
            counts = {k: int(v) for k, v in options.items()}
        except (TypeError, ValueError):
            raise DomainError("沙箱差异设置的笔数应为整数")
        if any(v < 0 for v in counts.values()):
            raise DomainError("沙箱差异设置的笔数不能为负数")
        return cls(encoding=encoding, **counts)


@dataclass(frozen=True, slots=True)
class BillEntry:
    """One ledger payment or refund, as the sandbox channel would bill it."""

    batch: str
    pay_trade_no: str
    kind: str
    amount: Decimal
    occurred_at: dt.datetime
    hospital_no: str = ""
    type: str = "1"
    refunded: bool = False  # for a payment: the platform has recorded a refund of it (any day)
    refund_no: str = ""


@dataclass
class Manifest:
    """Which Batches the knobs altered, by knob."""

    missing_payment: list[str] = field(default_factory=list)
    extra_payment: list[str] = field(default_factory=list)
    amount_mismatch: list[str] = field(default_factory=list)
    refund_channel_only: list[str] = field(default_factory=list)
    refund_platform_only: list[str] = field(default_factory=list)
    rows: int = 0


def write_bill(
    *,
    layout: str,
    bill_date: dt.date,
    entries: Iterable[BillEntry],
    out: BinaryIO,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    merchant_id: str = "",
    exported_at: dt.datetime | None = None,
) -> Manifest:
    """Write the bill of `bill_date` for `entries` (in time order) to `out`; streams."""
    text = io.TextIOWrapper(out, encoding=ENCODINGS[knobs.encoding], newline="")
    writer = (WechatWriter if layout == WECHAT else AlipayWriter)(text, bill_date, merchant_id)
    manifest = Manifest()
    budget = {
        "missing_payment": knobs.missing_payment,
        "amount_mismatch": knobs.amount_mismatch,
        "refund_channel_only": knobs.refund_channel_only,
        "refund_platform_only": knobs.refund_platform_only,
    }
    hospital_no = ""
    day_end = timezone.make_aware(dt.datetime.combine(bill_date, dt.time(23, 59, 59)))
    writer.begin()
    for entry in entries:
        hospital_no = hospital_no or entry.hospital_no
        if entry.kind == PAYMENT and not entry.refunded:
            knob = next((k for k in ("missing_payment", "amount_mismatch", "refund_channel_only") if budget[k]), None)
            if knob:
                budget[knob] -= 1
                getattr(manifest, knob).append(entry.batch)
            if knob == "missing_payment":
                continue
            if knob == "amount_mismatch":
                writer.row(_replace(entry, amount=entry.amount + Decimal("1.00")))
                continue
            writer.row(entry)
            if knob == "refund_channel_only":
                refund_at = min(entry.occurred_at + dt.timedelta(minutes=10), day_end)
                writer.row(_replace(entry, kind=REFUND, occurred_at=refund_at, refund_no=f"{entry.batch}R9"))
            continue
        if entry.kind == REFUND and budget["refund_platform_only"]:
            budget["refund_platform_only"] -= 1
            manifest.refund_platform_only.append(entry.batch)
            continue
        writer.row(entry)
    for n in range(1, knobs.extra_payment + 1):
        batch = f"SBX{bill_date:%Y%m%d}X{n:04d}"
        moment = timezone.make_aware(dt.datetime.combine(bill_date, dt.time(12, 0, n % 60)))
        writer.row(BillEntry(batch, "", PAYMENT, Decimal("9.99"), moment, hospital_no))
        manifest.extra_payment.append(batch)
    writer.end(exported_at or timezone.now())
    text.flush()
    text.detach()
    manifest.rows = writer.count
    return manifest


def _replace(entry: BillEntry, **changes) -> BillEntry:
    values = {f.name: getattr(entry, f.name) for f in fields(entry)}
    return BillEntry(**{**values, **changes})


def _digits(seed: str, n: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:n].rjust(n, "0")


def _fee(amount: Decimal) -> Decimal:
    return (amount * FEE_RATE).quantize(Decimal("0.00001"))


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


class WechatWriter:
    """WeChat Pay 交易账单 (ALL): backtick-prefixed values, the summary header and values last."""

    def __init__(self, text, bill_date: dt.date, merchant_id: str):
        self.out = csv.writer(text, lineterminator="\r\n")
        self.merchant_id = merchant_id or "1900000109"
        self.count = 0
        self.settled = self.refunded = self.fees = Decimal("0")

    def begin(self) -> None:
        self.out.writerow(WECHAT_HEADER)

    def row(self, e: BillEntry) -> None:
        trade_no = e.pay_trade_no or "42000" + _digits(e.batch, 23)
        openid = "o" + hashlib.md5(e.batch.encode()).hexdigest()[:27]  # a fake, stable openid
        fee = _fee(e.amount)
        common = [f"{timezone.localtime(e.occurred_at):%Y-%m-%d %H:%M:%S}", "wx8888888888888888", self.merchant_id]
        common += ["0", "", trade_no, e.batch, openid, "JSAPI"]
        if e.kind == PAYMENT:
            values = common + ["SUCCESS", "OTHERS", "CNY", _money(e.amount), "0.00", "0", "0", "0.00", "0.00", "", ""]
            values += [GOODS.get(e.type, "挂号费"), e.hospital_no, f"{fee}", "0.60%", _money(e.amount), "0.00", ""]
            self.settled += e.amount
        else:
            refund_id = "50" + _digits(e.refund_no or e.batch + "R", 27)
            values = common + ["REFUND", "OTHERS", "CNY", "0.00", "0.00", refund_id, e.refund_no or e.batch + "R1"]
            values += [_money(e.amount), "0.00", "ORIGINAL", "SUCCESS", GOODS.get(e.type, "挂号费"), e.hospital_no]
            values += [f"{-fee}", "0.60%", "0.00", _money(e.amount), ""]
            self.refunded += e.amount
            fee = -fee
        self.fees += fee
        self.count += 1
        self.out.writerow(["`" + v for v in values])

    def end(self, exported_at: dt.datetime) -> None:
        self.out.writerow(WECHAT_SUMMARY)
        totals = [str(self.count), _money(self.settled), _money(self.refunded), "0.00", f"{self.fees:.5f}"]
        totals += [_money(self.settled), _money(self.refunded)]
        self.out.writerow(["`" + v for v in totals])


class AlipayWriter:
    """Alipay 业务明细: `#` header lines, tab-padded numbers, negative refunds, `#` summary lines."""

    def __init__(self, text, bill_date: dt.date, merchant_id: str):
        self.text = text
        self.out = csv.writer(text, lineterminator="\r\n")
        self.bill_date = bill_date
        self.account = merchant_id or "20880000000000000156"
        self.count = 0
        self.totals = {PAYMENT: [0, Decimal("0")], REFUND: [0, Decimal("0")]}

    def begin(self) -> None:
        start = dt.datetime.combine(self.bill_date, dt.time())
        end = start + dt.timedelta(days=1)
        for line in (
            "#支付宝业务明细查询",
            f"#账号：[{self.account}]",
            f"#起始日期：[{start:%Y年%m月%d日 %H:%M:%S}]   终止日期：[{end:%Y年%m月%d日 %H:%M:%S}]",
            ALIPAY_RULE,
        ):
            self.text.write(line + "\r\n")
        self.out.writerow(ALIPAY_HEADER)

    def row(self, e: BillEntry) -> None:
        trade_no = e.pay_trade_no or f"{self.bill_date:%Y%m%d}2200140" + _digits(e.batch, 13)
        moment = f"{timezone.localtime(e.occurred_at):%Y-%m-%d %H:%M:%S}"
        sign = Decimal("1") if e.kind == PAYMENT else Decimal("-1")
        amount = _money(sign * e.amount)
        fee = _fee(e.amount).quantize(Decimal("0.01"))
        values = [trade_no + "\t", e.batch + "\t", "交易" if e.kind == PAYMENT else "退款", GOODS.get(e.type, "挂号费")]
        values += [moment, moment, "\t", "\t", "\t", "\t", "hz***@example.com\t", amount, amount]
        values += ["0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00"]
        values += [(e.refund_no or e.batch + "R1") + "\t" if e.kind == REFUND else "\t"]
        values += [_money(-sign * fee), "0.00", e.hospital_no]
        self.totals[e.kind][0] += 1
        self.totals[e.kind][1] += sign * e.amount
        self.count += 1
        self.out.writerow(values)

    def end(self, exported_at: dt.datetime) -> None:
        paid, refunded = self.totals[PAYMENT], self.totals[REFUND]
        for line in (
            ALIPAY_END,
            f"#交易合计：{paid[0]}笔，商家实收共{_money(paid[1])}元，商家优惠共0.00元",
            f"#退款合计：{refunded[0]}笔，商家实收共{_money(refunded[1])}元，商家优惠共0.00元",
            f"#导出时间：[{timezone.localtime(exported_at):%Y年%m月%d日 %H:%M:%S}]",
        ):
            self.text.write(line + "\r\n")


LAYOUTS = {WECHAT: WechatWriter, ALIPAY: AlipayWriter}
