"""The sandbox payment channel, a simulated partner like a real payment provider's bill gateway.

`GET /sandbox/pay/<pay_channel>/bill?date=yyyyMMdd` serves a day's bill in the provider's real
layout (WeChat Pay 交易账单 or Alipay 业务明细) and encoding, so that the whole reconciliation —
fetch over HTTP, import, match — runs end to end without a payment provider. The platform reaches
it only over HTTP, with its HTTP adapter, exactly as it reaches a real gateway.

What the simulated provider knows is wired in by the project's URLconf (config/urls.py): the
account of a channel (credentials, layout, merchant, difference knobs) and the day's trades, which
are the platform's own ledger. The sandbox imports none of the platform's apps.

Knobs inject the differences reconciliation must find, deterministically (the first payments
of the day in time order that have never been refunded, so a test knows which): a payment left
out, an extra payment the platform never recorded, a payment billed at another amount, a refund
at the channel only, a recorded refund left out. `write_bill` returns which Batches it altered.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import hashlib
import hmac
import io
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, BinaryIO

from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from regional.errors import DomainError

# The bill layouts and trade kinds, as the platform's statement reader names them.
WECHAT, ALIPAY = "wechat", "alipay"
PAYMENT, REFUND = "payment", "refund"
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
    entries: Iterable[Any],
    out: BinaryIO,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    merchant_id: str = "",
    exported_at: dt.datetime | None = None,
) -> Manifest:
    """Write the bill of `bill_date` for `entries` (in time order, each with BillEntry's
    attributes) to `out`; streams."""
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
    # Entries may be any rows with BillEntry's attributes (the ledger feed yields its own tuples).
    values = {f.name: getattr(entry, f.name) for f in fields(BillEntry)}
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


# -- the bill gateway over HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A channel's account at the simulated provider: who may download, and what its bills look like."""

    username: str
    secret: str
    layout: str = WECHAT
    merchant_id: str = ""
    options: dict = field(default_factory=dict)


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def _credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, secret


@require_GET
def bill_view(
    request: HttpRequest,
    pay_channel: str,
    *,
    account: Callable[[str], dict | None],
    entries: Callable[..., Iterable[Any]],
) -> HttpResponse:
    """The day's bill of `pay_channel`. `account(pay_channel)` gives the channel's Account fields
    (None: not opened); `entries(pay_channel=…, day=…)` the day's trades in time order. HTTP Basic
    with the account's own user name and secret; an account without credentials does not serve."""
    found = account(pay_channel)
    if found is None or not found.get("username") or not found.get("secret"):
        return _text("沙箱渠道未开通", 404)
    opened = Account(**found)
    given = _credentials(request)
    if given is None or not (
        hmac.compare_digest(given[0], opened.username) and hmac.compare_digest(given[1], opened.secret)
    ):
        response = _text("未授权", 401)
        response["WWW-Authenticate"] = 'Basic realm="sandbox-pay"'
        return response
    try:
        day = dt.datetime.strptime(request.GET.get("date", ""), "%Y%m%d").date()
    except ValueError:
        return _text("date 应为yyyyMMdd", 400)
    if day >= timezone.localdate():
        return _text(f"{day:%Y-%m-%d}的对账单尚未生成", 404)
    try:
        knobs = Knobs.from_options(opened.options)
    except DomainError as exc:
        return _text(exc.message, 400)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    write_bill(
        layout=opened.layout,
        bill_date=day,
        entries=entries(pay_channel=pay_channel, day=day),
        out=spool,
        knobs=knobs,
        merchant_id=opened.merchant_id,
    )
    spool.seek(0)
    name = f"{opened.merchant_id or pay_channel}_{day:%Y%m%d}_{'ALL' if opened.layout == WECHAT else '业务明细'}.csv"
    return FileResponse(spool, as_attachment=True, filename=name, content_type="text/csv")


def enabled_only(view: Callable) -> Callable:
    """The payment sandbox answers only where SANDBOX_ENABLED switches the simulated partners on."""
    import functools

    from django.conf import settings
    from django.http import Http404

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if not settings.SANDBOX_ENABLED:
            raise Http404("沙箱未启用")
        return view(request, *args, **kwargs)

    return wrapped
