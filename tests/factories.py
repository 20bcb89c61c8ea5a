"""factory_boy factories for the suite's data: the sandbox hospital's own rows, and the platform's
rows as the booking app leaves them (ledger entries, orders) for the finance tests. Actors that
behave (clients, the REST API, message builders) are in tests/base.py. No real personal data."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import factory
from django.utils import timezone

from booking.models import Channel, LedgerEntry, Order, Schedule, hash_token
from reconciliation.models import StatementSource
from regional.models import Department, Doctor
from sandbox import services as sandbox_services
from sandbox.models import SandboxDepartment, SandboxDoctor, SandboxHospital, SandboxSchedule

# A patient as the platform sends one to a hospital (3.1), in the specification's placeholder style.
PATIENT = {
    "Name": "测试患者一",
    "Sex": "1",
    "SexName": "男性",
    "Age": "40",
    "TelephoneNo": "13400000001",
    "Address": "演示市测试路1号",
    "IDCode": "3306XXXXXXXXXX0001",
}


def _local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def _yesterday() -> dt.date:
    return timezone.localdate() - dt.timedelta(days=1)


# -- the sandbox hospital -----------------------------------------------------------------------


class SandboxHospitalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SandboxHospital
        django_get_or_create = ("hospital_no",)

    hospital_no = "S001"
    name = "测试沙箱医院"
    degree_code = "31"
    degree_name = "三级甲等"


class SandboxDepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SandboxDepartment

    hospital = factory.SubFactory(SandboxHospitalFactory)
    department_id = factory.Sequence(lambda n: f"K{n:02d}")
    name = factory.Sequence(lambda n: f"测试科室{n}")


class SandboxDoctorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SandboxDoctor

    hospital = factory.SelfAttribute("department.hospital")
    department = factory.SubFactory(SandboxDepartmentFactory)
    doctor_id = factory.Sequence(lambda n: f"D{n:03d}")
    name = factory.Sequence(lambda n: f"测试医生{n}")


def session(
    hospital: SandboxHospital,
    *,
    slots: int = 5,
    price: str = "12.50",
    days_ahead: int = 1,
    timeshare: bool = True,
    work_id: str | None = None,
    doctor: SandboxDoctor | None = None,
) -> SandboxSchedule:
    """A morning session of `slots` numbers, `days_ahead` days from today, made by the sandbox's own
    service (it numbers the slots); a new doctor in a new department unless `doctor` is given."""
    doctor = doctor or SandboxDoctorFactory(department=SandboxDepartmentFactory(hospital=hospital), hospital=hospital)
    return sandbox_services.schedule_create(
        hospital=hospital,
        doctor=doctor,
        work_date=timezone.localdate() + dt.timedelta(days=days_ahead),
        work_time_code="1",
        start_time=dt.time(8, 0),
        stop_time=dt.time(10, 0),
        slots=slots,
        price=Decimal(price),
        timeshare=timeshare,
        work_id=work_id,
    )


# -- the platform's rows, as the booking app writes them ------------------------------------------


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("code",)

    code = "JKMZWX"
    name = "微信"
    token_hash = factory.LazyFunction(lambda: hash_token(secrets.token_hex(20)))  # a token nobody holds


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("hospital", "department_id")

    department_id = "K01"
    name = "内科"


class DoctorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Doctor
        django_get_or_create = ("hospital", "doctor_id")

    doctor_id = "D001"
    name = "测试医生"
    department_code = "K01"


class ScheduleFactory(factory.django.DjangoModelFactory):
    """One session of the hospital's in the platform's pool (a whole day's, for finance tests)."""

    class Meta:
        model = Schedule
        django_get_or_create = ("hospital", "work_id")

    work_date = factory.LazyFunction(_yesterday)
    work_id = factory.LazyAttribute(lambda o: f"W{o.work_date:%Y%m%d}")
    department = factory.LazyAttribute(lambda o: DepartmentFactory(hospital=o.hospital))
    department_code = "K01"
    doctor = factory.LazyAttribute(lambda o: DoctorFactory(hospital=o.hospital))
    doctor_code = "D001"
    time_code = 1
    start_time = dt.time(8)
    stop_time = dt.time(12)
    price = Decimal("12.50")
    remaining = 10
    total = 20


class OrderFactory(factory.django.DjangoModelFactory):
    """A booking.Order as the booking app leaves it (schedule, channel and all)."""

    class Meta:
        model = Order

    class Params:
        day = factory.LazyFunction(_yesterday)
        n = factory.Sequence(lambda n: n + 1)

    order_no = factory.LazyAttribute(lambda o: f"O{o.day:%Y%m%d}{o.n:06d}")
    channel = factory.SubFactory(ChannelFactory)
    schedule = factory.LazyAttribute(lambda o: ScheduleFactory(hospital=o.hospital, work_date=o.day, price=o.fee))
    status = Order.PAID
    lock_transaction_id = factory.LazyAttribute(lambda o: f"L{o.n:08d}")
    fee = Decimal("12.50")
    patient_name = "测试患者一"
    pay_type = Order.PAY_ONLINE
    pay_channel = "wepay"
    paid_at = factory.LazyAttribute(lambda o: _local(o.day, 9) if o.status != Order.BOOKED else None)
    created_at = factory.LazyAttribute(lambda o: _local(o.day, 8))


def platform_order(
    hospital, *, workflow_id: str, status: str, fee: str = "12.50", pay_channel: str = "wepay", day=None
) -> Order:
    """A booking.Order as the booking app leaves it, for three-way checks."""
    return OrderFactory(
        hospital=hospital, workflow_id=workflow_id, status=status, fee=Decimal(fee), pay_channel=pay_channel,
        day=day or _yesterday(),
    )  # fmt: skip


class LedgerEntryFactory(factory.django.DjangoModelFactory):
    """A payment in the ledger, as the booking app records one."""

    class Meta:
        model = LedgerEntry

    class Params:
        day = factory.LazyFunction(_yesterday)
        n = factory.Sequence(lambda n: n + 1)

    batch = factory.LazyAttribute(lambda o: f"T{o.day:%Y%m%d}{o.n:06d}")
    entry_key = factory.LazyAttribute(
        lambda o: f"{o.batch}:{'payment' if o.kind == LedgerEntry.PAYMENT else 'refund'}:{o.n}"
    )
    pay_trade_no = factory.LazyAttribute(lambda o: f"42000{o.n:023d}")
    type = "1"
    kind = LedgerEntry.PAYMENT
    order = None
    pay_channel = "wepay"
    patient_name = "测试患者一"
    amount = Decimal("12.50")
    created_at = factory.LazyAttribute(lambda o: _local(o.day, 8 + o.n % 10, o.n % 60))


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
    values = {"batch": batch} if batch else {}
    if trade_no is not None:
        values["pay_trade_no"] = trade_no
    if when is not None:
        values["created_at"] = when
    return LedgerEntryFactory(
        hospital=hospital, day=day, amount=Decimal(amount), pay_channel=pay_channel, order=order,
        patient_name=name, type=type, **values,
    )  # fmt: skip


def refund(payment: LedgerEntry, *, when: dt.datetime, amount: str | None = None) -> LedgerEntry:
    """The refund of a payment in the ledger (same batch, trade number, hospital and order)."""
    return LedgerEntryFactory(
        kind=LedgerEntry.REFUND, batch=payment.batch, pay_trade_no=payment.pay_trade_no, type=payment.type,
        hospital=payment.hospital, order=payment.order, pay_channel=payment.pay_channel,
        patient_name=payment.patient_name, amount=Decimal(amount) if amount else payment.amount, created_at=when,
    )  # fmt: skip


def source(pay_channel: str = "wepay", **extra) -> StatementSource:
    """The finance office's statement source of a pay channel (the sandbox channel unless `extra` says).
    One on the sandbox channel has credentials, since the channel, a partner reached over HTTP (on
    PUBLIC_BASE_URL: the `public_url` fixture), serves no source without."""
    names = {"wepay": "微信支付商户号", "alipay": "支付宝账号"}
    defaults = {"name": names[pay_channel], "adapter": StatementSource.SANDBOX, "merchant_id": ""}
    obj, _ = StatementSource.objects.update_or_create(pay_channel=pay_channel, defaults={**defaults, **extra})
    if obj.adapter == StatementSource.SANDBOX and not obj.username:
        obj.username = "platform"
        obj.set_secret(f"sandbox-secret-{pay_channel}")
        obj.save()
    return obj
