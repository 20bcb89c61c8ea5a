"""Center-side handlers of the schedule interfaces 2.1–2.3: message fields → services → response fields."""

from __future__ import annotations

from booking import services
from regional.inbound import register
from regional.messages.catalog import CHANGE_WORK_NOTICE, STOP_WORK_NOTICE, SYNCHRONIZED_WORK_INFO
from regional.models import Hospital


@register(SYNCHRONIZED_WORK_INFO)
def synchronized_work_info(*, hospital: Hospital, data: dict) -> dict:
    count = services.schedules_sync(
        hospital=hospital, records=data["WorkInfo"], clear_future=data["IsMultiTimes"] == "1"
    )
    return {"Count": count, "HospitalNo": hospital.hospital_no}


@register(STOP_WORK_NOTICE)
def stop_work_notice(*, hospital: Hospital, data: dict) -> dict:
    services.schedules_stop(hospital=hospital, records=data["WorkInfo"])
    return {"HospitalNo": hospital.hospital_no}


@register(CHANGE_WORK_NOTICE)
def change_work_notice(*, hospital: Hospital, data: dict) -> dict:
    services.schedules_change(hospital=hospital, records=data["WorkInfo"])
    return {}
