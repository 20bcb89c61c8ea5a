"""The hospital's reports on orders: 2.4 getPromiseNotice (退号, 履约, 爽约, 其他) and the live
order query GetOrderDetailInfo (3.6) that applies what the hospital has decided.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from booking import clock
from booking.errors import OrderNotFound, OrderStateConflict
from booking.hospital import ask
from booking.models import NoShowRecord, Order, PatientNotification
from booking.notify import notify_patient
from booking.selectors import order_get
from booking.services._common import (
    _actor_hospital,
    _record,
    _record_path,
    _release_count,
    _session_text,
    _setting,
    _waitlist_kick,
)
from booking.services.orders import _refund_if_paid
from booking.services.outbox import _outbox_supersede
from booking.services.patients import no_show_ban_impose
from regional.errors import DomainError
from regional.messages.codes import PromiseType, WorkFlowStatus
from regional.models import Hospital

logger = logging.getLogger("booking")


@transaction.atomic
def order_report(
    *,
    hospital: Hospital,
    workflow_id: str,
    work_type: str,
    occurred_at: dt.datetime | None = None,
    desc: str = "",
    actor: str | None = None,
) -> Order:
    """One record of the hospital's 2.4 report: 3 退号 (the hospital cancelled: refund if paid, and
    the platform never sends its own cancel for it), 4 履约, 6 爽约 (a NoShowRecord against the
    patient's ID hash), 9 其他 (recorded only). A repeat of the same report changes nothing."""
    actor = actor or _actor_hospital(hospital)
    desc = (desc or "").strip()[:300]
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("channel", "hospital", "schedule", "schedule__department", "schedule__doctor")
        .filter(hospital=hospital, workflow_id=workflow_id)
        .first()
    )
    if order is None:
        raise OrderNotFound(f"挂号单{workflow_id}不存在")
    if occurred_at is not None and timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at)
    now = timezone.now()
    previous = order.status
    if work_type == PromiseType.OTHER:
        _record(order, from_status=previous, actor=actor, reason=f"医院报告（其他）：{desc or '未说明'}")
        return order
    target = {
        PromiseType.CANCELLED: Order.CANCELLED,
        PromiseType.VISITED: Order.VISITED,
        PromiseType.NO_SHOW: Order.NO_SHOW,
    }.get(work_type)
    if target is None:
        raise DomainError(f"workType {work_type}不是有效的履约状态（3退号、4履约、6爽约、9其他）")
    if previous == target or (target == Order.CANCELLED and previous == Order.EXPIRED):
        # Already so: a repeat, or our own cancellation. If ours has not reached the hospital yet,
        # it never will: the hospital has cancelled the order itself (CONTRACT.md section 5).
        if target == Order.CANCELLED and _outbox_supersede(order):
            _record(
                order,
                from_status=previous,
                actor=actor,
                reason=f"医院报告已退号：{desc or '未说明原因'}，待发通知不再发送",
            )
        return order
    if previous not in (Order.BOOKED, Order.PAID):
        raise OrderStateConflict(f"挂号单{workflow_id}{order.get_status_display()}，不能改为{target.label}")
    order.status = target
    order.hospital_status = target
    if target == Order.CANCELLED:
        order.cancelled_by, order.cancelled_at = Order.BY_HOSPITAL, occurred_at or now
        order.save()
        _release_count(order.schedule_id)
        _outbox_supersede(order)
        _waitlist_kick(order.schedule_id)
        refund = _refund_if_paid(order, f"医院退号：{desc or '未说明原因'}")
        refund_text = f"挂号费{refund.amount}元将原路退回。" if refund else ""
        notify_patient(
            order=order,
            kind=PatientNotification.CANCELLED,
            message=f"医院已取消您预约的{_session_text(order)}（{desc or '医院退号'}）。{refund_text}订单号{order.order_no}。",
        )
        reason = f"医院退号：{desc or '未说明原因'}"
    else:
        order.finished_at = occurred_at or now
        order.save()
        if target == Order.NO_SHOW:
            record, created = NoShowRecord.objects.get_or_create(
                order=order,
                defaults={
                    "id_card_hash": order.id_card_hash,
                    "hospital_id": order.hospital_id,
                    "work_date": order.schedule.work_date,
                    "occurred_at": occurred_at,
                },
            )
            if created:
                no_show_ban_impose(record=record, now=clock.now())
        reason = f"医院报告{'履约' if target == Order.VISITED else '爽约'}" + (f"：{desc}" if desc else "")
    _record(order, from_status=previous, actor=actor, reason=reason)
    return order


def orders_report(*, hospital: Hospital, records: Sequence[dict]) -> tuple[list[str], list[str]]:
    """2.4 for a whole message: each record on its own (one unknown WorkFlowId does not undo the
    others). Returns (processed WorkFlowIds, errors naming the record path)."""
    processed: list[str] = []
    errors: list[str] = []
    for position, record in enumerate(records, start=1):
        path = _record_path(record, position, "WorkInfo")
        try:
            with transaction.atomic():
                order_report(
                    hospital=hospital,
                    workflow_id=record["WorkFlowId"],
                    work_type=record["workType"],
                    occurred_at=record.get("workDate"),
                    desc=record.get("desc") or "",
                )
        except DomainError as exc:
            errors.append(f"{path}/WorkFlowId {exc.message}")
            continue
        processed.append(record["WorkFlowId"])
    return processed, errors


def order_refresh(*, order: Order, force: bool = False, now: dt.datetime | None = None) -> Order:
    """Ask the hospital for the order's state (GetOrderDetailInfo 3.6), at most every
    BOOKING_ORDER_REFRESH_SECONDS, and apply what it has decided (退号, 履约, 爽约). An unreachable
    hospital leaves the order as stored."""
    now = now or timezone.now()
    if not order.workflow_id or order.status not in (Order.BOOKED, Order.PAID):
        return order
    every = dt.timedelta(seconds=int(_setting("BOOKING_ORDER_REFRESH_SECONDS", 30)))
    if not force and order.refreshed_at and now - order.refreshed_at < every:
        return order
    answer = ask(order.hospital, "GetOrderDetailInfo", {"WorkFlowId": order.workflow_id})
    if not answer.ok:
        logger.info("订单%s查询医院状态失败：%s", order.order_no, answer.problem)
        return order
    status = answer.fields["WorkFlowStatus"]
    Order.objects.filter(pk=order.pk).update(hospital_status=status, refreshed_at=now)
    if status in (WorkFlowStatus.CANCELLED, WorkFlowStatus.VISITED, WorkFlowStatus.NO_SHOW):
        try:
            order_report(
                hospital=order.hospital,
                workflow_id=order.workflow_id,
                work_type=status,
                desc="订单查询（GetOrderDetailInfo）所得",
                actor=f"{_actor_hospital(order.hospital)}（订单查询）",
            )
        except DomainError as exc:
            logger.info("订单%s按医院状态更新失败：%s", order.order_no, exc.message)
    return order_get(channel=order.channel, order_no=order.order_no)
