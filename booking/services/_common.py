"""Helpers shared by the booking services: the order history line (`_record`), actors, the
session text patients read, a slot given back, the lock message, and the hospital look-up.

Private to `booking.services`; nothing outside the package imports it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import F

from booking.errors import OrderNotFound, ScheduleClosed
from booking.models import Channel, Order, OrderTransition, Schedule, WaitlistEntry
from regional.audit import audit_record
from regional.messages.codes import ChannelCode, SexCode
from regional.models import Hospital


def _record_path(record: dict, position: int, prefix: str) -> str:
    return f"{prefix}/Record[{record.get('_index', position)}]"


def _setting(name: str, default):
    return getattr(settings, name, default)


def _actor_channel(channel: Channel) -> str:
    return f"渠道{channel.code}"


def _actor_hospital(hospital: Hospital) -> str:
    return f"医院{hospital.hospital_no}"


SYSTEM = "系统"


def _record(
    order: Order, *, from_status: str, actor: str, reason: str = "", user=None, from_mark: str | None = None
) -> OrderTransition:
    """One line of the order's history, and the audit trail's entry for it."""
    transition = OrderTransition.objects.create(
        order=order,
        from_status=from_status,
        to_status=order.status,
        mark=order.mark,
        actor=actor[:100],
        user=user if getattr(user, "is_authenticated", False) else None,
        reason=reason[:500],
    )
    labels = dict(Order.Status.choices)
    before = {"status": from_status, "mark": order.mark if from_mark is None else from_mark}
    audit_record(
        action=f"订单状态：{labels.get(from_status, '新建')}→{labels[order.status]}",
        obj=order,
        before=before,
        after={"status": order.status, "mark": order.mark},
        user=user,
        actor=actor,
        reason=reason,
    )
    return transition


def _release_count(schedule_id: int) -> None:
    # Gives a reserved slot back. Bounded by `total` (a sync may already have reset `remaining`
    # to the hospital's figure); the next sync corrects any difference.
    Schedule.objects.filter(pk=schedule_id, remaining__lt=F("total")).update(remaining=F("remaining") + 1)


def _session_text(order: Order) -> str:
    schedule = order.schedule
    when = order.worktime or f"{schedule.start_time:%H:%M}-{schedule.stop_time:%H:%M}"
    hospital = order.hospital.short_name or order.hospital.name
    # Separated, so names read apart in an SMS ("…外科 测试医生二医生" ran together); schedule dates
    # and times are already the hospital's local clock.
    return (
        f"{hospital}·{schedule.department.name}·{schedule.doctor.name}医生，"
        f"{schedule.work_date:%m月%d日}{schedule.get_time_code_display()}（{when}）"
    )


def _order_for_update(**lookup) -> Order:
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .filter(**lookup)
        .first()
    )
    if order is None:
        raise OrderNotFound(f"订单{lookup.get('order_no') or lookup.get('workflow_id') or ''}不存在")
    return order


def _check_bookable(schedule: Schedule, now: dt.datetime | None = None) -> None:
    """`Schedule.is_bookable`, or the channel's error saying why not."""
    if schedule.is_bookable(now):
        return
    if schedule.status != Schedule.NORMAL:
        raise ScheduleClosed(f"排班{schedule.work_id}{schedule.get_status_display()}，不能预约")
    raise ScheduleClosed(f"排班{schedule.work_id}的出诊时间已过，不能预约")


def _lock_message(order: Order, schedule: Schedule) -> dict:
    return {
        "TransactionId": order.lock_transaction_id,
        "PatientNo": order.card_no or None,
        "CardType": order.card_type or None,
        "Name": order.patient_name,
        "Sex": order.sex or None,
        "SexName": dict(SexCode.choices).get(order.sex) if order.sex else None,
        "Age": order.age or None,
        "TelephoneNo": order.phone,
        "Address": order.address or None,
        "IDCode": order.id_card,
        "WorkId": schedule.work_id,
        "numSourceId": order.num_source_id or None,
        "channel": order.channel.code if order.channel.code in ChannelCode.values else None,
    }


def _waitlist_kick(schedule_id: int) -> None:
    """A number was given back: after the commit, offer it to the schedule's waitlist (a task, so
    that the hospital is never called inside this transaction)."""
    if WaitlistEntry.objects.filter(schedule_id=schedule_id, status=WaitlistEntry.WAITING).exists():
        from booking.tasks import waitlist_offer

        transaction.on_commit(lambda: waitlist_offer.delay(schedule_id), robust=True)
