"""Supervision for the health commission (卫健委监管): what staff enter (outpatient capacity, monthly
outpatient visit totals), the daily aggregate tables the indicators are read from (filled by the
nightly task and the back-fill command, never on a page view), and proxies of the records behind
each figure for the drill-down lists.

The aggregates are derived data: a day is rebuilt whole (`supervision.services.stats_rebuild`), so
a row is never edited by hand and carries no invariants beyond its key.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from booking.models import Channel, Order, Schedule
from referral.models import Referral
from regional.models import Department, Doctor, Hospital, MessageLog

# Upper bounds (ms) of the latency buckets; the last bucket is everything slower.
LATENCY_BUCKETS_MS = (50, 100, 200, 300, 500, 800, 1000, 1500, 2000, 3000, 5000, 10000, 30000)


# -- entered by staff ---------------------------------------------------------------------------------


class OutpatientCapacity(models.Model):
    """A hospital's outpatient capacity (门诊接诊能力) for one month, in visits, as entered by the
    commission's staff: the denominator of 投放率 (numbers published to the pool against capacity)."""

    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", verbose_name="医院")
    month = models.DateField("月份", help_text="该月第一天，例如2026-11-01")
    capacity = models.PositiveIntegerField("门诊接诊能力（人次/月）")
    note = models.CharField("说明", max_length=200, blank=True)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "门诊接诊能力"
        verbose_name_plural = "门诊接诊能力"
        ordering = ["-month", "hospital_id"]
        default_permissions = ()
        permissions = [
            ("view_outpatientcapacity", "可查看门诊接诊能力"),
            ("add_outpatientcapacity", "可录入门诊接诊能力"),
            ("change_outpatientcapacity", "可修改门诊接诊能力"),
            ("delete_outpatientcapacity", "可删除门诊接诊能力"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["hospital", "month"], name="uniq_capacity_month"),
            models.CheckConstraint(condition=models.Q(month__day=1), name="capacity_month_first_day"),
        ]

    def __str__(self) -> str:
        return f"{self.hospital} {self.month:%Y-%m}"


class OutpatientVisits(models.Model):
    """A hospital's outpatient visit totals for one month (门诊诊疗人次), imported by staff from the
    hospital's Excel file, because the specification has no message for them: the denominator of
    门诊患者预约诊疗率 (national tertiary-hospital performance assessment)."""

    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", verbose_name="医院")
    month = models.DateField("月份")
    total_visits = models.PositiveIntegerField("门诊诊疗总人次")
    emergency_visits = models.PositiveIntegerField("其中急诊人次")
    other_appointment_visits = models.PositiveIntegerField("平台外预约诊疗人次", default=0)
    source_file = models.CharField("导入文件", max_length=200, blank=True)
    imported_at = models.DateTimeField("导入时间", default=timezone.now)

    class Meta:
        verbose_name = "门诊诊疗人次（月）"
        verbose_name_plural = "门诊诊疗人次（月）"
        ordering = ["-month", "hospital_id"]
        default_permissions = ()
        permissions = [
            ("view_outpatientvisits", "可查看门诊诊疗人次"),
            ("add_outpatientvisits", "可导入门诊诊疗人次"),
            ("delete_outpatientvisits", "可删除门诊诊疗人次"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["hospital", "month"], name="uniq_visits_month"),
            models.CheckConstraint(
                condition=models.Q(emergency_visits__lte=models.F("total_visits")), name="visits_emergency_lte_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hospital} {self.month:%Y-%m}"


# -- daily aggregates ---------------------------------------------------------------------------------


class BookingCounters(models.Model):
    """The counters of schedules and orders of one day (the session date, 出诊日期); the definitions
    are in supervision.definitions and shared with the drill-down lists."""

    sessions = models.PositiveIntegerField("班次数", default=0)
    published = models.PositiveIntegerField("号源投放量", default=0)
    sessions_booked = models.PositiveIntegerField("有预约的班次数", default=0)
    sessions_stopped = models.PositiveIntegerField("停诊班次数（已有预约）", default=0)
    stop_notice_hours = models.FloatField("停诊提前小时数合计", default=0)
    lock_attempts = models.PositiveIntegerField("锁号请求次数", default=0)
    locks_confirmed = models.PositiveIntegerField("锁号成功次数", default=0)
    bookings = models.PositiveIntegerField("预约量", default=0)
    timeshare = models.PositiveIntegerField("分时段预约量", default=0)
    visited = models.PositiveIntegerField("履约人次", default=0)
    no_show = models.PositiveIntegerField("爽约人次", default=0)
    cancelled = models.PositiveIntegerField("退号人次", default=0)
    stop_affected = models.PositiveIntegerField("停诊影响人次", default=0)
    stop_rebooked = models.PositiveIntegerField("停诊后重新预约人次", default=0)
    stop_refunded = models.PositiveIntegerField("停诊退款人次", default=0)

    class Meta:
        abstract = True


COUNTER_FIELDS = [f.name for f in BookingCounters._meta.local_fields]
LATENCY_FIELDS = [f"latency_{i:02d}" for i in range(len(LATENCY_BUCKETS_MS) + 1)]


class DoctorDay(BookingCounters):
    """One doctor's day in one department of one hospital (the finest grain of the indicators)."""

    day = models.DateField("日期")
    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", db_index=False)
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+", db_index=False)
    doctor = models.ForeignKey(Doctor, on_delete=models.CASCADE, related_name="+", db_index=False)

    class Meta:
        verbose_name = "医生日汇总"
        verbose_name_plural = "医生日汇总"
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["hospital", "day", "department", "doctor"], name="uniq_doctor_day")
        ]
        indexes = [models.Index(fields=["day"], name="doctor_day_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.hospital_id}/{self.department_id}/{self.doctor_id}"


class HospitalDay(BookingCounters):
    """One hospital's day: the sums of its doctors' days, and its interface service level (calls of
    its hospital-side interface by the platform, its own messages to the platform)."""

    day = models.DateField("日期")
    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", db_index=False)
    calls_out = models.PositiveIntegerField("平台调用医院端次数", default=0)
    calls_out_answered = models.PositiveIntegerField("医院端应答次数", default=0)
    # Answered calls per latency bucket (LATENCY_BUCKETS_MS, and one for slower calls), as columns so
    # that a period's p95 is a SUM per column in SQL.
    for _i, _bound in enumerate((*LATENCY_BUCKETS_MS, None)):
        locals()[f"latency_{_i:02d}"] = models.PositiveIntegerField(
            f"响应≤{_bound}毫秒" if _bound else f"响应>{LATENCY_BUCKETS_MS[-1]}毫秒", default=0
        )
    del _i, _bound
    messages_in = models.PositiveIntegerField("医院上报报文数", default=0)
    messages_refused = models.PositiveIntegerField("被拒收报文数", default=0)

    class Meta:
        verbose_name = "医院日汇总"
        verbose_name_plural = "医院日汇总"
        default_permissions = ()
        constraints = [models.UniqueConstraint(fields=["hospital", "day"], name="uniq_hospital_day")]
        # The region's pages read a period over all hospitals.
        indexes = [models.Index(fields=["day"], name="hospital_day_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.hospital_id}"


class ChannelDay(models.Model):
    """Orders of one hospital's sessions of one day made through one booking channel."""

    day = models.DateField("日期")
    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", db_index=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+", db_index=False)
    lock_attempts = models.PositiveIntegerField("锁号请求次数", default=0)
    locks_confirmed = models.PositiveIntegerField("锁号成功次数", default=0)
    bookings = models.PositiveIntegerField("预约量", default=0)

    class Meta:
        verbose_name = "渠道日汇总"
        verbose_name_plural = "渠道日汇总"
        default_permissions = ()
        constraints = [models.UniqueConstraint(fields=["hospital", "day", "channel"], name="uniq_channel_day")]
        indexes = [models.Index(fields=["day"], name="channel_day_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.hospital_id}/{self.channel_id}"


class ReferralDay(models.Model):
    """Referrals submitted on one day from one hospital to another, by direction (from the levels)."""

    day = models.DateField("提交日期")
    sending = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", db_index=False)
    receiving = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", db_index=False)
    direction = models.CharField("转诊方向", max_length=8, choices=Referral.Direction.choices)
    submitted = models.PositiveIntegerField("提交数", default=0)
    due = models.PositiveIntegerField("应答复数", default=0)
    accepted = models.PositiveIntegerField("接收数", default=0)
    accepted_timely = models.PositiveIntegerField("及时接收数", default=0)
    rejected = models.PositiveIntegerField("拒绝数", default=0)
    with_booking = models.PositiveIntegerField("附带预约数", default=0)
    booking_kept = models.PositiveIntegerField("转诊预约履约数", default=0)

    class Meta:
        verbose_name = "转诊日汇总"
        verbose_name_plural = "转诊日汇总"
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["day", "sending", "receiving", "direction"], name="uniq_referral_day")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.sending_id}→{self.receiving_id}"


class StatsRun(models.Model):
    """One rebuild of the aggregates (nightly task or back-fill): the days it covered and when."""

    date_from = models.DateField("起始日期")
    date_to = models.DateField("截止日期")
    trigger = models.CharField("触发方式", max_length=20)
    started_at = models.DateTimeField("开始时间", default=timezone.now)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)
    rows = models.PositiveIntegerField("写入行数", default=0)

    class Meta:
        verbose_name = "汇总运行记录"
        verbose_name_plural = "汇总运行记录"
        ordering = ["-started_at"]
        default_permissions = ()
        permissions = [("view_statsrun", "可查看汇总运行记录")]

    def __str__(self) -> str:
        return f"{self.date_from}～{self.date_to}"


# -- the dashboard and the records behind the figures (proxies, for the admin) -----------------------


class Dashboard(HospitalDay):
    """The commission's dashboard (监管指标看板) in the admin, read from the daily aggregates."""

    class Meta:
        proxy = True
        verbose_name = "监管指标看板"
        verbose_name_plural = "监管指标看板"
        default_permissions = ()
        permissions = [("view_dashboard", "可查看监管指标看板"), ("export_dashboard", "可导出监管月报")]


class SupervisedOrder(Order):
    """Orders behind a figure (read-only drill-down list, no personal data shown)."""

    class Meta:
        proxy = True
        verbose_name = "指标明细：预约订单"
        verbose_name_plural = "指标明细：预约订单"
        default_permissions = ()
        permissions = [("view_supervisedorder", "可查看指标明细：预约订单")]


class SupervisedSchedule(Schedule):
    """Schedules behind a figure (read-only drill-down list)."""

    class Meta:
        proxy = True
        verbose_name = "指标明细：排班"
        verbose_name_plural = "指标明细：排班"
        default_permissions = ()
        permissions = [("view_supervisedschedule", "可查看指标明细：排班")]


class SupervisedReferral(Referral):
    """Referrals behind a figure (read-only drill-down list, no personal data shown)."""

    class Meta:
        proxy = True
        verbose_name = "指标明细：转诊"
        verbose_name_plural = "指标明细：转诊"
        default_permissions = ()
        permissions = [("view_supervisedreferral", "可查看指标明细：转诊")]


class SupervisedMessage(MessageLog):
    """Interface calls behind a service-level figure (read-only drill-down list, no message bodies)."""

    class Meta:
        proxy = True
        verbose_name = "指标明细：接口调用"
        verbose_name_plural = "指标明细：接口调用"
        default_permissions = ()
        permissions = [("view_supervisedmessage", "可查看指标明细：接口调用")]
