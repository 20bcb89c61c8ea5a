"""Shared actors of the reconciliation suite: ledger entries written as the booking app writes them,
statement sources, the sandbox channel's bills, and orders at a sandbox hospital. No real personal data."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from decimal import Decimal

from django.utils import timezone

from booking.models import LedgerEntry
from reconciliation import selectors, services
from reconciliation.models import StatementSource
from sandbox import payments as sandbox

_seq = itertools.count(1)


def yesterday() -> dt.date:
    return timezone.localdate() - dt.timedelta(days=1)


def at(day: dt.date, hour: int = 9, minute: int = 0, second: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute, second)))


def pay(
    hospital,
    *,
    day: dt.date,
    amount: str = "12.50",
    batch: str | None = None,
    pay_channel: str = "wepay",
    when: dt.datetime | None = None,
    order=None,
    name: str = "测试患者一",
    type: str = "1",
    trade_no: str | None = None,
) -> LedgerEntry:
    """A payment in the ledger, as the booking app records one."""
    n = next(_seq)
    batch = batch or f"T{day:%Y%m%d}{n:06d}"
    return LedgerEntry.objects.create(
        entry_key=f"{batch}:payment:{n}",
        batch=batch,
        pay_trade_no=trade_no if trade_no is not None else f"42000{n:023d}",
        type=type,
        kind=LedgerEntry.PAYMENT,
        hospital=hospital,
        order=order,
        pay_channel=pay_channel,
        patient_name=name,
        amount=Decimal(amount),
        created_at=when or at(day, 8 + n % 10, n % 60),
    )


def refund(payment: LedgerEntry, *, when: dt.datetime, amount: str | None = None) -> LedgerEntry:
    n = next(_seq)
    return LedgerEntry.objects.create(
        entry_key=f"{payment.batch}:refund:{n}",
        batch=payment.batch,
        pay_trade_no=payment.pay_trade_no,
        type=payment.type,
        kind=LedgerEntry.REFUND,
        hospital=payment.hospital,
        order=payment.order,
        pay_channel=payment.pay_channel,
        patient_name=payment.patient_name,
        amount=Decimal(amount) if amount else payment.amount,
        created_at=when,
    )


def source(pay_channel: str = "wepay", **extra) -> StatementSource:
    """A statement source; one on the sandbox channel has credentials, since the channel, a partner
    reached over HTTP (on PUBLIC_BASE_URL: the `public_url` fixture), serves no source without."""
    names = {"wepay": "微信支付商户号", "alipay": "支付宝账号"}
    defaults = {"name": names[pay_channel], "adapter": StatementSource.SANDBOX, "merchant_id": ""}
    obj, _ = StatementSource.objects.update_or_create(pay_channel=pay_channel, defaults={**defaults, **extra})
    if obj.adapter == StatementSource.SANDBOX and not obj.username:
        obj.username = "platform"
        obj.set_secret(f"sandbox-secret-{pay_channel}")
        obj.save()
    return obj


def bill(pay_channel: str, day: dt.date, **knobs) -> tuple[bytes, sandbox.Manifest]:
    """The sandbox channel's bill of `day` from the ledger, as bytes, with its manifest."""
    out = io.BytesIO()
    layout = "alipay" if pay_channel == "alipay" else "wechat"
    manifest = sandbox.write_bill(
        layout=layout,
        bill_date=day,
        entries=selectors.ledger_bill_entries(pay_channel=pay_channel, day=day),
        out=out,
        knobs=sandbox.Knobs.from_options(knobs),
    )
    return out.getvalue(), manifest


def import_bill(pay_channel: str, day: dt.date, **knobs) -> sandbox.Manifest:
    content, manifest = bill(pay_channel, day, **knobs)
    services.statement_import(source=source(pay_channel), bill_date=day, file=io.BytesIO(content), filename="bill.csv")
    return manifest


def platform_order(
    hospital, *, workflow_id: str, status: str, fee: str = "12.50", pay_channel: str = "wepay", day=None
):
    """A booking.Order as the booking app leaves it (schedule, channel and all), for three-way checks."""
    from booking.models import Channel, Order, Schedule
    from regional.models import Department, Doctor

    day = day or yesterday()
    department, _ = Department.objects.get_or_create(hospital=hospital, department_id="K01", defaults={"name": "内科"})
    doctor, _ = Doctor.objects.get_or_create(
        hospital=hospital, doctor_id="D001", defaults={"name": "测试医生", "department_code": "K01"}
    )
    channel = Channel.objects.filter(code="JKMZWX").first()
    if channel is None:
        channel = Channel(code="JKMZWX", name="微信")
        channel.issue_token()
        channel.save()
    schedule, _ = Schedule.objects.get_or_create(
        hospital=hospital,
        work_id=f"W{day:%Y%m%d}",
        defaults={
            "doctor": doctor, "doctor_code": "D001", "department": department, "department_code": "K01",
            "work_date": day, "time_code": 1, "start_time": dt.time(8), "stop_time": dt.time(12),
            "price": Decimal(fee), "remaining": 10, "total": 20,
        },
    )  # fmt: skip
    n = next(_seq)
    return Order.objects.create(
        order_no=f"O{day:%Y%m%d}{n:06d}",
        channel=channel,
        hospital=hospital,
        schedule=schedule,
        status=status,
        lock_transaction_id=f"L{n:08d}",
        workflow_id=workflow_id,
        fee=Decimal(fee),
        patient_name="测试患者一",
        pay_type=Order.PAY_ONLINE,
        pay_channel=pay_channel,
        paid_at=at(day, 9) if status != Order.BOOKED else None,
        created_at=at(day, 8),
    )
