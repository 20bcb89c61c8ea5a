"""Center-side handlers of the booking interfaces 2.1–2.4: message fields → services → response fields."""

from __future__ import annotations

from booking.services import reports, schedules
from regional.errors import DomainError
from regional.inbound import register
from regional.messages.catalog import (
    CHANGE_WORK_NOTICE,
    PROMISE_NOTICE_CENTER,
    STOP_WORK_NOTICE,
    SYNCHRONIZED_WORK_INFO,
)
from regional.messages.codes import YesNo
from regional.models import Hospital


@register(SYNCHRONIZED_WORK_INFO)
def synchronized_work_info(*, hospital: Hospital, data: dict) -> dict:
    count = schedules.schedules_sync(
        hospital=hospital, records=data["WorkInfo"], clear_future=data["IsMultiTimes"] == YesNo.YES
    )
    return {"Count": count, "HospitalNo": hospital.hospital_no}


@register(STOP_WORK_NOTICE)
def stop_work_notice(*, hospital: Hospital, data: dict) -> dict:
    schedules.schedules_stop(hospital=hospital, records=data["WorkInfo"])
    return {"HospitalNo": hospital.hospital_no}


@register(CHANGE_WORK_NOTICE)
def change_work_notice(*, hospital: Hospital, data: dict) -> dict:
    schedules.schedules_change(hospital=hospital, records=data["WorkInfo"])
    return {}


@register(PROMISE_NOTICE_CENTER)
def promise_notice(*, hospital: Hospital, data: dict) -> dict:
    """2.4: each record applied on its own; `WorkFlowId` lists the processed ids, comma-separated.
    Unknown or inapplicable ids are named in ErrorMsg (ResultCode 1 when any record failed)."""
    processed, errors = reports.orders_report(hospital=hospital, records=data["WorkInfo"])
    if not processed:
        raise DomainError("；".join(errors)[:256])
    answer = {"HospitalNo": hospital.hospital_no, "WorkFlowId": ",".join(processed)}
    if errors:
        answer.update(ResultCode=1, ErrorMsg=("；".join(errors) + "（其余记录已处理）")[:256])
    return answer
