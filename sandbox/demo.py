"""Demo and test data for sandbox hospitals: departments, doctors and sessions with time slots.

Everything is visibly fictitious (测试医生一, 演示市第一人民医院); there is no personal data here.
Building is idempotent: existing rows are kept, missing ones are added.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from sandbox import services
from sandbox.models import SandboxDepartment, SandboxDoctor, SandboxHospital, SandboxSchedule

NUMERALS = "一二三四五六七八九十"

# (DepartmentId, name, GB code, GB name)
DEPARTMENTS = (
    ("NK", "内科", "03", "内科"),
    ("WK", "外科", "04", "外科"),
    ("EK", "儿科", "07", "儿科"),
    ("FCK", "妇产科", "05", "妇产科"),
    ("YK", "眼科", "10", "眼科"),
    ("KQK", "口腔科", "12", "口腔科"),
)
SESSIONS = (("1", dt.time(8, 0), dt.time(12, 0)), ("3", dt.time(14, 0), dt.time(17, 30)))


@dataclass(frozen=True)
class Level:
    degree_code: str
    degree_name: str
    departments: int
    doctors_per_department: int
    slots: int
    price: Decimal
    expert_price: Decimal


LEVELS = {
    3: Level("31", "三级甲等", 6, 2, 12, Decimal("12.00"), Decimal("30.00")),
    2: Level("21", "二级甲等", 4, 2, 10, Decimal("8.00"), Decimal("15.00")),
    1: Level("11", "一级", 2, 1, 8, Decimal("5.00"), Decimal("5.00")),
}


def numeral(n: int) -> str:
    if n <= 10:
        return NUMERALS[n - 1]
    tens, ones = divmod(n, 10)
    return (NUMERALS[tens - 1] if tens > 1 else "") + "十" + (NUMERALS[ones - 1] if ones else "")


@transaction.atomic
def hospital_build(
    *,
    hospital_no: str,
    name: str,
    level: int = 3,
    center_url: str = "",
    center_secret: str = "",
    days: int = 14,
    start: dt.date | None = None,
    slots: int | None = None,
) -> SandboxHospital:
    """A sandbox hospital with departments, doctors and `days` days of morning/afternoon sessions."""
    spec = LEVELS[level]
    hospital, _ = SandboxHospital.objects.update_or_create(
        hospital_no=hospital_no,
        defaults={
            "name": name,
            "short_name": name[:10],
            "degree_code": spec.degree_code,
            "degree_name": spec.degree_name,
            "phone": "0571-00000000",
            "address": f"演示市测试路{level}号",
            "description": f"{name}为演示用沙箱医院，数据均为虚构。",
            "center_url": center_url,
            "center_secret": center_secret,
        },
    )
    doctor_no = 0
    doctors: list[SandboxDoctor] = []
    for seq, (dept_id, dept_name, gb_id, gb_name) in enumerate(DEPARTMENTS[: spec.departments], start=1):
        department, _ = SandboxDepartment.objects.get_or_create(
            hospital=hospital,
            department_id=dept_id,
            defaults={
                "name": dept_name,
                "gb_id": gb_id,
                "gb_name": gb_name,
                "location": f"门诊楼{seq}层",
                "description": f"{dept_name}门诊（演示数据）",
                "seq_no": seq,
            },
        )
        for n in range(1, spec.doctors_per_department + 1):
            doctor_no += 1
            expert = n == 1 and level >= 2
            doctor, _ = SandboxDoctor.objects.get_or_create(
                hospital=hospital,
                doctor_id=f"{dept_id}{n:02d}",
                defaults={
                    "name": f"测试医生{numeral(doctor_no)}",
                    "sex_code": "1" if doctor_no % 2 else "2",
                    "title_code": "231" if expert else "233",
                    "title": "主任医师" if expert else "主治医师",
                    "skill": f"{dept_name}常见病（演示数据）",
                    "description": "演示用虚构医生",
                    "department": department,
                    "is_expert": expert,
                    "seq_no": n,
                },
            )
            doctors.append(doctor)
    first = start or timezone.localdate()
    existing = set(
        SandboxSchedule.objects.filter(
            hospital=hospital, work_date__gte=first, work_date__lt=first + dt.timedelta(days=days)
        ).values_list("work_id", flat=True)
    )
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        for doctor in doctors:
            for code, begin, end in SESSIONS:
                work_id = f"{hospital_no}-{doctor.doctor_id}-{day:%Y%m%d}-{code}"
                if work_id in existing:
                    continue
                services.schedule_create(
                    hospital=hospital,
                    doctor=doctor,
                    work_date=day,
                    work_time_code=code,
                    start_time=begin,
                    stop_time=end,
                    slots=slots or spec.slots,
                    price=spec.expert_price if doctor.is_expert else spec.price,
                    work_id=work_id,
                    registration_type_id="2" if doctor.is_expert else "1",
                    registration_type_name="专家号" if doctor.is_expert else "普通号",
                )
    return hospital
