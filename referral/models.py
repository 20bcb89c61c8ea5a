"""Two-way referral (双向转诊): referrals between the region's hospitals, their history, the links
that open them without a login, and the reminders sent about them.

Personal data (身份证号, 就诊卡号, 电话, 地址, 诊断与病史) is stored encrypted (regional.pii); the ID
number, card number and patient name carry a keyed hash beside the ciphertext for lookups.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from regional.delivery import DeliveryRow
from regional.messages import codes
from regional.models import Department, Hospital
from regional.pii import EncryptedTextField, LookupHashField


class Referral(models.Model):
    """One referral of one patient from a sending hospital (转出医院) to a receiving hospital (转入医院).

    Created as a draft by the sending HIS (`referral`), completed on the application form and
    submitted; or pushed complete by a third party (`referral-apply`). The receiving hospital
    accepts or rejects it, marks the patient arrived and completes it. A referral back (回转)
    points to the referral it returns.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "草稿"
        SUBMITTED = "submitted", "待接收"
        ACCEPTED = "accepted", "已接收"
        REJECTED = "rejected", "已拒绝"
        ARRIVED = "arrived", "患者已到院"
        COMPLETED = "completed", "已完成"
        CANCELLED = "cancelled", "已取消"

    class Direction(models.TextChoices):
        UP = "up", "上转"
        DOWN = "down", "下转"
        LATERAL = "lateral", "平级转诊"
        UNKNOWN = "unknown", "未定"

    CareType = codes.CareType

    class Source(models.TextChoices):
        HIS = "his", "HIS发起"
        APPLY = "apply", "第三方推送"
        BACK = "back", "回转"

    Urgency = codes.Urgency

    OPEN_STATUSES = (Status.SUBMITTED, Status.ACCEPTED, Status.ARRIVED)

    # The sending side, as the HIS sent it (orderid is unique per sending hospital).
    sending_hospital = models.ForeignKey(
        Hospital, on_delete=models.PROTECT, related_name="referrals_sent", verbose_name="转出医院"
    )
    order_id = models.CharField("发起转诊编码", max_length=64)
    sending_hospital_name = models.CharField("发起医院名称", max_length=128, blank=True)
    sending_department_code = models.CharField("发起科室代码", max_length=32, blank=True)
    sending_department_name = models.CharField("发起科室名称", max_length=128, blank=True)
    sending_doctor_code = models.CharField("发起医生工号", max_length=32, blank=True)
    sending_doctor_name = models.CharField("发起医生姓名", max_length=128, blank=True)

    # The receiving side, chosen on the form or pushed by `referral-apply`.
    receiving_hospital = models.ForeignKey(
        Hospital,
        on_delete=models.PROTECT,
        related_name="referrals_received",
        null=True,
        blank=True,
        verbose_name="转入医院",
    )
    receiving_department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="转入科室"
    )
    receiving_department_code = models.CharField("转入科室代码", max_length=128, blank=True)
    receiving_department_name = models.CharField("转入科室名称", max_length=200, blank=True)

    care_type = models.CharField("门诊住院标志", max_length=2, choices=CareType.choices)
    patient_type = models.CharField("病人类型", max_length=1, blank=True, choices=codes.PatientType.choices)
    patient_name = EncryptedTextField("患者姓名", kind="name", hash_field="patient_name_hash")
    patient_name_hash = LookupHashField()
    card_no = EncryptedTextField("就诊卡号", kind="card", hash_field="card_no_hash")
    card_no_hash = LookupHashField()
    card_type = models.CharField(
        "就诊卡类型",
        max_length=2,
        choices=codes.ReferralCardType.choices,
    )
    id_no = EncryptedTextField("身份证号码", kind="id", hash_field="id_no_hash")
    id_no_hash = LookupHashField()
    birth_date = models.DateField("出生日期", null=True, blank=True)
    phone = EncryptedTextField("联系电话", kind="phone")
    address = EncryptedTextField("家庭地址", kind="address")
    diagnosis = EncryptedTextField("初步诊断", kind="clinical")
    history_summary = EncryptedTextField("病史摘要", kind="clinical")
    past_history = EncryptedTextField("主要既往史", kind="clinical")
    treatment = EncryptedTextField("治疗情况", kind="clinical")
    notes = EncryptedTextField("医生补充说明", kind="clinical")
    purpose = models.TextField("转诊目的", blank=True)
    urgency = models.CharField("紧急程度", max_length=1, blank=True, choices=Urgency.choices)

    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.DRAFT)
    direction = models.CharField("转诊方向", max_length=8, choices=Direction.choices, default=Direction.UNKNOWN)
    source = models.CharField("来源", max_length=5, choices=Source.choices, default=Source.HIS)
    original = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="returns", verbose_name="原转诊单（回转）"
    )
    # The booking the receiving hospital made when accepting (through the booking service's
    # REFERRAL channel); null when accepted without one. PROTECT: orders are never deleted.
    booking_order = models.OneToOneField(
        "booking.Order",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="referral",
        verbose_name="转诊预约订单",
    )
    accept_note = models.TextField("接收说明", blank=True)
    reject_reason = models.TextField("拒绝原因", blank=True)
    cancel_reason = models.TextField("取消原因", blank=True)

    created_at = models.DateTimeField("创建时间", default=timezone.now)
    updated_at = models.DateTimeField("更新时间", auto_now=True)
    submitted_at = models.DateTimeField("提交时间", null=True, blank=True)
    accepted_at = models.DateTimeField("接收时间", null=True, blank=True)
    rejected_at = models.DateTimeField("拒绝时间", null=True, blank=True)
    arrived_at = models.DateTimeField("到院时间", null=True, blank=True)
    completed_at = models.DateTimeField("完成时间", null=True, blank=True)
    cancelled_at = models.DateTimeField("取消时间", null=True, blank=True)
    overdue_flagged_at = models.DateTimeField("超时提醒时间", null=True, blank=True)

    class Meta:
        verbose_name = "转诊单"
        verbose_name_plural = "转诊单"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["sending_hospital", "order_id"], name="uniq_referral_order_per_hospital")
        ]
        indexes = [
            # referral-query: newest open referral of a patient to one hospital.
            models.Index(fields=["receiving_hospital", "status", "-submitted_at"], name="referral_receiving_open"),
            # The overdue scan and the statistics run over submission time.
            models.Index(fields=["status", "submitted_at"], name="referral_status_submitted"),
            models.Index(fields=["submitted_at"], name="referral_submitted"),
        ]

    def __str__(self) -> str:
        return f"转诊单 {self.order_id}（{self.get_status_display()}）"

    @property
    def is_back(self) -> bool:
        return self.original_id is not None


class ReferralBooking(models.Model):
    """The outpatient booking (`bespeak`) a pushed referral carries, as sent, and the platform
    schedule it matched when the booking service knows one."""

    referral = models.OneToOneField(Referral, on_delete=models.CASCADE, related_name="booking", verbose_name="转诊单")
    order_no = models.CharField("挂号单号", max_length=128)
    slot_id = models.CharField("号源ID", max_length=128)
    status = models.CharField("挂号状态", max_length=128)
    date = models.DateField("预约日期")
    department_code = models.CharField("预约科室代码", max_length=128)
    department_name = models.CharField("预约科室名称", max_length=128)
    doctor_code = models.CharField("医生工号", max_length=128)
    doctor_name = models.CharField("医生姓名", max_length=128)
    start_time = models.TimeField("开始时间", null=True, blank=True)
    end_time = models.TimeField("结束时间", null=True, blank=True)
    # Primary key of booking.models.Schedule matched by hospital + date + department, if any.
    schedule_ref = models.CharField("匹配的平台排班", max_length=64, blank=True)

    class Meta:
        verbose_name = "转诊预约挂号"
        verbose_name_plural = "转诊预约挂号"

    def __str__(self) -> str:
        return f"{self.order_no} {self.date} {self.department_name}"


class ReferralTransition(models.Model):
    """One step of a referral's life: from which status to which, who did it, when, and why."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="transitions", verbose_name="转诊单")
    from_status = models.CharField("原状态", max_length=10, blank=True, choices=Referral.Status.choices)
    to_status = models.CharField("新状态", max_length=10, choices=Referral.Status.choices)
    at = models.DateTimeField("时间", default=timezone.now)
    actor_label = models.CharField("操作人", max_length=200)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name="平台用户"
    )
    actor_hospital = models.ForeignKey(
        Hospital, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="操作医院"
    )
    reason = models.TextField("原因/说明", blank=True)

    class Meta:
        verbose_name = "转诊状态变更"
        verbose_name_plural = "转诊状态变更"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_from_status_display() or '新建'} → {self.get_to_status_display()}"


class ReferralAccess(models.Model):
    """A link code (referralCode) that opens a referral's page without a login.

    The sending HIS gets one from `referral` (application form), the receiving HIS one from
    `referral-query` (notice). Only a hash of the code is stored; codes expire.
    """

    SENDER, RECEIVER = "sender", "receiver"

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="accesses", verbose_name="转诊单")
    audience = models.CharField(
        "用途", max_length=8, choices=[(SENDER, "转出医院申请单"), (RECEIVER, "转入医院转诊通知")]
    )
    code_hash = models.CharField("链接码摘要", max_length=64, unique=True, editable=False)
    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", verbose_name="发给医院")
    doctor_code = models.CharField("医生工号", max_length=32, blank=True)
    created_at = models.DateTimeField("签发时间", default=timezone.now)
    expires_at = models.DateTimeField("失效时间", db_index=True)
    last_used_at = models.DateTimeField("最近使用", null=True, blank=True)

    class Meta:
        verbose_name = "转诊单链接"
        verbose_name_plural = "转诊单链接"

    def __str__(self) -> str:
        return f"{self.get_audience_display()} {self.referral_id}"


class ReferralNotification(DeliveryRow):
    """A reminder about a referral (a pending one not acted on in time), kept until delivered.

    Rows are written in the transaction that decides to notify; delivery through the configured
    notifier (regional.notify) happens after commit through the delivery engine
    (regional.delivery), retried with backoff and swept by the periodic scan, so nothing is lost.
    """

    OVERDUE = "overdue"

    referral = models.ForeignKey(
        Referral, on_delete=models.CASCADE, related_name="notifications", verbose_name="转诊单"
    )
    kind = models.CharField("类型", max_length=20, choices=[(OVERDUE, "超时未处理")])
    # "hospital:<HospitalNo>" or "staff" (the region's referral staff).
    recipient = models.CharField("接收方", max_length=60)
    hospital = models.ForeignKey(
        Hospital, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name="接收医院"
    )
    message = models.TextField("内容")
    created_at = models.DateTimeField("生成时间", default=timezone.now)

    class Meta:
        verbose_name = "转诊提醒"
        verbose_name_plural = "转诊提醒"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["referral", "kind", "recipient"], name="uniq_referral_notification")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="referral_notification_due")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.recipient}"


class OverdueReferral(Referral):
    """The admin's list of submitted referrals the receiving hospital has not acted on in time."""

    class Meta:
        proxy = True
        verbose_name = "超时未处理转诊"
        verbose_name_plural = "超时未处理转诊"


# The referral's personal data and its masking kind (regional.pii.mask), for the pages and the admin.
PERSONAL_FIELDS = {
    "patient_name": "name",
    "id_no": "id",
    "card_no": "card",
    "phone": "phone",
    "address": "address",
    "diagnosis": "clinical",
    "history_summary": "clinical",
    "past_history": "clinical",
    "treatment": "clinical",
    "notes": "clinical",
}
