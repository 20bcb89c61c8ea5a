"""The appointment pool: booking channels, the hospitals' schedules, orders and what they owe
(hospital notifications in the outbox, patient notifications), no-shows and the payment ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from regional.delivery import DeliveryRow, DeliveryStatus
from regional.messages.codes import CardType, LedgerType, PayChannel, PayType, WorkFlowStatus, WorkTimeCode
from regional.models import Department, Doctor, Hospital
from regional.pii import EncryptedTextField, LookupHashField


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

    class Status(models.TextChoices):
        NORMAL = "normal", "正常"
        STOPPED = "stopped", "停诊"
        CHANGED = "changed", "换诊"
        WITHDRAWN = "withdrawn", "已撤回"

    # Short names the services read (`Schedule.NORMAL`); the lists themselves are stated once above.
    NORMAL, STOPPED, CHANGED, WITHDRAWN = Status.NORMAL, Status.STOPPED, Status.CHANGED, Status.WITHDRAWN
    TimeCode = WorkTimeCode
    ALL_DAY, MORNING, NOON, AFTERNOON, EVENING = WorkTimeCode

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
    time_code = models.PositiveSmallIntegerField("出诊时段", choices=WorkTimeCode.choices)
    start_time = models.TimeField("开始时间")
    stop_time = models.TimeField("结束时间")
    registration_type_id = models.CharField("挂号类型编号", max_length=20, blank=True)
    registration_type_name = models.CharField("挂号类型", max_length=100, blank=True)
    price = models.DecimalField("挂号费（元）", max_digits=10, decimal_places=2)
    remaining = models.PositiveIntegerField("剩余号源")
    total = models.PositiveIntegerField("号源总数")
    hospital_reserved = models.PositiveIntegerField("医院保留号源", default=0)
    # Platform orders referring to this schedule, whatever their status: incremented in the same
    # conditional UPDATE that takes a slot, moved with the orders on 换诊, never decremented
    # otherwise (a released order keeps referring to it). Anything above 0 forbids deleting the row.
    booked_count = models.PositiveIntegerField("平台订单数", default=0)
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.NORMAL)
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
            # The staff's list: by date from today, and searched by the hospital's department/doctor code.
            models.Index(fields=["work_date", "start_time"], name="schedule_date_start"),
            models.Index(fields=["department_code"], name="schedule_department_code"),
            models.Index(fields=["doctor_code"], name="schedule_doctor_code"),
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

    def is_over(self, now: dt.datetime | None = None) -> bool:
        """Whether the session has ended (local time): the one-row form of `ScheduleQuerySet.not_over`."""
        local = timezone.localtime(now)
        return self.work_date < local.date() or (self.work_date == local.date() and self.stop_time <= local.time())

    def is_bookable(self, now: dt.datetime | None = None) -> bool:
        """In service (not stopped, changed or withdrawn) and not over: a number may be booked or waited for."""
        return self.status == self.NORMAL and not self.is_over(now)


# -- orders ------------------------------------------------------------------------------------------


class Order(models.Model):
    """A booking (预约订单) a channel made for a patient on a hospital's schedule: the platform's
    trade number (`order_no`), the hospital's WorkFlowId once the number is locked there, the patient
    (encrypted at rest, lookups by keyed hash) and the life cycle of the specification's
    WorkFlowStatus (1 已预约, 2 已支付, 3 已退号, 4 已履约, 6 已爽约).

    Two platform-only states surround it: `locking` (the platform's count is reserved and the
    hospital is being asked; a crash here is reconciled by the sweeper) and `failed` (the hospital
    refused or could not be reached; the count was given back). An unpaid lock that outlives the
    lock time becomes `expired` (UnlockReg sent, count given back). 停诊 and 换诊 are marks beside
    the status: a stopped session's orders are 已退号 with the 停诊 mark; a changed session's
    orders keep their status and follow the new schedule with the 换诊 mark. Every change of status
    or mark is an OrderTransition row (and an audit entry).
    """

    class Status(models.TextChoices):
        """The specification's WorkFlowStatus codes, between the platform's own states."""

        LOCKING = "locking", "锁号中"
        BOOKED = WorkFlowStatus.BOOKED.value, WorkFlowStatus.BOOKED.label
        PAID = WorkFlowStatus.PAID.value, WorkFlowStatus.PAID.label
        CANCELLED = WorkFlowStatus.CANCELLED.value, WorkFlowStatus.CANCELLED.label
        VISITED = WorkFlowStatus.VISITED.value, WorkFlowStatus.VISITED.label
        NO_SHOW = WorkFlowStatus.NO_SHOW.value, WorkFlowStatus.NO_SHOW.label
        FAILED = "failed", "锁号失败"
        EXPIRED = "expired", "超时未支付（已解锁）"

    class Mark(models.TextChoices):
        NONE = "", "无"
        STOPPED = "stopped", "停诊"
        CHANGED = "changed", "换诊"
        # Paid on the platform, but the hospital refused the PaymentNotice (staff settle it).
        REFUSED = "refused", "医院拒绝支付通知"

    class CancelledBy(models.TextChoices):
        CHANNEL = "channel", "患者（渠道）取消"
        HOSPITAL = "hospital", "医院退号"
        STOP = "stop", "医院停诊"
        STAFF = "staff", "工作人员"

    # Short names the services read (`Order.PAID`); the lists themselves are stated once above.
    LOCKING, FAILED, EXPIRED = Status.LOCKING, Status.FAILED, Status.EXPIRED
    BOOKED, PAID, CANCELLED, VISITED, NO_SHOW = (
        Status.BOOKED,
        Status.PAID,
        Status.CANCELLED,
        Status.VISITED,
        Status.NO_SHOW,
    )
    # Orders that hold a number at the hospital (or are about to).
    ACTIVE = (LOCKING, BOOKED, PAID)
    MARK_NONE, MARK_STOPPED, MARK_CHANGED, MARK_REFUSED = Mark.NONE, Mark.STOPPED, Mark.CHANGED, Mark.REFUSED
    BY_CHANNEL, BY_HOSPITAL, BY_STOP, BY_STAFF = (
        CancelledBy.CHANNEL,
        CancelledBy.HOSPITAL,
        CancelledBy.STOP,
        CancelledBy.STAFF,
    )
    PAY_ONSITE, PAY_ONLINE = PayType.ONSITE, PayType.ONLINE

    order_no = models.CharField("平台订单号", max_length=32, unique=True)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="orders", verbose_name="渠道")
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="orders", verbose_name="医院")
    # Moves to the new schedule on 换诊; `Schedule.booked_count` counts the orders referring to a schedule.
    schedule = models.ForeignKey(Schedule, on_delete=models.PROTECT, related_name="orders", verbose_name="排班")
    num_source_id = models.CharField("号源ID", max_length=100, blank=True)
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.LOCKING)
    mark = models.CharField("标记", max_length=10, choices=Mark.choices, default=Mark.NONE, blank=True)
    mark_reason = models.CharField("停诊/换诊原因", max_length=500, blank=True)
    cancelled_by = models.CharField("退号方", max_length=10, choices=CancelledBy.choices, blank=True)
    failure_reason = models.CharField("失败原因", max_length=500, blank=True)
    # The hospital's side of the order (confirmRegistration's answer).
    lock_transaction_id = models.CharField("锁号访问流水号", max_length=36)
    workflow_id = models.CharField("挂号交易流水号", max_length=36, blank=True)
    serial_number = models.IntegerField("挂号序号", null=True, blank=True)
    worktime = models.CharField("就诊时段", max_length=20, blank=True)
    fee = models.DecimalField("挂号费（元）", max_digits=10, decimal_places=2)
    hospital_status = models.CharField("医院端状态", max_length=1, blank=True, choices=WorkFlowStatus.choices)
    refreshed_at = models.DateTimeField("最近查询医院时间", null=True, blank=True)
    # The patient, as the channel sent it (CONTRACT.md section 6: encrypted, hashed for lookups).
    # The name's hash is of the name without spaces (`lookup_hash` normalises), so 张 三 finds 张三.
    patient_name = EncryptedTextField("患者姓名", kind="name", hash_field="patient_name_hash")
    # Indexed (LookupHashField's own index): the hotline searches by the full name and phone number.
    patient_name_hash = LookupHashField("患者姓名摘要")
    id_card = EncryptedTextField("身份证号", kind="id", hash_field="id_card_hash")
    id_card_hash = LookupHashField("身份证号摘要", db_index=False)
    phone = EncryptedTextField("手机号码", kind="phone", hash_field="phone_hash")
    phone_hash = LookupHashField("手机号码摘要")
    card_no = EncryptedTextField("诊疗卡号", kind="card", hash_field="card_no_hash")
    card_no_hash = LookupHashField("诊疗卡号摘要", db_index=False)
    card_type = models.CharField("卡类型", max_length=2, choices=CardType.choices, blank=True)
    sex = models.CharField("性别编码", max_length=1, blank=True)
    age = models.CharField("年龄", max_length=30, blank=True)
    address = EncryptedTextField("地址", kind="address")
    # A retried POST with the same Idempotency-Key returns this order (fingerprint: keyed hash of the body).
    idempotency_key = models.CharField("幂等键", max_length=100, blank=True)
    idempotency_fingerprint = models.CharField("请求摘要", max_length=64, blank=True, editable=False)
    # Payment (the money itself is in LedgerEntry).
    pay_type = models.CharField("支付类型", max_length=1, choices=PayType.choices, blank=True)
    pay_trade_no = models.CharField("支付流水号", max_length=40, blank=True)
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices, blank=True)
    created_at = models.DateTimeField("下单时间", default=timezone.now)
    locked_at = models.DateTimeField("锁号时间", null=True, blank=True)
    lock_expires_at = models.DateTimeField("锁号到期时间", null=True, blank=True)
    paid_at = models.DateTimeField("支付时间", null=True, blank=True)
    cancelled_at = models.DateTimeField("退号时间", null=True, blank=True)
    finished_at = models.DateTimeField("履约/爽约时间", null=True, blank=True)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "预约订单"
        verbose_name_plural = "预约订单"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "workflow_id"], condition=~models.Q(workflow_id=""), name="uniq_order_workflow_id"
            ),
            models.UniqueConstraint(
                fields=["channel", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="uniq_order_idempotency_key",
            ),
        ]
        indexes = [
            # Lookups behind the API, the sweepers, the admin filters and the 2.4 handler.
            models.Index(fields=["workflow_id"], name="order_workflow_id"),
            models.Index(fields=["id_card_hash", "channel"], name="order_patient_channel"),
            # The hotline finds a patient's orders by the full card number (admin search).
            models.Index(fields=["card_no_hash"], name="order_card_hash"),
            models.Index(fields=["status", "lock_expires_at"], name="order_status_expiry"),
            models.Index(fields=["schedule", "status"], name="order_schedule_status"),
            models.Index(fields=["hospital", "created_at"], name="order_hospital_created"),
            models.Index(fields=["channel", "created_at"], name="order_channel_created"),
            models.Index(fields=["status", "created_at"], name="order_status_created"),
            # The reconciliation's hospital check selects a day's payments and cancellations.
            models.Index(fields=["paid_at"], name="order_paid_at"),
            models.Index(fields=["cancelled_at"], name="order_cancelled_at"),
        ]
        permissions = [
            ("cancel_order", "可代患者退号退费"),
            ("resolve_order", "可处理锁号中的订单"),
        ]

    def __str__(self) -> str:
        return self.order_no

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def paid_online(self) -> bool:
        return self.pay_type == self.PAY_ONLINE and self.paid_at is not None


class OrderTransition(models.Model):
    """One change of an order's status or mark: from, to, who, when and why (the order's history)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions", verbose_name="订单")
    from_status = models.CharField("原状态", max_length=10, choices=Order.Status.choices, blank=True)
    to_status = models.CharField("新状态", max_length=10, choices=Order.Status.choices)
    mark = models.CharField("标记", max_length=10, choices=Order.Mark.choices, blank=True)
    actor = models.CharField("操作方", max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="用户",
    )
    reason = models.CharField("原因", max_length=500, blank=True)
    created_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "订单状态变更"
        verbose_name_plural = "订单状态变更"
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["order", "created_at"], name="order_transition_order"),
            models.Index(fields=["created_at"], name="order_transition_created"),
        ]

    def __str__(self) -> str:
        return f"{self.change_text} {timezone.localtime(self.created_at):%Y-%m-%d %H:%M:%S}"

    @property
    def change_text(self) -> str:
        """What changed, as staff read it: `锁号中 → 已预约`, or the mark when the status stayed."""
        labels = dict(Order.Status.choices)
        before = labels.get(self.from_status, self.from_status) if self.from_status else "新建"
        text = f"{before} → {labels.get(self.to_status, self.to_status)}"
        if self.mark:
            text += f"（{dict(Order.Mark.choices).get(self.mark, self.mark)}）"
        return text


class OutboxMessage(DeliveryRow):
    """A message the platform owes a hospital (PaymentNotice 3.3, 退号通知 getPromiseNotice 3.5,
    UnlockReg 3.2), written in the same transaction as the state change it reports and delivered
    afterwards by Celery, with retries, until the hospital has it.

    Delivery is at-least-once: the TransactionId is fixed when the row is written, so a repeat is
    the same message and the hospital may recognise it. The delivery columns and their loop are
    the ground floor's (regional.delivery); how one row is sent is booking.services.outbox. An
    UnlockReg for a lock whose outcome is unknown (the call timed out, or the platform crashed
    mid-lock) has `recover` in its payload, and `holds` while the platform keeps the number out of
    sale for it. The specification never promises that a hospital replays a repeated TransactionId,
    so the lock is not repeated: the hospital's count is read back (getRegistrationInfo) to settle
    it, and while that cannot tell, the row is `unknown`, on the staff's worklist (待核实的锁号).
    """

    class Kind(models.TextChoices):
        PAYMENT = "PaymentNotice", "支付通知（3.3）"
        CANCEL = "getPromiseNotice", "退号通知（3.5）"
        UNLOCK = "UnlockReg", "解除锁定（3.2）"

    PAYMENT, CANCEL, UNLOCK = Kind.PAYMENT, Kind.CANCEL, Kind.UNLOCK
    # Beside the engine's states: a lost lock the hospital's count could not settle (staff's worklist).
    UNKNOWN = "unknown"
    STATUSES = [*DeliveryStatus.choices, (UNKNOWN, "结果未知（待核实）")]
    status = models.CharField("状态", max_length=10, choices=STATUSES, default=DeliveryStatus.PENDING)

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="outbox", verbose_name="订单")
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+", verbose_name="医院")
    kind = models.CharField("接口", max_length=20, choices=Kind.choices)
    # Once per order and purpose (`PaymentNotice:4`, `UnlockReg`…): writing a message twice is a no-op.
    dedupe_key = models.CharField("去重键", max_length=50)
    transaction_id = models.CharField("访问流水号", max_length=36)
    # The message fields (spec element names); no personal data.
    payload = models.JSONField("报文内容", default=dict)
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "医院通知发件箱"
        verbose_name_plural = "医院通知发件箱"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["order", "dedupe_key"], name="uniq_outbox_order_key")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due")]
        permissions = [("retry_outboxmessage", "可重新发送医院通知")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class PatientNotification(DeliveryRow):
    """A message to a patient about their order (locked, paid, stopped, changed, cancelled, expired),
    written with the change it reports and sent by the configured notifier (regional.notify) through
    the delivery engine (regional.delivery; booking.notify says how one row is sent)."""

    class Kind(models.TextChoices):
        LOCKED = "locked", "锁号成功"
        PAID = "paid", "支付成功"
        STOPPED = "stopped", "停诊"
        CHANGED = "changed", "换诊"
        CANCELLED = "cancelled", "退号"
        EXPIRED = "expired", "超时未支付"
        REMINDER = "reminder", "就诊提醒"
        REFUSED = "refused", "医院拒绝支付通知"

    LOCKED, PAID, STOPPED, CHANGED, CANCELLED, EXPIRED = (
        Kind.LOCKED,
        Kind.PAID,
        Kind.STOPPED,
        Kind.CHANGED,
        Kind.CANCELLED,
        Kind.EXPIRED,
    )
    REMINDER, REFUSED = Kind.REMINDER, Kind.REFUSED

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notifications", verbose_name="订单")
    kind = models.CharField("类型", max_length=10, choices=Kind.choices)
    # Once per order and event (`changed:<schedule>` for a change, so a second change notifies again).
    key = models.CharField("去重键", max_length=50)
    phone = EncryptedTextField("手机号码", kind="phone")
    message = models.CharField("内容", max_length=500)
    backend = models.CharField("发送方式", max_length=100, blank=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "患者通知"
        verbose_name_plural = "患者通知"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["order", "key"], name="uniq_notification_order_key")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]
        permissions = [("retry_patientnotification", "可重新发送患者通知")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class NoShowRecord(models.Model):
    """A no-show (爽约) reported by a hospital (2.4 workType 6), kept against the patient's ID hash
    so that booking bans can count a patient's no-shows across hospitals and channels."""

    id_card_hash = LookupHashField("身份证号摘要")
    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="no_show", verbose_name="订单")
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+", verbose_name="医院")
    work_date = models.DateField("就诊日期")
    occurred_at = models.DateTimeField("医院报告的时间", null=True, blank=True)
    created_at = models.DateTimeField("记录时间", default=timezone.now)

    class Meta:
        verbose_name = "爽约记录"
        verbose_name_plural = "爽约记录"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["id_card_hash", "work_date"], name="no_show_patient_date")]

    def __str__(self) -> str:
        return f"{self.order} {self.work_date}"


class LedgerEntry(models.Model):
    """The payment ledger: one row per movement of money, append-only.

    A payment (kind `payment`) or a refund (kind `refund`) of a registration fee (type 1 预约挂号)
    or of an in-clinic payment (type 2 诊间支付), with the platform trade number (`batch`, the
    order number for type 1), the payment channel's trade number (`pay_trade_no`), the hospital,
    the order and booking channel, the payment channel (alipay / wepay), the patient's name
    (encrypted) and the amount (Decimal, two places, always positive: the kind gives the sign).
    Rows are written in the same transaction as the state change they account for, and are never
    updated or deleted: a correction is a new entry (another payment or refund) whose `entry_key`
    says what it corrects. `entry_key` makes writing idempotent (one payment and one refund per
    order for type 1). Reconciliation (ReconciliationInfo 2.5) reads its totals from here:
    PayAmount − RefundAmount per batch.
    """

    class Kind(models.TextChoices):
        PAYMENT = "payment", "支付"
        REFUND = "refund", "退款"

    TYPE_REGISTRATION, TYPE_CLINIC = LedgerType.REGISTRATION, LedgerType.CLINIC
    PAYMENT, REFUND = Kind.PAYMENT, Kind.REFUND

    entry_key = models.CharField("记账键", max_length=100, unique=True)
    batch = models.CharField("平台交易流水号", max_length=100)
    pay_trade_no = models.CharField("支付交易号", max_length=40, blank=True)
    type = models.CharField("类型", max_length=1, choices=LedgerType.choices, default=LedgerType.REGISTRATION)
    kind = models.CharField("收支", max_length=10, choices=Kind.choices)
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+", verbose_name="医院")
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger", verbose_name="订单"
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="预约渠道"
    )
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices, blank=True)
    patient_name = EncryptedTextField("患者姓名", kind="name")
    amount = models.DecimalField("金额（元）", max_digits=10, decimal_places=2)
    reason = models.CharField("说明", max_length=300, blank=True)
    created_at = models.DateTimeField("交易时间", default=timezone.now)

    class Meta:
        verbose_name = "支付/退款流水"
        verbose_name_plural = "支付/退款流水"
        ordering = ["-created_at", "-pk"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="ledger_amount_positive")]
        indexes = [
            models.Index(fields=["batch"], name="ledger_batch"),
            models.Index(fields=["hospital", "created_at"], name="ledger_hospital_created"),
            models.Index(fields=["pay_trade_no"], name="ledger_pay_trade_no"),
            # A reconciliation run reads one payment channel's day.
            models.Index(fields=["pay_channel", "created_at"], name="ledger_channel_created"),
        ]

    def __str__(self) -> str:
        return f"{self.batch} {self.get_kind_display()} {self.amount}"


# -- booking rules of the regional pool ------------------------------------------------------------


class BookingRules(models.Model):
    """The booking rules (预约规则) of the regional pool, edited by regional staff: the row without a
    hospital holds the region's rules; a row for a hospital overrides the fields it fills in. An
    empty field in the region's row switches that rule off. `booking.rules.rules_for` merges them."""

    hospital = models.OneToOneField(
        Hospital,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="booking_rules",
        verbose_name="医院",
        help_text="留空表示全区域规则；选择医院则为该医院的个别规则，只覆盖已填写的项目。",
    )
    # 1. Release and booking window (放号).
    release_days = models.PositiveSmallIntegerField(
        "提前放号天数", null=True, blank=True, help_text="出诊日期前多少天开放预约，例如7表示提前7天放号。"
    )
    release_time = models.TimeField("放号时间", null=True, blank=True, help_text="放号当天的开放时刻，例如07:30。")
    booking_cutoff_minutes = models.PositiveIntegerField(
        "预约截止（开诊前分钟数）",
        null=True,
        blank=True,
        help_text="开诊前多少分钟停止预约，例如60表示开诊前1小时截止；0表示开诊时截止。",
    )
    # 2. Patient limits (counted region-wide by the patient's ID hash).
    limit_per_day = models.PositiveSmallIntegerField(
        "每人每日预约上限", null=True, blank=True, help_text="同一患者同一就诊日在全区域有效及已履约订单的最大数量。"
    )
    limit_per_week = models.PositiveSmallIntegerField(
        "每人每周预约上限", null=True, blank=True, help_text="同一患者同一自然周（周一至周日，按就诊日期）的最大数量。"
    )
    limit_per_month = models.PositiveSmallIntegerField(
        "每人每月预约上限", null=True, blank=True, help_text="同一患者同一自然月（按就诊日期）的最大数量。"
    )
    forbid_same_doctor_session = models.BooleanField(
        "禁止同一医生同一时段重复预约",
        null=True,
        blank=True,
        help_text="同一患者不能在同一医生、同一日期、同一时段持有两笔有效订单。",
    )
    forbid_overlap = models.BooleanField(
        "禁止时间重叠的预约",
        null=True,
        blank=True,
        help_text="同一患者同一天在任何医院的有效订单出诊时间不能重叠。",
    )
    # 3. Cancellation deadline.
    cancel_deadline_time = models.TimeField(
        "退号截止时刻", null=True, blank=True, help_text="例如14:00：就诊日前第N个工作日的该时刻之后不能退号。"
    )
    cancel_deadline_working_days = models.PositiveSmallIntegerField(
        "退号截止（就诊前工作日数）",
        null=True,
        blank=True,
        help_text="1表示就诊前一个工作日（跳过周末和下方节假日）；0表示就诊当天。",
    )
    holidays = models.TextField(
        "节假日", blank=True, default="", help_text="计算工作日时跳过的日期，每行一个，格式2026-10-01。"
    )
    # 4. No-show bans (爽约黑名单).
    # 7. Channel quotas.
    channel_quotas = models.JSONField(
        "渠道号源配额（%）",
        null=True,
        blank=True,
        help_text='按渠道代码分配平台可预约号源（号源总数减医院保留号源）的百分比，例如 {"JKMZWX": 60, "JKMYAPP": 40}；'
        "未列出的渠道（如转诊）不受配额限制；留空表示不分配。",
    )
    quota_release_minutes = models.PositiveIntegerField(
        "配额释放（开诊前分钟数）",
        null=True,
        blank=True,
        help_text="开诊前多少分钟起各渠道未售出的配额由所有渠道共享，例如1440表示前一天同一时刻。",
    )
    # 6. Reminders.
    reminder_time = models.TimeField(
        "就诊提醒时间",
        null=True,
        blank=True,
        help_text="就诊前一天的该时刻起向已预约患者发送就诊提醒，例如18:00；留空表示不发送。",
    )
    # 5. Waitlist (候补).
    waitlist_close_minutes = models.PositiveIntegerField(
        "候补截止（开诊前分钟数）",
        null=True,
        blank=True,
        help_text="开诊前多少分钟关闭候补（不再加入，也不再为候补患者锁号）；留空表示不开放候补。",
    )
    ban_tiers = models.JSONField(
        "爽约处罚档位",
        null=True,
        blank=True,
        help_text='例如 [{"no_shows": 3, "within_days": 90, "ban_days": 90}, {"no_shows": 6, "within_days": 180, '
        '"ban_days": 180}]：统计期内爽约达到次数即暂停预约相应天数（取最高档）。',
    )
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "预约规则"
        verbose_name_plural = "预约规则"
        ordering = ["hospital_id"]
        constraints = [
            # One region-wide row: the hospital is NULL there, which a plain unique column allows twice.
            models.UniqueConstraint(Coalesce("hospital", models.Value(0)), name="uniq_booking_rules_scope")
        ]

    def __str__(self) -> str:
        return f"{self.hospital}的预约规则" if self.hospital_id else "全区域预约规则"


class NoShowBan(models.Model):
    """A booking ban (爽约黑名单) on a patient (by ID hash) after repeated no-shows, from the day it
    was imposed until `ends_on` (inclusive). Staff may lift or shorten it with a reason; every change
    is an audit entry."""

    id_card_hash = LookupHashField("身份证号摘要")
    no_shows = models.PositiveSmallIntegerField("统计期内爽约次数")
    within_days = models.PositiveSmallIntegerField("统计天数")
    starts_on = models.DateField("开始日期")
    ends_on = models.DateField("结束日期")
    # The no-show that triggered it: one ban per record, so lifting a ban does not bring it back.
    trigger = models.OneToOneField(
        NoShowRecord, on_delete=models.PROTECT, related_name="ban", verbose_name="触发的爽约记录"
    )
    lifted_at = models.DateTimeField("解除时间", null=True, blank=True)
    change_reason = models.CharField("变更原因", max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="变更人",
    )
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "爽约禁约"
        verbose_name_plural = "爽约禁约"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["id_card_hash", "ends_on"], name="no_show_ban_patient")]

    def __str__(self) -> str:
        return f"禁约至{self.ends_on:%Y-%m-%d}"

    def is_active_on(self, day: dt.date) -> bool:
        return self.lifted_at is None and self.starts_on <= day <= self.ends_on


class WaitlistEntry(models.Model):
    """A patient waiting (候补) for a full schedule through a channel. A slot freed by a cancellation,
    an expired lock or the hospital's report is offered to the first in line as a normal lock (the
    patient then pays within the lock time); an unpaid offer expires and the next in line gets it."""

    class Status(models.TextChoices):
        WAITING = "waiting", "候补中"
        OFFERED = "offered", "已锁号待支付"
        BOOKED = "booked", "已预约"
        EXPIRED = "expired", "超时未支付"
        FAILED = "failed", "锁号未成功"
        CANCELLED = "cancelled", "已取消候补"
        CLOSED = "closed", "候补已截止"

    WAITING, OFFERED, BOOKED, EXPIRED, FAILED, CANCELLED, CLOSED = Status
    OPEN = (WAITING, OFFERED)

    schedule = models.ForeignKey(Schedule, on_delete=models.PROTECT, related_name="waitlist", verbose_name="排班")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+", verbose_name="渠道")
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.WAITING)
    patient_name = EncryptedTextField("患者姓名", kind="name")
    id_card = EncryptedTextField("身份证号", kind="id", hash_field="id_card_hash")
    id_card_hash = LookupHashField("身份证号摘要", db_index=False)
    phone = EncryptedTextField("手机号码", kind="phone")
    card_no = EncryptedTextField("诊疗卡号", kind="card")
    card_type = models.CharField("卡类型", max_length=2, blank=True)
    sex = models.CharField("性别编码", max_length=1, blank=True)
    age = models.CharField("年龄", max_length=30, blank=True)
    address = EncryptedTextField("地址", kind="address")
    order = models.OneToOneField(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="waitlist_entry", verbose_name="候补订单"
    )
    note = models.CharField("说明", max_length=300, blank=True)
    created_at = models.DateTimeField("加入时间", default=timezone.now)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "候补"
        verbose_name_plural = "候补"
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "id_card_hash"],
                condition=models.Q(status__in=["waiting", "offered"]),
                name="uniq_waitlist_open_patient",
            )
        ]
        indexes = [models.Index(fields=["schedule", "status", "created_at"], name="waitlist_schedule_status")]

    def __str__(self) -> str:
        return f"候补#{self.pk} {self.schedule}"


class LostLock(OutboxMessage):
    """The staff's worklist of locks whose outcome is unknown: the hospital may hold a number the
    platform has no WorkFlowId for. Settled by reading the count back or by staff after asking the
    hospital; the number is not offered again until then."""

    class Meta:
        proxy = True
        verbose_name = "待核实的锁号"
        verbose_name_plural = "待核实的锁号"
