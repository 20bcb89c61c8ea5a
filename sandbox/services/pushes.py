"""The sandbox hospital's pushes to the center over SOAP (2.x and 5.x messages).

Never called inside a database transaction: the local change commits first, then the center is told.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.utils import timezone
from requests.adapters import BaseAdapter

from regional.errors import DomainError
from regional.messages import catalog, codes
from sandbox import center
from sandbox.models import (
    SandboxDoctor,
    SandboxHospital,
    SandboxOrder,
    SandboxSchedule,
)
from sandbox.services.schedules import schedule_change, schedule_stop

__all__ = [
    "center_push_hospital",
    "center_push_departments",
    "center_push_doctors",
    "schedule_record",
    "center_push_schedules",
    "center_push_stop",
    "center_push_change",
    "center_push_promise",
    "schedule_stop_and_notify",
    "schedule_change_and_notify",
]


# -- pushes to the center -------------------------------------------------------------------------


def _send(
    hospital: SandboxHospital, interface: catalog.Interface, data: dict, adapter: BaseAdapter | None
) -> center.CenterAnswer:
    return center.send(
        hospital_no=hospital.hospital_no,
        center_url=hospital.center_url,
        secret=hospital.center_secret,
        interface=interface,
        data=data,
        adapter=adapter,
    )


def center_push_hospital(*, hospital: SandboxHospital, adapter: BaseAdapter | None = None) -> center.CenterAnswer:
    """5.1 HospitalInfo: the hospital's own description."""
    data = {
        "HospitalName": hospital.name,
        "HospitalShortName": hospital.short_name,
        "DegreeCode": hospital.degree_code,
        "DegreeName": hospital.degree_name,
        "Phone": hospital.phone,
        "Addr": hospital.address,
        "Desc": hospital.description,
        "Website": hospital.website,
        "BusRoute": hospital.bus_route,
        "SeqNo": hospital.seq_no,
        "IsDelete": False,
    }
    return _send(hospital, catalog.HOSPITAL_INFO, data, adapter)


def center_push_departments(*, hospital: SandboxHospital, adapter: BaseAdapter | None = None) -> center.CenterAnswer:
    """5.2 DepartmentInfo: every department, deleted ones flagged."""
    records = [
        {
            "DepartmentId": d.department_id,
            "DepartmentName": d.name,
            "DepartmentIdGB": d.gb_id,
            "DepartmentNameGB": d.gb_name,
            "Desc": d.description,
            "ParentDepartmentId": d.parent_department_id,
            "IsHospitalization": "1" if d.is_hospitalization else "0",
            "IsOutpatient": "1" if d.is_outpatient else "0",
            "OutpatientType": "1" if d.is_outpatient else None,
            "DepartAddr": d.location,
            "IsDelete": d.is_deleted,
            "SeqNo": d.seq_no,
        }
        for d in hospital.departments.all()
    ]
    return _send(hospital, catalog.DEPARTMENT_INFO, {"Count": len(records), "DepartmentInfo": records}, adapter)


def center_push_doctors(*, hospital: SandboxHospital, adapter: BaseAdapter | None = None) -> center.CenterAnswer:
    """5.3 DoctorInfo: every doctor with their department."""
    sex_names = dict(codes.SexCode.choices)
    records = [
        {
            "DoctorId": d.doctor_id,
            "DoctorName": d.name,
            "DoctorSexCode": d.sex_code or None,
            "DoctorSexName": sex_names.get(d.sex_code, ""),
            "DoctorSkill": d.skill,
            "DoctorDesc": d.description,
            "DoctorDegreeCode": d.title_code,
            "DoctorDegreeName": d.title,
            "DepartmentId": d.department.department_id,
            "DepartmentName": d.department.name,
            "IsZJ": "1" if d.is_expert else "0",
            "IsDelete": d.is_deleted,
            "SeqNo": d.seq_no,
        }
        for d in hospital.doctors.select_related("department")
    ]
    return _send(hospital, catalog.DOCTOR_INFO, {"Count": len(records), "DoctorInfo": records}, adapter)


def schedule_record(schedule: SandboxSchedule) -> dict:
    """One WorkInfo record of synchronizedWorkInfo (2.1)."""
    return {
        "WorkId": schedule.work_id,
        "WorkAddr": schedule.work_addr,
        "DoctorId": schedule.doctor.doctor_id,
        "DoctorName": schedule.doctor.name,
        "DepartmentId": schedule.department.department_id,
        "DepartmentName": schedule.department.name,
        "WorkDate": schedule.work_date,
        "WorkTimeCode": schedule.work_time_code,
        "WorkStartDate": schedule.start_time,
        "WorkStopDate": schedule.stop_time,
        "RegistrationTypeId": schedule.registration_type_id,
        "RegistrationTypeName": schedule.registration_type_name,
        "RegistrationPrice": schedule.price,
        "RegistrationNumber": schedule.remaining,
        "RegistrationCount": schedule.total,
        "HosLockedCount": schedule.hos_locked_count,
    }


def center_push_schedules(
    *,
    hospital: SandboxHospital,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    schedules: Sequence[SandboxSchedule] | None = None,
    full: bool = True,
    adapter: BaseAdapter | None = None,
) -> center.CenterAnswer:
    """2.1 synchronizedWorkInfo: open sessions from today (or the given ones).

    With `full`, IsMultiTimes=1 asks the center to replace the hospital's earlier future sessions.
    """
    if schedules is None:
        query = SandboxSchedule.objects.filter(
            hospital=hospital, status=SandboxSchedule.OPEN, work_date__gte=date_from or timezone.localdate()
        )
        if date_to is not None:
            query = query.filter(work_date__lte=date_to)
        schedules = list(query.select_related("doctor", "department").order_by("work_date", "work_time_code"))
    records = [schedule_record(s) for s in schedules]
    data = {"Count": len(records), "IsMultiTimes": "1" if full else "0", "WorkInfo": records}
    return _send(hospital, catalog.SYNCHRONIZED_WORK_INFO, data, adapter)


def center_push_stop(
    *, schedules: Sequence[SandboxSchedule], adapter: BaseAdapter | None = None
) -> center.CenterAnswer:
    """2.2 stopWorkNotice for sessions already stopped locally (schedule_stop)."""
    hospital = _one_hospital(schedules)
    records = [{"WorkId": s.work_id, "StopReason": s.stop_reason or "停诊"} for s in schedules]
    return _send(hospital, catalog.STOP_WORK_NOTICE, {"WorkInfo": records}, adapter)


def center_push_change(
    *, old: SandboxSchedule, new: SandboxSchedule, adapter: BaseAdapter | None = None
) -> center.CenterAnswer:
    """2.3 changeWorkNotice: the retired session and the one replacing it (schedule_change)."""
    new_info = schedule_record(new)
    new_info.pop("HosLockedCount")
    new_info.update(
        {
            "DoctorDesc": new.doctor.description,
            "DoctorDegreeCode": new.doctor.title_code,
            "DoctorDegreeName": new.doctor.title,
            "DoctorSkill": new.doctor.skill,
        }
    )
    record = {"OldWorkId": old.work_id, "ChangeReason": old.stop_reason or "换诊", "NewWorkInfo": new_info}
    return _send(old.hospital, catalog.CHANGE_WORK_NOTICE, {"WorkInfo": [record]}, adapter)


PROMISE_TYPES = {SandboxOrder.CANCELLED: "3", SandboxOrder.VISITED: "4", SandboxOrder.NO_SHOW: "6"}


def center_push_promise(*, orders: Sequence[SandboxOrder], adapter: BaseAdapter | None = None) -> center.CenterAnswer:
    """2.4 getPromiseNotice: fulfilment (4), no-shows (6) and the hospital's own cancellations (3)."""
    hospital = _one_hospital(orders)
    records = []
    for order in orders:
        work_type = PROMISE_TYPES.get(order.status)
        if work_type is None:
            raise DomainError(f"挂号单{order.work_flow_id}{order.get_status_display()}，没有可报告的履约状态")
        moment = order.visited_at or order.cancelled_at or timezone.now()
        records.append(
            {
                "WorkFlowId": order.work_flow_id,
                "workType": work_type,
                "workDate": timezone.localtime(moment).replace(tzinfo=None, microsecond=0),
                "desc": {"3": "医院退号", "4": "已就诊", "6": "未按时就诊"}[work_type],
            }
        )
    answer = _send(hospital, catalog.PROMISE_NOTICE_CENTER, {"WorkInfo": records}, adapter)
    if answer.ok:
        for order in orders:
            SandboxOrder.objects.filter(pk=order.pk).update(reported_status=order.status)
    return answer


def schedule_stop_and_notify(
    *, schedule: SandboxSchedule, reason: str, adapter: BaseAdapter | None = None
) -> center.CenterAnswer:
    """Stop a session locally, then (after the commit) tell the center."""
    schedule = schedule_stop(schedule=schedule, reason=reason)
    return center_push_stop(schedules=[schedule], adapter=adapter)


def schedule_change_and_notify(
    *, schedule: SandboxSchedule, reason: str, doctor: SandboxDoctor | None = None, adapter: BaseAdapter | None = None
) -> tuple[SandboxSchedule, center.CenterAnswer]:
    """Change a session locally, then (after the commit) tell the center."""
    new = schedule_change(schedule=schedule, reason=reason, doctor=doctor)
    old = SandboxSchedule.objects.select_related("hospital").get(pk=schedule.pk)
    return new, center_push_change(old=old, new=new, adapter=adapter)


def _one_hospital(items: Sequence[SandboxSchedule] | Sequence[SandboxOrder]) -> SandboxHospital:
    if not items:
        raise DomainError("没有选择任何记录")
    hospitals = {item.hospital_id for item in items}
    if len(hospitals) != 1:
        raise DomainError("一次只能推送同一家医院的记录")
    return items[0].hospital
