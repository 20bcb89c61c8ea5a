"""The sandbox hospital's own HIS data: what a real hospital information system keeps behind the
hospital-side interface (3.x, 6.x). Nothing here refers to the platform's tables; the sandbox
reaches the platform only over SOAP, as a real hospital does.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone

from regional.pii import EncryptedTextField, LookupHashField

# The hospital-side operations a fault may be limited to (spec 3.1–3.8, 6.1–6.2).
OPERATIONS = (
    "confirmRegistration",
    "UnlockReg",
    "PaymentNotice",
    "getRegistrationInfo",
    "getPromiseNotice",
    "GetOrderDetailInfo",
    "GetLineupDetailInfo",
    "GetDaypartingDetailInfo",
    "CheckMediCardIdService",
    "queryCardListInfo",
)


class SandboxHospital(models.Model):
    """A simulated hospital (HIS): serves the hospital-side interface at `/sandbox/his/<no>/ws`,
    pushes its master data and schedules to the center with its own credentials, and fails on
    demand (latency, timeouts, error answers, malformed answers, HTTP 500) for tests and drills.
    """

    FAULT_NONE = ""
    FAULT_TIMEOUT = "timeout"
    FAULT_ERROR = "error"
    FAULT_MALFORMED = "malformed"
    FAULT_HTTP500 = "http500"
    FAULT_CHOICES = [
        (FAULT_NONE, "无故障"),
        (FAULT_TIMEOUT, "超时（等待超过调用方超时）"),
        (FAULT_ERROR, "返回业务错误（ResultCode 1）"),
        (FAULT_MALFORMED, "返回非XML应答"),
        (FAULT_HTTP500, "HTTP 500"),
    ]

    hospital_no = models.CharField("医院编号", max_length=36, unique=True)
    name = models.CharField("医院名称", max_length=100)
    short_name = models.CharField("简称", max_length=100, blank=True)
    degree_code = models.CharField("级别编码", max_length=20, blank=True)
    degree_name = models.CharField("级别名称", max_length=20, blank=True)
    phone = models.CharField("电话", max_length=20, blank=True)
    address = models.CharField("地址", max_length=100, blank=True)
    description = models.CharField("简介", max_length=600, blank=True)
    website = models.CharField("网址", max_length=30, blank=True)
    bus_route = models.CharField("公交路线", max_length=300, blank=True)
    seq_no = models.IntegerField("排序", null=True, blank=True)
    # How this HIS reaches the platform (it is configured like any hospital's interface engine).
    center_url = models.URLField(
        "平台中心端地址", max_length=300, blank=True, help_text="如 http://127.0.0.1:8000/ws/center"
    )
    center_secret = models.CharField(
        "平台接入密钥", max_length=200, blank=True, help_text="本沙箱医院调用平台时使用的密钥（HTTP Basic）"
    )
    # Faults on demand.
    fault_mode = models.CharField("故障模式", max_length=10, choices=FAULT_CHOICES, default=FAULT_NONE, blank=True)
    fault_latency_ms = models.PositiveIntegerField("附加延迟（毫秒）", default=0)
    fault_timeout_seconds = models.PositiveIntegerField(
        "超时模式等待（秒）", default=30, help_text="应大于平台的调用超时（HOSPITAL_CALL_TIMEOUT）"
    )
    fault_operations = models.CharField(
        "故障限定接口",
        max_length=500,
        blank=True,
        help_text="逗号分隔的接口名（如 confirmRegistration,PaymentNotice）；为空则对全部接口生效",
    )
    fault_error_message = models.CharField("模拟错误信息", max_length=200, default="沙箱医院模拟的业务错误")
    card_seq = models.PositiveIntegerField("已发卡数", default=0, editable=False)
    created_at = models.DateTimeField("创建时间", auto_now_add=True)

    class Meta:
        verbose_name = "沙箱医院"
        verbose_name_plural = "沙箱医院"
        ordering = ["hospital_no"]

    def __str__(self) -> str:
        return f"{self.name}（{self.hospital_no}）"

    def fault_operation_names(self) -> list[str]:
        return [name.strip() for name in self.fault_operations.replace("，", ",").split(",") if name.strip()]

    def fault_for(self, operation: str | None) -> str:
        """The fault mode that applies to one call of `operation` (empty: answer normally)."""
        if not self.fault_mode:
            return self.FAULT_NONE
        names = {n.lower() for n in self.fault_operation_names()}
        if names and (operation or "").lower() not in names:
            return self.FAULT_NONE
        return self.fault_mode

    def latency_for(self, operation: str | None) -> float:
        if not self.fault_latency_ms:
            return 0.0
        names = {n.lower() for n in self.fault_operation_names()}
        if names and (operation or "").lower() not in names:
            return 0.0
        return self.fault_latency_ms / 1000


class SandboxDepartment(models.Model):
    """A department (科室) of a sandbox hospital, as its HIS keeps it."""

    hospital = models.ForeignKey(
        SandboxHospital, on_delete=models.CASCADE, related_name="departments", verbose_name="医院"
    )
    department_id = models.CharField("科室编号", max_length=36)
    name = models.CharField("科室名称", max_length=200)
    parent_department_id = models.CharField("上级科室编号", max_length=36, blank=True)
    gb_id = models.CharField("标准科室编码", max_length=20, blank=True)
    gb_name = models.CharField("标准科室名称", max_length=200, blank=True)
    description = models.CharField("科室描述", max_length=400, blank=True)
    location = models.CharField("科室位置", max_length=200, blank=True)
    is_outpatient = models.BooleanField("门诊科室", default=True)
    is_hospitalization = models.BooleanField("住院科室", default=False)
    seq_no = models.IntegerField("排序", null=True, blank=True)
    is_deleted = models.BooleanField("已删除", default=False)

    class Meta:
        verbose_name = "沙箱科室"
        verbose_name_plural = "沙箱科室"
        ordering = ["hospital", "seq_no", "department_id"]
        constraints = [models.UniqueConstraint(fields=["hospital", "department_id"], name="sandbox_uniq_department")]

    def __str__(self) -> str:
        return f"{self.name}（{self.department_id}）"


class SandboxDoctor(models.Model):
    """A doctor (医生) of a sandbox hospital, identified by the HIS's own 工号."""

    hospital = models.ForeignKey(SandboxHospital, on_delete=models.CASCADE, related_name="doctors", verbose_name="医院")
    doctor_id = models.CharField("医生工号", max_length=36)
    name = models.CharField("姓名", max_length=20)
    sex_code = models.CharField("性别编码", max_length=1, blank=True)
    title_code = models.CharField("职称编码", max_length=20, blank=True)
    title = models.CharField("职称", max_length=100, blank=True)
    skill = models.CharField("特长", max_length=300, blank=True)
    description = models.CharField("介绍", max_length=500, blank=True)
    department = models.ForeignKey(
        SandboxDepartment, on_delete=models.PROTECT, related_name="doctors", verbose_name="科室"
    )
    is_expert = models.BooleanField("专家", default=False)
    seq_no = models.IntegerField("排序", null=True, blank=True)
    is_deleted = models.BooleanField("已删除", default=False)

    class Meta:
        verbose_name = "沙箱医生"
        verbose_name_plural = "沙箱医生"
        ordering = ["hospital", "seq_no", "doctor_id"]
        constraints = [models.UniqueConstraint(fields=["hospital", "doctor_id"], name="sandbox_uniq_doctor")]

    def __str__(self) -> str:
        return f"{self.name}（{self.doctor_id}）"


class SandboxSchedule(models.Model):
    """One session (排班班次) of a doctor, with its numbered time slots and its queue."""

    OPEN, STOPPED, REPLACED = "1", "2", "3"
    STATUS_CHOICES = [(OPEN, "出诊"), (STOPPED, "停诊"), (REPLACED, "已换诊")]
    TIME_CODES = [("0", "全天"), ("1", "上午"), ("2", "中午"), ("3", "下午"), ("4", "晚上")]

    hospital = models.ForeignKey(
        SandboxHospital, on_delete=models.CASCADE, related_name="schedules", verbose_name="医院"
    )
    work_id = models.CharField("排班号", max_length=100)
    doctor = models.ForeignKey(SandboxDoctor, on_delete=models.PROTECT, related_name="schedules", verbose_name="医生")
    department = models.ForeignKey(
        SandboxDepartment, on_delete=models.PROTECT, related_name="schedules", verbose_name="科室"
    )
    work_date = models.DateField("出诊日期")
    work_time_code = models.CharField("出诊时段", max_length=1, choices=TIME_CODES)
    start_time = models.TimeField("开始时间")
    stop_time = models.TimeField("结束时间")
    work_addr = models.CharField("执业地址", max_length=100, blank=True)
    registration_type_id = models.CharField("挂号类型编号", max_length=20, blank=True)
    registration_type_name = models.CharField("挂号类型", max_length=100, blank=True)
    price = models.DecimalField("挂号费（元）", max_digits=8, decimal_places=2)
    total = models.PositiveIntegerField("号源总数")
    remaining = models.IntegerField("剩余号源")
    hos_locked_count = models.PositiveIntegerField("医院保留号源", default=0)
    next_serial = models.PositiveIntegerField("已发序号", default=0, help_text="不分时段时按此发放挂号序号")
    now_seq = models.PositiveIntegerField("当前就诊序号", default=0)
    status = models.CharField("状态", max_length=1, choices=STATUS_CHOICES, default=OPEN)
    stop_reason = models.CharField("停诊/换诊原因", max_length=500, blank=True)
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name="换诊后排班"
    )
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "沙箱排班"
        verbose_name_plural = "沙箱排班"
        ordering = ["hospital", "work_date", "work_time_code", "work_id"]
        constraints = [
            models.UniqueConstraint(fields=["hospital", "work_id"], name="sandbox_uniq_schedule"),
            # The last line of defence against overselling: the counter can never go below zero.
            models.CheckConstraint(condition=Q(remaining__gte=0), name="sandbox_schedule_remaining_not_negative"),
        ]
        indexes = [models.Index(fields=["hospital", "work_date"], name="sandbox_schedule_date")]

    def __str__(self) -> str:
        return f"{self.work_id} {self.work_date} {self.get_work_time_code_display()}"

    @property
    def worktime(self) -> str:
        return f"{self.start_time:%H:%M}-{self.stop_time:%H:%M}"


class SandboxSlot(models.Model):
    """A numbered time slot (分时段号源) of a session; `num_source_id` is what channels book."""

    FREE, INVALID, TAKEN, LOCKED = "1", "2", "3", "4"
    STATUS_CHOICES = [(FREE, "可挂"), (INVALID, "失效"), (TAKEN, "已挂"), (LOCKED, "已锁号")]

    schedule = models.ForeignKey(SandboxSchedule, on_delete=models.CASCADE, related_name="slots", verbose_name="排班")
    cur_num = models.PositiveIntegerField("序号")
    start_time = models.TimeField("开始时间")
    end_time = models.TimeField("结束时间")
    num_source_id = models.CharField("号源ID", max_length=100)
    status = models.CharField("状态", max_length=1, choices=STATUS_CHOICES, default=FREE)

    class Meta:
        verbose_name = "沙箱分时段号源"
        verbose_name_plural = "沙箱分时段号源"
        ordering = ["schedule", "cur_num"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "cur_num"], name="sandbox_uniq_slot_number"),
            models.UniqueConstraint(fields=["schedule", "num_source_id"], name="sandbox_uniq_slot_source"),
        ]

    def __str__(self) -> str:
        return f"{self.num_source_id}（{self.get_status_display()}）"

    @property
    def worktime(self) -> str:
        return f"{self.start_time:%H:%M}-{self.end_time:%H:%M}"

    def see_date(self) -> str:
        moment = dt.datetime.combine(self.schedule.work_date, self.start_time)
        return moment.strftime("%Y-%m-%d %H:%M")


class SandboxCard(models.Model):
    """A medical card (诊疗卡) issued by the sandbox hospital; queryCardListInfo registers them."""

    CARD_TYPES = [("01", "院内就诊卡"), ("02", "居民健康卡")]

    hospital = models.ForeignKey(SandboxHospital, on_delete=models.CASCADE, related_name="cards", verbose_name="医院")
    card_no = models.CharField("卡号", max_length=20)
    card_type = models.CharField("卡类型", max_length=2, choices=CARD_TYPES, default="01")
    id_code = EncryptedTextField("身份证号", kind="id", hash_field="id_hash")
    id_hash = LookupHashField()
    name = EncryptedTextField("姓名", kind="name")
    phone = EncryptedTextField("手机号码", kind="phone")
    address = EncryptedTextField("地址", kind="address")
    health_card_num = EncryptedTextField("健康卡银行卡号", kind="card")
    is_active = models.BooleanField("有效", default=True)
    created_at = models.DateTimeField("建卡时间", default=timezone.now)
    last_used_at = models.DateTimeField("最近使用时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱诊疗卡"
        verbose_name_plural = "沙箱诊疗卡"
        ordering = ["hospital", "card_no"]
        constraints = [models.UniqueConstraint(fields=["hospital", "card_no"], name="sandbox_uniq_card")]

    def __str__(self) -> str:
        return self.card_no


class SandboxOrder(models.Model):
    """A registration at the sandbox hospital (挂号单), from the lock (confirmRegistration) to the
    visit. Statuses are the specification's WorkFlowStatus: 1 已预约 2 已支付 3 已退号 4 已履约 6 已爽约.
    """

    BOOKED, PAID, CANCELLED, VISITED, NO_SHOW = "1", "2", "3", "4", "6"
    STATUS_CHOICES = [
        (BOOKED, "已预约"),
        (PAID, "已支付"),
        (CANCELLED, "已退号"),
        (VISITED, "已履约"),
        (NO_SHOW, "已爽约"),
    ]
    ACTIVE = (BOOKED, PAID)

    hospital = models.ForeignKey(SandboxHospital, on_delete=models.CASCADE, related_name="orders", verbose_name="医院")
    work_flow_id = models.CharField("挂号交易流水号", max_length=36, unique=True)
    transaction_id = models.CharField("锁号访问流水号", max_length=36, blank=True)
    schedule = models.ForeignKey(SandboxSchedule, on_delete=models.PROTECT, related_name="orders", verbose_name="排班")
    slot = models.ForeignKey(
        SandboxSlot, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders", verbose_name="号源"
    )
    serial_number = models.PositiveIntegerField("挂号序号")
    worktime = models.CharField("就诊时段", max_length=20, blank=True)
    fee = models.DecimalField("挂号费（元）", max_digits=8, decimal_places=2)
    status = models.CharField("状态", max_length=1, choices=STATUS_CHOICES, default=BOOKED)
    onsite_payment = models.BooleanField("现场支付", default=False, help_text="支付通知为现场支付：号源保留，线下缴费")
    patient_no = EncryptedTextField("医疗卡号", kind="card")
    card_type = models.CharField("卡类型", max_length=2, blank=True)
    name = EncryptedTextField("姓名", kind="name")
    sex = models.CharField("性别编码", max_length=1, blank=True)
    sex_name = models.CharField("性别", max_length=20, blank=True)
    age = models.CharField("年龄", max_length=30, blank=True)
    telephone = EncryptedTextField("手机号码", kind="phone")
    address = EncryptedTextField("地址", kind="address")
    id_code = EncryptedTextField("身份证号", kind="id", hash_field="id_hash")
    id_hash = LookupHashField()
    channel = models.CharField("预约渠道", max_length=10, blank=True)
    locked_at = models.DateTimeField("锁号时间", default=timezone.now)
    paid_at = models.DateTimeField("支付时间", null=True, blank=True)
    cancelled_at = models.DateTimeField("退号时间", null=True, blank=True)
    checked_in_at = models.DateTimeField("报到时间", null=True, blank=True)
    visited_at = models.DateTimeField("就诊时间", null=True, blank=True)
    reported_status = models.CharField(
        "已报告平台的状态", max_length=1, blank=True, help_text="最近一次通过getPromiseNotice（2.4）报告给平台的状态"
    )

    class Meta:
        verbose_name = "沙箱挂号单"
        verbose_name_plural = "沙箱挂号单"
        ordering = ["-locked_at"]
        constraints = [
            # A repeated confirmRegistration (same TransactionId) returns the same order, never a second one.
            models.UniqueConstraint(
                fields=["hospital", "transaction_id"], condition=~Q(transaction_id=""), name="sandbox_uniq_lock_tx"
            ),
        ]
        indexes = [models.Index(fields=["schedule", "serial_number"], name="sandbox_order_queue")]

    def __str__(self) -> str:
        return self.work_flow_id

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class SandboxPayment(models.Model):
    """A payment notice (PaymentNotice, 3.3) received for an order."""

    PAY_TYPES = [("3", "现场支付"), ("4", "在线支付")]

    order = models.ForeignKey(SandboxOrder, on_delete=models.CASCADE, related_name="payments", verbose_name="挂号单")
    transaction_id = models.CharField("访问流水号", max_length=36, blank=True)
    pay_type = models.CharField("支付类型", max_length=1, choices=PAY_TYPES)
    amount = models.DecimalField("支付金额（元）", max_digits=8, decimal_places=2)
    pay_trade_no = models.CharField("支付流水号", max_length=40, blank=True)
    pay_channel = models.CharField("支付渠道", max_length=10, blank=True)
    channel = models.CharField("发起渠道", max_length=10, blank=True)
    created_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱支付记录"
        verbose_name_plural = "沙箱支付记录"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order.work_flow_id} {self.amount}"


class SandboxCancellation(models.Model):
    """Why an order stopped holding its slot: unlocked (3.2), cancelled by the platform (3.5),
    or withdrawn by the hospital itself (reported to the center with 2.4 退号)."""

    UNLOCK, PLATFORM, HOSPITAL = "unlock", "platform", "hospital"
    KIND_CHOICES = [(UNLOCK, "解除锁定"), (PLATFORM, "平台退号通知"), (HOSPITAL, "医院退号")]

    order = models.ForeignKey(
        SandboxOrder, on_delete=models.CASCADE, related_name="cancellations", verbose_name="挂号单"
    )
    kind = models.CharField("类型", max_length=10, choices=KIND_CHOICES)
    transaction_id = models.CharField("访问流水号", max_length=36, blank=True)
    reason = models.CharField("原因", max_length=300, blank=True)
    occurred_at = models.DateTimeField("触发时间", null=True, blank=True)
    created_at = models.DateTimeField("记录时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱退号记录"
        verbose_name_plural = "沙箱退号记录"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order.work_flow_id} {self.get_kind_display()}"
