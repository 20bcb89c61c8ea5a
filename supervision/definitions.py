"""What each figure counts, said once: the conditions on orders, schedules, referrals and interface
calls that the aggregation counts (supervision.services) and the drill-down lists filter by
(supervision.admin), and the indicators built from them with the definition shown beside them.

Attribution to a day: orders and schedules by the session date (出诊日期), referrals by the date
they were submitted (提交日期), interface calls by the date of the call (local time).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Exists, F, OuterRef, Q, QuerySet

from booking.models import LedgerEntry, Order, Schedule
from regional.models import MessageLog

# -- orders (by their session's date) -----------------------------------------------------------------

BOOKED_STATUSES = (Order.BOOKED, Order.PAID, Order.CANCELLED, Order.VISITED, Order.NO_SHOW)


def orders_annotated(queryset: QuerySet[Order]) -> QuerySet[Order]:
    """Orders with the two facts the stop figures need: refunded, and rebooked after the stop."""
    refund = LedgerEntry.objects.filter(order=OuterRef("pk"), kind=LedgerEntry.REFUND)
    # The same patient (ID hash) booked again at the same hospital after the session was stopped.
    rebooking = Order.objects.filter(
        hospital=OuterRef("hospital"),
        id_card_hash=OuterRef("id_card_hash"),
        created_at__gt=OuterRef("schedule__stopped_at"),
        status__in=BOOKED_STATUSES,
    ).exclude(pk=OuterRef("pk"))
    return queryset.annotate(sv_refunded=Exists(refund), sv_rebooked=Exists(rebooking))


_STOPPED = Q(mark=Order.MARK_STOPPED, status=Order.CANCELLED)

ORDER_FIGURES: dict[str, tuple[str, Q]] = {
    "lock_attempts": ("锁号请求", Q()),
    "locks_confirmed": ("锁号成功", Q(locked_at__isnull=False)),
    "bookings": ("预约", Q(status__in=BOOKED_STATUSES)),
    "timeshare": ("分时段预约", Q(status__in=BOOKED_STATUSES) & ~Q(num_source_id="")),
    "visited": ("履约", Q(status=Order.VISITED)),
    "no_show": ("爽约", Q(status=Order.NO_SHOW)),
    "cancelled": ("退号（不含停诊）", Q(status=Order.CANCELLED) & ~Q(mark=Order.MARK_STOPPED)),
    "stop_affected": ("停诊影响", _STOPPED),
    "stop_rebooked": ("停诊后重新预约", _STOPPED & Q(sv_rebooked=True)),
    "stop_refunded": ("停诊退款", _STOPPED & Q(sv_refunded=True)),
    "due": ("应就诊", Q(status__in=(Order.BOOKED, Order.PAID, Order.VISITED, Order.NO_SHOW))),
}

# -- schedules ------------------------------------------------------------------------------------------

_LIVE = Q(status__in=(Schedule.NORMAL, Schedule.STOPPED))


def schedules_annotated(queryset: QuerySet[Schedule]) -> QuerySet[Schedule]:
    stopped_orders = Order.objects.filter(schedule=OuterRef("pk"), mark=Order.MARK_STOPPED)
    return queryset.annotate(sv_stop_orders=Exists(stopped_orders))


SCHEDULE_FIGURES: dict[str, tuple[str, Q]] = {
    "sessions": ("班次", _LIVE),
    "sessions_booked": ("有平台预约的班次", _LIVE & Q(booked_count__gt=0)),
    "sessions_stopped": ("已有预约后停诊的班次", Q(status=Schedule.STOPPED, sv_stop_orders=True)),
}

# -- referrals (by the date submitted) ------------------------------------------------------------------


def referral_figures(*, now: dt.datetime, limit: dt.timedelta) -> dict[str, tuple[str, Q]]:
    """Conditions on referrals; `limit` is the configured answer time (REFERRAL_PENDING_HOURS).

    Due (应答复): answered, or left unanswered past the limit (open, or cancelled only after it).
    """
    deadline = F("submitted_at") + limit
    answered = Q(accepted_at__isnull=False) | Q(rejected_at__isnull=False)
    overdue = Q(cancelled_at__gt=deadline) | Q(cancelled_at__isnull=True, submitted_at__lt=now - limit)
    return {
        "submitted": ("已提交", Q()),
        "up": ("上转", Q(direction="up")),
        "down": ("下转", Q(direction="down")),
        "due": ("应答复", answered | overdue),
        "accepted": ("已接收", Q(accepted_at__isnull=False)),
        "accepted_timely": ("及时接收", Q(accepted_at__isnull=False, accepted_at__lte=deadline)),
        "rejected": ("已拒绝", Q(rejected_at__isnull=False)),
        "with_booking": ("附带预约", Q(booking_order__isnull=False)),
        "booking_kept": ("转诊预约已履约", Q(booking_order__status=Order.VISITED)),
    }


# Counted by the sending hospital; the others by the receiving one.
REFERRAL_BY_SENDER = ("submitted", "up", "down")


# -- interface calls ------------------------------------------------------------------------------------

# An answer is anything the hospital said, a business refusal included; no answer is a transport
# failure, a timeout, an unreadable reply or an open circuit (logged with an empty result code).
_ANSWERED = Q(ok=True) | ~Q(result_code="")
MESSAGE_FIGURES: dict[str, tuple[str, Q]] = {
    "calls_out": ("平台调用医院端", Q(direction=MessageLog.OUTBOUND)),
    "calls_out_answered": ("医院端有应答", Q(direction=MessageLog.OUTBOUND) & _ANSWERED),
    "calls_out_unanswered": ("医院端无应答", Q(direction=MessageLog.OUTBOUND) & ~_ANSWERED),
    "messages_in": ("医院上报报文", Q(direction=MessageLog.INBOUND)),
    "messages_refused": ("被拒收的报文", Q(direction=MessageLog.INBOUND, ok=False)),
}
ANSWERED = _ANSWERED


# -- indicators -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """One indicator: a count, or a ratio of two counters, with its definition in Chinese.

    `numerator`/`denominator` name counters of the aggregate rows; `drill` names the figure of the
    drill-down list (model, figure) that shows the records counted by the numerator.
    """

    code: str
    name: str
    numerator: str
    denominator: str | None
    numerator_text: str
    denominator_text: str
    excluded: str
    unit: str = "%"
    drill: tuple[str, str] | None = None
    group: str = "预约"


INDICATORS: list[Indicator] = [
    Indicator(
        "published", "号源投放量", "published", None, "排班号源总数（RegistrationCount）之和", "—",
        "已换诊、已撤回的班次（其号源计入替换后的班次）", unit="个", drill=("schedule", "sessions"), group="号源",
    ),
    Indicator(
        "publish_rate", "投放率", "published_capacity", "capacity", "已登记接诊能力月份的号源投放量", "医院登记的门诊接诊能力（人次/月）",
        "未登记接诊能力的月份（分子分母均不计）", drill=("schedule", "sessions"), group="号源",
    ),
    Indicator(
        "bookings", "预约量", "bookings", None, "医院确认锁号且未超时失效的订单（已预约、已支付、已退号、已履约、已爽约）",
        "—", "锁号中、锁号失败、超时未支付而解锁的订单", unit="人次", drill=("order", "bookings"),
    ),
    Indicator(
        "lock_success", "预约成功率", "locks_confirmed", "lock_attempts", "医院确认锁号的次数",
        "渠道发起的锁号请求次数（平台订单数）", "无", drill=("order", "locks_confirmed"),
    ),
    Indicator(
        "visit_rate", "履约率", "visited", "due", "医院以2.4报告已就诊（已履约）的人次",
        "应就诊人次：预约量减去退号和停诊退号", "退号、停诊退号的订单", drill=("order", "visited"),
    ),
    Indicator(
        "no_show_rate", "爽约率", "no_show", "due", "医院以2.4报告未就诊（已爽约）的人次", "应就诊人次（同履约率）",
        "退号、停诊退号的订单", drill=("order", "no_show"),
    ),
    Indicator(
        "cancel_rate", "退号率", "cancelled", "bookings", "退号人次：患者经渠道取消、医院2.4退号、工作人员退号",
        "预约量", "因停诊退号的订单（计入停诊影响人次）", drill=("order", "cancelled"),
    ),
    Indicator(
        "stop_rate", "停诊率", "sessions_stopped", "sessions_booked", "已有平台预约后停诊的班次数",
        "有平台预约的班次数", "无平台预约的班次、已换诊或撤回的班次", drill=("schedule", "sessions_stopped"), group="停诊",
    ),
    Indicator(
        "stop_affected", "停诊影响人次", "stop_affected", None, "因停诊而退号的订单数", "—", "无", unit="人次",
        drill=("order", "stop_affected"), group="停诊",
    ),
    Indicator(
        "stop_rebooked", "停诊后重新预约人次", "stop_rebooked", None,
        "停诊影响的患者在停诊后于同一医院再次预约成功（任意班次、任意渠道）", "—", "无", unit="人次",
        drill=("order", "stop_rebooked"), group="停诊",
    ),
    Indicator(
        "stop_refunded", "停诊退款人次", "stop_refunded", None, "停诊影响的订单中已在线支付并已退款的", "—", "无",
        unit="人次", drill=("order", "stop_refunded"), group="停诊",
    ),
    Indicator(
        "stop_notice", "停诊提前时间", "stop_notice_hours", "sessions_stopped",
        "停诊通知时间至出诊开始时间的小时数之和", "已有预约后停诊的班次数", "无平台预约的停诊班次", unit="小时",
        drill=("schedule", "sessions_stopped"), group="停诊",
    ),
    Indicator(
        "timeshare_rate", "分时段预约比例", "timeshare", "bookings", "带号源ID（numSourceId）的预约", "预约量",
        "同预约量", drill=("order", "timeshare"),
    ),
    Indicator(
        "appointment_rate", "门诊患者预约诊疗率", "appointment_visits", "outpatient_visits",
        "预约诊疗人次：平台预约履约人次加医院导入的平台外预约诊疗人次", "门诊诊疗总人次减急诊人次（医院按月导入）",
        "急诊人次；未导入门诊人次的月份（分子分母均不计）", drill=("order", "visited"), group="号源",
    ),
    Indicator(
        "referral_up", "上转例数", "referral_up", None, "转入医院级别高于转出医院的已提交转诊（级别取5.1 DegreeCode/DegreeName；医院按转出方统计）",
        "—", "草稿；平级转诊和级别未知的转诊单列", unit="例", drill=("referral", "up"), group="转诊",
    ),
    Indicator(
        "referral_down", "下转例数", "referral_down", None, "转入医院级别低于转出医院的已提交转诊（医院按转出方统计）", "—",
        "草稿；平级转诊和级别未知的转诊单列", unit="例", drill=("referral", "down"), group="转诊",
    ),
    Indicator(
        "referral_timely", "接诊及时率", "accepted_timely", "referral_due", "提交后在规定时限（REFERRAL_PENDING_HOURS）内接收的转诊（医院按转入方统计）",
        "应答复的转诊：已接收、已拒绝或已超过时限的", "未超时限且尚未答复的、答复前被转出方取消的转诊",
        drill=("referral", "accepted_timely"), group="转诊",
    ),
    Indicator(
        "referral_kept", "转诊预约履约率", "booking_kept", "with_booking", "附带预约且医院报告已履约的转诊（医院按转入方统计）",
        "接收时附带预约的转诊", "未附带预约的转诊", drill=("referral", "booking_kept"), group="转诊",
    ),
    Indicator(
        "availability", "接口可用率", "calls_out_answered", "calls_out", "平台调用医院端接口得到应答（含业务拒绝）的次数",
        "平台调用医院端接口的次数", "无", drill=("message", "calls_out_unanswered"), group="接口",
    ),
    Indicator(
        "latency_p95", "接口响应时间P95", "latency_p95", None, "得到应答的调用耗时的第95百分位（按分档统计，取所在档上限）",
        "—", "无应答的调用", unit="毫秒", drill=("message", "calls_out_answered"), group="接口",
    ),
    Indicator(
        "refused_rate", "报文拒收率", "messages_refused", "messages_in", "医院上报的报文被平台拒收（校验不通过或业务规则不符）的次数",
        "医院上报的报文次数", "无", drill=("message", "messages_refused"), group="接口",
    ),
]  # fmt: skip

BY_CODE = {indicator.code: indicator for indicator in INDICATORS}
# Indicators that exist below the hospital (per department and doctor).
DOCTOR_LEVEL = [
    i
    for i in INDICATORS
    if i.code
    in {
        "published",
        "bookings",
        "lock_success",
        "visit_rate",
        "no_show_rate",
        "cancel_rate",
        "stop_rate",
        "stop_affected",
        "timeshare_rate",
    }
]
