"""Shared actors for sandbox and hospital-client tests: a sandbox hospital with a session of
numbered slots, and the platform's Hospital row pointing at it over HTTP. No real personal data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from sandbox import services
from sandbox.models import SandboxDepartment, SandboxDoctor, SandboxHospital, SandboxSchedule

PATIENT = {
    "Name": "测试患者一",
    "Sex": "1",
    "SexName": "男性",
    "Age": "40",
    "TelephoneNo": "13400000001",
    "Address": "演示市测试路1号",
    "IDCode": "3306XXXXXXXXXX0001",
}


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
) -> SandboxSchedule:
    """A morning session of `slots` numbers, `days_ahead` days from today."""
    doctor = SandboxDoctorFactory(department=SandboxDepartmentFactory(hospital=hospital), hospital=hospital)
    return services.schedule_create(
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


def his_url(public_url: str, hospital_no: str) -> str:
    return f"{public_url}/sandbox/his/{hospital_no}/ws"
