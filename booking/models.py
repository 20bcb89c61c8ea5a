"""The appointment pool: booking channels and the hospitals' schedules (and, with the booking issue, orders)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import models
from django.utils import timezone

from regional.models import Department, Doctor, Hospital


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Channel(models.Model):
    """A booking channel (预约渠道) such as WeChat `JKMZWX` or the app `JKMYAPP`, with one API key."""

    code = models.CharField("渠道代码", max_length=10, unique=True)
    name = models.CharField("渠道名称", max_length=50)
    token_hash = models.CharField("令牌摘要", max_length=64, unique=True, editable=False)
    token_hint = models.CharField("令牌尾号", max_length=8, editable=False, blank=True)
    is_active = models.BooleanField("启用", default=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "预约渠道"
        verbose_name_plural = "预约渠道"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name}（{self.code}）"

    def issue_token(self) -> str:
        token = secrets.token_hex(20)
        self.token_hash = hash_token(token)
        self.token_hint = token[-4:]
        return token


class ScheduleQuerySet(models.QuerySet):
    def with_orders(self) -> ScheduleQuerySet:
        """Schedules that platform orders refer to: never deleted, only retired (CONTRACT.md section 5).

        The one definition of "has orders" for set-based statements; `Schedule.has_orders` is the
        same rule for one row. The orders issue keeps `booked_count` in step with its orders.
        """
        return self.filter(booked_count__gt=0)

    def without_orders(self) -> ScheduleQuerySet:
        return self.filter(booked_count=0)

    def not_over(self, now: dt.datetime | None = None) -> ScheduleQuerySet:
        """Sessions that have not ended yet (local time): later days, and today's still running or to come."""
        local = timezone.localtime(now)
        return self.filter(
            models.Q(work_date__gt=local.date()) | models.Q(work_date=local.date(), stop_time__gt=local.time())
        )


class Schedule(models.Model):
    """A session (排班, 班次) a hospital opens for booking: one doctor in one department on one
    date and time slot, with its price and slot counts, identified by the hospital's WorkId.

    The hospital owns it: it arrives with `synchronizedWorkInfo`, is stopped by `stopWorkNotice`
    (停诊) and replaced by `changeWorkNotice` (换诊). A schedule that orders refer to is never
    deleted: a full re-sync that leaves it out marks it withdrawn (已撤回), a change retires it
    with a link to its replacement.
    """

    NORMAL, STOPPED, CHANGED, WITHDRAWN = "normal", "stopped", "changed", "withdrawn"
    STATUSES = [(NORMAL, "正常"), (STOPPED, "停诊"), (CHANGED, "换诊"), (WITHDRAWN, "已撤回")]
    ALL_DAY, MORNING, NOON, AFTERNOON, EVENING = 0, 1, 2, 3, 4
    TIME_CODES = [(ALL_DAY, "全天"), (MORNING, "上午"), (NOON, "中午"), (AFTERNOON, "下午"), (EVENING, "晚上")]

    # The FKs' own indexes are left out: the composite indexes below lead with them.
    hospital = models.ForeignKey(
        Hospital, on_delete=models.CASCADE, related_name="schedules", verbose_name="医院", db_index=False
    )
    work_id = models.CharField("排班班次", max_length=100)
    work_addr = models.CharField("执业地址", max_length=100, blank=True)
    # RESTRICT: a doctor or department cannot be deleted under its schedules, but a hospital can.
    doctor = models.ForeignKey(
        Doctor, on_delete=models.RESTRICT, related_name="schedules", verbose_name="医生", db_index=False
    )
    doctor_code = models.CharField("医生编号", max_length=36)
    department = models.ForeignKey(
        Department, on_delete=models.RESTRICT, related_name="schedules", verbose_name="科室", db_index=False
    )
    department_code = models.CharField("科室编号", max_length=36)
    work_date = models.DateField("出诊日期")
    time_code = models.PositiveSmallIntegerField("出诊时段", choices=TIME_CODES)
    start_time = models.TimeField("开始时间")
    stop_time = models.TimeField("结束时间")
    registration_type_id = models.CharField("挂号类型编号", max_length=20, blank=True)
    registration_type_name = models.CharField("挂号类型", max_length=100, blank=True)
    price = models.DecimalField("挂号费（元）", max_digits=10, decimal_places=2)
    remaining = models.PositiveIntegerField("剩余号源")
    total = models.PositiveIntegerField("号源总数")
    hospital_reserved = models.PositiveIntegerField("医院保留号源", default=0)
    # Platform orders placed on this schedule; the orders issue increments it in the same
    # conditional UPDATE that takes a slot. Anything above 0 forbids deleting the row.
    booked_count = models.PositiveIntegerField("平台订单数", default=0)
    status = models.CharField("状态", max_length=10, choices=STATUSES, default=NORMAL)
    stop_reason = models.CharField("停诊原因", max_length=500, blank=True)
    stopped_at = models.DateTimeField("停诊时间", null=True, blank=True)
    change_reason = models.CharField("换诊原因", max_length=500, blank=True)
    retired_at = models.DateTimeField("换诊/撤回时间", null=True, blank=True)
    replaced_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaces",
        verbose_name="换诊后的排班",
    )
    created_at = models.DateTimeField("创建时间", default=timezone.now)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        verbose_name = "排班"
        verbose_name_plural = "排班"
        ordering = ["work_date", "start_time", "work_id"]
        constraints = [
            models.UniqueConstraint(fields=["hospital", "work_id"], name="uniq_schedule_per_hospital"),
            models.CheckConstraint(
                condition=models.Q(remaining__lte=models.F("total")), name="schedule_remaining_lte_total"
            ),
            models.CheckConstraint(
                condition=models.Q(hospital_reserved__lte=models.F("total")), name="schedule_reserved_lte_total"
            ),
            models.CheckConstraint(
                condition=models.Q(stop_time__gt=models.F("start_time")), name="schedule_stop_after_start"
            ),
        ]
        indexes = [
            models.Index(fields=["hospital", "work_date"], name="schedule_hospital_date"),
            models.Index(fields=["department", "work_date"], name="schedule_department_date"),
            models.Index(fields=["doctor", "work_date"], name="schedule_doctor_date"),
            models.Index(fields=["status", "work_date"], name="schedule_status_date"),
        ]
        permissions = [("stop_schedule", "可代医院停诊")]

    def __str__(self) -> str:
        return f"{self.work_id} {self.work_date} {self.get_time_code_display()}"

    @property
    def has_orders(self) -> bool:
        """Whether orders refer to this schedule (see `ScheduleQuerySet.with_orders`)."""
        return self.booked_count > 0

    @property
    def is_retired(self) -> bool:
        return self.status in (self.CHANGED, self.WITHDRAWN)
