"""The sandbox hospital's sessions: creating them, its number sources and queue, stops and changes."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from regional.errors import Conflict, DomainError, NotFound
from sandbox.models import (
    SandboxDoctor,
    SandboxHospital,
    SandboxOrder,
    SandboxSchedule,
    SandboxSlot,
)

__all__ = [
    "schedule_create",
    "schedule_get",
    "schedule_registration_info",
    "schedule_slots",
    "schedule_lineup",
    "queue_call_next",
    "schedule_stop",
    "schedule_change",
]


# -- schedules ------------------------------------------------------------------------------------


@transaction.atomic
def schedule_create(
    *,
    hospital: SandboxHospital,
    doctor: SandboxDoctor,
    work_date: dt.date,
    work_time_code: str,
    start_time: dt.time,
    stop_time: dt.time,
    slots: int,
    price: Decimal,
    work_id: str | None = None,
    timeshare: bool = True,
    registration_type_id: str = "",
    registration_type_name: str = "",
    hos_locked_count: int = 0,
) -> SandboxSchedule:
    """A session of `slots` numbers; with `timeshare`, each number gets its own time slot."""
    if slots <= 0:
        raise DomainError("号源总数应大于0")
    if stop_time <= start_time:
        raise DomainError("结束时间应晚于开始时间")
    work_id = work_id or f"{doctor.doctor_id}-{work_date:%Y%m%d}-{work_time_code}"
    schedule = SandboxSchedule.objects.create(
        hospital=hospital,
        work_id=work_id,
        doctor=doctor,
        department=doctor.department,
        work_date=work_date,
        work_time_code=work_time_code,
        start_time=start_time,
        stop_time=stop_time,
        work_addr=doctor.department.location,
        registration_type_id=registration_type_id,
        registration_type_name=registration_type_name,
        price=price,
        total=slots,
        remaining=slots,
        hos_locked_count=hos_locked_count,
    )
    if timeshare:
        begin = dt.datetime.combine(work_date, start_time)
        step = (dt.datetime.combine(work_date, stop_time) - begin) / slots
        SandboxSlot.objects.bulk_create(
            SandboxSlot(
                schedule=schedule,
                cur_num=n,
                start_time=(begin + step * (n - 1)).time().replace(microsecond=0),
                end_time=(begin + step * n).time().replace(microsecond=0),
                num_source_id=f"{work_id}-{n:03d}",
            )
            for n in range(1, slots + 1)
        )
    return schedule


def schedule_get(*, hospital: SandboxHospital, work_id: str) -> SandboxSchedule:
    schedule = (
        SandboxSchedule.objects.select_related("doctor", "department")
        .filter(hospital=hospital, work_id=work_id)
        .first()
    )
    if schedule is None:
        raise NotFound(f"WorkId 排班{work_id}不存在")
    return schedule


def schedule_registration_info(*, hospital: SandboxHospital, work_id: str, work_date: dt.date) -> SandboxSchedule:
    """3.4: the remaining numbers of one session; the date must be the session's."""
    schedule = schedule_get(hospital=hospital, work_id=work_id)
    if schedule.work_date != work_date:
        raise Conflict(f"WorkDate {work_date.isoformat()}与排班{work_id}的出诊日期{schedule.work_date}不一致")
    return schedule


def schedule_slots(*, hospital: SandboxHospital, work_id: str) -> list[SandboxSlot]:
    """3.8: the numbered time slots of a session (empty for a session without time slots)."""
    schedule = schedule_get(hospital=hospital, work_id=work_id)
    slots = list(schedule.slots.all())
    for slot in slots:
        slot.schedule = schedule
    return slots


def schedule_lineup(*, hospital: SandboxHospital, work_id: str) -> dict:
    """3.7: the queue of a session, as the spec's WaitList record."""
    schedule = schedule_get(hospital=hospital, work_id=work_id)
    orders = schedule.orders.all()
    active = orders.filter(status__in=SandboxOrder.ACTIVE)
    waiting = active.filter(serial_number__gt=schedule.now_seq)
    return {
        "RegNum": orders.filter(status=SandboxOrder.VISITED).count(),
        "RegRemainNum": schedule.remaining,
        "WaitPers": waiting.count(),
        "NowSeq": str(schedule.now_seq),
        "HasRegNum": orders.exclude(status=SandboxOrder.CANCELLED).count(),
        "NotReportNum": waiting.filter(checked_in_at__isnull=True).count(),
        "ReportWaitNum": waiting.filter(checked_in_at__isnull=False).count(),
    }


def queue_call_next(*, schedule: SandboxSchedule) -> SandboxOrder | None:
    """The doctor calls the next patient: the next active number is seen (已履约) and the queue moves on."""
    with transaction.atomic():
        # Two nurses pressing 叫号 at once must neither call the same patient twice nor skip one:
        # the schedule row lock makes reading and advancing `now_seq` one step.
        locked = SandboxSchedule.objects.select_for_update().get(pk=schedule.pk)
        order = (
            locked.orders.filter(status__in=SandboxOrder.ACTIVE, serial_number__gt=locked.now_seq)
            .order_by("serial_number")
            .first()
        )
        if order is None:
            return None
        order.status = SandboxOrder.VISITED
        order.visited_at = timezone.now()
        order.save(update_fields=["status", "visited_at"])
        if order.slot_id:
            SandboxSlot.objects.filter(pk=order.slot_id).update(status=SandboxSlot.TAKEN)
        locked.now_seq = order.serial_number
        locked.save(update_fields=["now_seq", "updated_at"])
    schedule.now_seq = locked.now_seq
    return order


@transaction.atomic
def schedule_stop(*, schedule: SandboxSchedule, reason: str) -> SandboxSchedule:
    """The doctor will not come: the session is stopped and its free numbers become invalid."""
    if not reason:
        raise DomainError("请填写停诊原因")
    SandboxSchedule.objects.filter(pk=schedule.pk).update(
        status=SandboxSchedule.STOPPED, stop_reason=reason[:500], remaining=0
    )
    schedule.slots.filter(status=SandboxSlot.FREE).update(status=SandboxSlot.INVALID)
    schedule.refresh_from_db()
    return schedule


@transaction.atomic
def schedule_change(
    *, schedule: SandboxSchedule, reason: str, doctor: SandboxDoctor | None = None, work_id: str | None = None
) -> SandboxSchedule:
    """换诊: another doctor (or the same at another slot) takes the session; its orders follow.

    The old session is kept (retired, marked replaced) because orders refer to it.
    """
    if not reason:
        raise DomainError("请填写换诊原因")
    old = SandboxSchedule.objects.select_for_update().get(pk=schedule.pk)
    if old.status != SandboxSchedule.OPEN:
        raise Conflict(f"排班{old.work_id}已{old.get_status_display()}，不能换诊")
    doctor = doctor or old.doctor
    new = schedule_create(
        hospital=old.hospital,
        doctor=doctor,
        work_date=old.work_date,
        work_time_code=old.work_time_code,
        start_time=old.start_time,
        stop_time=old.stop_time,
        slots=old.total,
        price=old.price,
        work_id=work_id or f"{old.work_id}-H{secrets.token_hex(2).upper()}",
        timeshare=old.slots.exists(),
        registration_type_id=old.registration_type_id,
        registration_type_name=old.registration_type_name,
        hos_locked_count=old.hos_locked_count,
    )
    new_slots = {slot.cur_num: slot for slot in new.slots.all()}
    for order in old.orders.filter(status__in=SandboxOrder.ACTIVE).select_related("slot"):
        order.schedule = new
        if order.slot is not None:
            target = new_slots.get(order.slot.cur_num)
            if target is not None:
                target.status = order.slot.status
                target.save(update_fields=["status"])
            order.slot = target
        order.save(update_fields=["schedule", "slot"])
    SandboxSchedule.objects.filter(pk=new.pk).update(remaining=old.remaining, next_serial=old.next_serial)
    old.status = SandboxSchedule.REPLACED
    old.stop_reason = reason[:500]
    old.replaced_by = new
    old.remaining = 0
    old.save(update_fields=["status", "stop_reason", "replaced_by", "remaining", "updated_at"])
    old.slots.filter(status=SandboxSlot.FREE).update(status=SandboxSlot.INVALID)
    new.refresh_from_db()
    return new
