"""Center-side handlers of the public interfaces 5.1–5.3: message fields → services → response fields."""

from __future__ import annotations

from regional import services
from regional.inbound import register
from regional.messages.catalog import DEPARTMENT_INFO, DOCTOR_INFO, HOSPITAL_INFO
from regional.models import Hospital


@register(HOSPITAL_INFO)
def hospital_info(*, hospital: Hospital, data: dict) -> dict:
    services.hospital_info_apply(hospital=hospital, info=data)
    return {"HospitalNo": hospital.hospital_no}


@register(DEPARTMENT_INFO)
def department_info(*, hospital: Hospital, data: dict) -> dict:
    count = services.departments_apply(hospital=hospital, records=data["DepartmentInfo"])
    return {"Count": count, "HospitalNo": hospital.hospital_no}


@register(DOCTOR_INFO)
def doctor_info(*, hospital: Hospital, data: dict) -> dict:
    count = services.doctors_apply(hospital=hospital, records=data["DoctorInfo"])
    return {"Count": count, "HospitalNo": hospital.hospital_no}
