"""Shapes of the REST API: what comes in (types and lengths only; the rules are the services')
and what goes out.

Personal data in answers (CONTRACT.md section 6, our choice): an order is only ever visible to the
channel that placed it, and the patient data on it is what that channel itself sent, so it is
returned in full to that channel (`patient`). Personal data the channel did not send, namely the
phone number a hospital holds for a card (6.1, 6.2), is returned masked.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from django.utils.functional import cached_property
from rest_framework import serializers

from booking.models import Order, Schedule
from regional.messages.codes import PayChannel
from regional.models import Department, Doctor, Hospital, degree_level
from regional.pii import mask

# -- in ---------------------------------------------------------------------------------------------

_threads = threading.local()


class ReusedFields:
    """For the input shapes of the hot paths (lock, pay, cancel): DRF deep-copies every declared field
    for each serializer instance, two thirds of validating an order (1.1 ms; bench/bench_rush.py).
    Each thread keeps one bound copy per class and reuses it. Safe for plain fields only: nothing
    here reads the serializer's context or instance, and a thread validates one request at a time."""

    @cached_property
    def fields(self):
        kept = _threads.__dict__.setdefault("fields", {})
        fields = kept.get(type(self))
        if fields is None:
            fields = kept[type(self)] = super().fields
        return fields


class PatientIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="患者姓名")
    id_card = serializers.CharField(max_length=30, help_text="身份证号（15或18位）")
    phone = serializers.CharField(max_length=20, help_text="手机号码")
    card_no = serializers.CharField(max_length=100, required=False, allow_blank=True, default="", help_text="诊疗卡号")
    card_type = serializers.CharField(
        max_length=2, required=False, allow_blank=True, default="", help_text="卡类型：01院内就诊卡，02居民健康卡"
    )
    sex = serializers.CharField(max_length=1, required=False, allow_blank=True, default="", help_text="性别编码")
    age = serializers.CharField(max_length=30, required=False, allow_blank=True, default="", help_text="年龄")
    address = serializers.CharField(max_length=200, required=False, allow_blank=True, default="", help_text="地址")


class OrderIn(ReusedFields, serializers.Serializer):
    hospital_no = serializers.CharField(max_length=36, help_text="医院编号（HospitalNo）")
    work_id = serializers.CharField(max_length=100, help_text="排班班次（WorkId）")
    num_source_id = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text="号源ID（分时段预约时填写）"
    )
    patient = PatientIn(help_text="患者信息（也可与上面的字段平级发送）")

    def to_internal_value(self, data):
        # Liberal in what we accept: the patient's fields may come flat, beside hospital_no.
        if isinstance(data, dict) and "patient" not in data:
            names = set(PatientIn._declared_fields)
            data = {
                **{k: v for k, v in data.items() if k not in names},
                "patient": {k: data[k] for k in names if k in data},
            }
        return super().to_internal_value(data)


class PayIn(ReusedFields, serializers.Serializer):
    pay_type = serializers.CharField(max_length=1, help_text="支付类型：3现场支付，4在线支付")
    amount = serializers.DecimalField(max_digits=10, decimal_places=2, help_text="支付金额（元，两位小数）")
    pay_trade_no = serializers.CharField(
        max_length=40, required=False, allow_blank=True, default="", help_text="支付机构的交易流水号（在线支付时填写）"
    )
    pay_channel = serializers.ChoiceField(
        choices=PayChannel.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="支付渠道：alipay支付宝，wepay微信",
    )


class CancelIn(ReusedFields, serializers.Serializer):
    reason = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", help_text="退号原因（转告医院，可不填）"
    )


class CardCheckIn(serializers.Serializer):
    hospital_no = serializers.CharField(max_length=36)
    card_no = serializers.CharField(max_length=100)
    card_type = serializers.CharField(max_length=2, required=False, allow_blank=True, default="01")
    id_card = serializers.CharField(max_length=30)
    name = serializers.CharField(max_length=100)


class CardsIn(serializers.Serializer):
    hospital_no = serializers.CharField(max_length=36)
    id_card = serializers.CharField(max_length=30)
    name = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    address = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    card_type = serializers.CharField(
        max_length=2, required=False, allow_blank=True, default="01", help_text="01身份证建档，02健康卡"
    )
    health_card_num = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")


# -- out --------------------------------------------------------------------------------------------


class HospitalOut(serializers.ModelSerializer):
    level = serializers.IntegerField(read_only=True, help_text="医院级别：3三级，2二级，1一级，0未知")

    class Meta:
        model = Hospital
        fields = ["hospital_no", "name", "short_name", "level", "degree_name", "address", "phone"]

    # What a list page loads, as `.values()` rows (as ScheduleOut: no model objects, no DRF field walk).
    COLUMNS = ("hospital_no", "name", "short_name", "degree_code", "degree_name", "address", "phone")

    def to_representation(self, instance: Hospital | dict) -> dict:
        row = instance if isinstance(instance, dict) else {c: getattr(instance, c) for c in self.COLUMNS}
        return {
            "hospital_no": row["hospital_no"],
            "name": row["name"],
            "short_name": row["short_name"],
            "level": degree_level(row["degree_code"], row["degree_name"]),
            "degree_name": row["degree_name"],
            "address": row["address"],
            "phone": row["phone"],
        }


class DepartmentOut(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["department_id", "name", "name_abbr", "parent_department_id", "location", "is_outpatient"]

    COLUMNS = ("id", "department_id", "name", "name_abbr", "parent_department_id", "location", "is_outpatient")

    def to_representation(self, instance: Department | dict) -> dict:
        row = instance if isinstance(instance, dict) else {c: getattr(instance, c) for c in self.COLUMNS}
        return {name: row[name] for name in self.Meta.fields}


class DoctorOut(serializers.ModelSerializer):
    hospital_no = serializers.CharField(source="hospital.hospital_no", read_only=True)
    department_id = serializers.CharField(source="department_code", read_only=True)
    department_name = serializers.SerializerMethodField()

    class Meta:
        model = Doctor
        fields = [
            "hospital_no", "doctor_id", "name", "name_abbr", "department_id", "department_name", "title",
            "is_expert", "skill",
        ]  # fmt: skip

    COLUMNS = (
        "id", "hospital__hospital_no", "doctor_id", "name", "name_abbr", "department_code", "department__name",
        "title", "is_expert", "skill",
    )  # fmt: skip

    def get_department_name(self, obj: Doctor) -> str:
        return obj.department.name if obj.department_id else ""

    def to_representation(self, instance: Doctor | dict) -> dict:
        if not isinstance(instance, dict):
            return super().to_representation(instance)
        return {
            "hospital_no": instance["hospital__hospital_no"],
            "doctor_id": instance["doctor_id"],
            "name": instance["name"],
            "name_abbr": instance["name_abbr"],
            "department_id": instance["department_code"],
            "department_name": instance["department__name"] or "",
            "title": instance["title"],
            "is_expert": bool(instance["is_expert"]),
            "skill": instance["skill"],
        }


class ScheduleOut(serializers.ModelSerializer):
    hospital_no = serializers.CharField(source="hospital.hospital_no", read_only=True)
    department_id = serializers.CharField(source="department_code", read_only=True)
    department_name = serializers.CharField(source="department.name", read_only=True)
    doctor_id = serializers.CharField(source="doctor_code", read_only=True)
    doctor_name = serializers.CharField(source="doctor.name", read_only=True)
    time_label = serializers.CharField(source="get_time_code_display", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = Schedule
        fields = [
            "id", "work_id", "hospital_no", "department_id", "department_name", "doctor_id", "doctor_name",
            "work_date", "time_code", "time_label", "start_time", "stop_time", "registration_type_name", "price",
            "remaining", "total", "status", "status_label", "stop_reason",
        ]  # fmt: skip

    # The columns to_representation reads: a browse page loads only these, as `.values()` rows (no
    # descriptions, images, audit times of the hospital, department and doctor rows).
    COLUMNS = (
        "id", "work_id", "hospital__hospital_no", "department_code", "department__name", "doctor_code",
        "doctor__name", "work_date", "time_code", "start_time", "stop_time", "registration_type_name", "price",
        "remaining", "total", "status", "stop_reason",
    )  # fmt: skip

    def to_representation(self, instance: Schedule | dict) -> dict:
        # A browse page renders 50 of these from `.values(*COLUMNS)` rows (no model objects: four per
        # row were a quarter of the request), one dict straight from the columns instead of DRF's
        # per-field get_attribute, which ran inspect.signature on both get_*_display per row (another
        # quarter; bench/bench_browse.py). A single schedule may come as an instance. Same output as
        # the declared fields, which stay for the OpenAPI schema.
        if isinstance(instance, dict):
            row = instance
        else:
            row = {column: _follow(instance, column) for column in self.COLUMNS}
        return {
            "id": row["id"],
            "work_id": row["work_id"],
            "hospital_no": row["hospital__hospital_no"],
            "department_id": row["department_code"],
            "department_name": row["department__name"],
            "doctor_id": row["doctor_code"],
            "doctor_name": row["doctor__name"],
            "work_date": row["work_date"].isoformat(),
            "time_code": row["time_code"],
            "time_label": str(_TIME_LABELS.get(row["time_code"], row["time_code"])),
            "start_time": row["start_time"].isoformat(),
            "stop_time": row["stop_time"].isoformat(),
            "registration_type_name": row["registration_type_name"],
            "price": str(row["price"].quantize(_CENTS)),
            "remaining": row["remaining"],
            "total": row["total"],
            "status": row["status"],
            "status_label": str(_STATUS_LABELS.get(row["status"], row["status"])),
            "stop_reason": row["stop_reason"],
        }


def _follow(instance: object, path: str) -> object:
    for name in path.split("__"):
        instance = getattr(instance, name)
    return instance


_TIME_LABELS = dict(Schedule.TimeCode.choices)
_STATUS_LABELS = dict(Schedule.Status.choices)
_CENTS = Decimal("0.01")


class SlotOut(serializers.Serializer):
    num_source_id = serializers.CharField()
    number = serializers.IntegerField()
    start = serializers.CharField()
    end = serializers.CharField()
    see_time = serializers.CharField()
    status = serializers.CharField(help_text="1可挂 2失效 3已挂 4已锁号")
    status_label = serializers.CharField()
    available = serializers.BooleanField()


class QueueOut(serializers.Serializer):
    seen = serializers.IntegerField(allow_null=True, help_text="已就诊数")
    remaining = serializers.IntegerField(allow_null=True, help_text="剩余号源")
    waiting = serializers.IntegerField(allow_null=True, help_text="等待就诊人数")
    current_number = serializers.CharField(allow_null=True, help_text="当前就诊序号")
    registered = serializers.IntegerField(allow_null=True)
    not_checked_in = serializers.IntegerField(allow_null=True)
    checked_in_waiting = serializers.IntegerField(allow_null=True)


class CardCheckOut(serializers.Serializer):
    valid = serializers.BooleanField()
    reason = serializers.CharField()
    name = serializers.CharField()
    phone = serializers.SerializerMethodField(help_text="医院登记的电话（脱敏）")

    def get_phone(self, obj: dict) -> str:
        return mask(obj.get("phone"), "phone")


class CardOut(serializers.Serializer):
    card_no = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.CharField()
    last_used_at = serializers.CharField()
    phone = serializers.SerializerMethodField(help_text="医院登记的电话（脱敏）")

    def get_phone(self, obj: dict) -> str:
        return mask(obj.get("phone"), "phone")


class PatientOut(serializers.Serializer):
    """患者信息：本渠道预约时提交的内容，原样返回（仅下单的渠道可见）。"""

    name = serializers.CharField(source="patient_name", help_text="患者姓名")
    id_card = serializers.CharField(help_text="身份证号")
    phone = serializers.CharField(help_text="手机号码")
    card_no = serializers.CharField(help_text="诊疗卡号（未提交时为空）")
    card_type = serializers.CharField(help_text="卡类型：01院内就诊卡，02居民健康卡（未提交时为空）")
    sex = serializers.CharField(help_text="性别编码：1男，2女（未提交时为空）")
    age = serializers.CharField(help_text="年龄")
    address = serializers.CharField(help_text="地址")


class TransitionOut(serializers.Serializer):
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    mark = serializers.CharField()
    actor = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class OrderOut(serializers.ModelSerializer):
    hospital_no = serializers.CharField(source="hospital.hospital_no", read_only=True)
    hospital_name = serializers.CharField(source="hospital.name", read_only=True)
    work_id = serializers.CharField(source="schedule.work_id", read_only=True)
    work_date = serializers.DateField(source="schedule.work_date", read_only=True)
    department_name = serializers.CharField(source="schedule.department.name", read_only=True)
    doctor_name = serializers.CharField(source="schedule.doctor.name", read_only=True)
    status = serializers.CharField(
        read_only=True,
        help_text="locking锁号中，1已预约，2已支付，3已退号，4已履约，6已爽约，failed锁号失败，expired超时未支付",
    )
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    mark_label = serializers.SerializerMethodField()
    patient = PatientOut(source="*", read_only=True)
    refund_amount = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "order_no", "status", "status_label", "mark", "mark_label", "mark_reason", "hospital_no",
            "hospital_name", "work_id", "work_date", "department_name", "doctor_name", "num_source_id",
            "workflow_id", "serial_number", "worktime", "fee", "lock_expires_at", "pay_type", "pay_trade_no",
            "pay_channel", "paid_at", "cancelled_by", "cancelled_at", "refund_amount", "failure_reason",
            "created_at", "patient",
        ]  # fmt: skip
        extra_kwargs = {
            "order_no": {"help_text": "平台订单号（之后的支付、退号、查询都用它）"},
            "mark": {"help_text": "标记：stopped医院停诊，changed医院换诊，refused医院拒绝支付通知，空为无"},
            "mark_reason": {"help_text": "停诊或换诊的原因"},
            "num_source_id": {"help_text": "号源ID（分时段预约时）"},
            "workflow_id": {"help_text": "医院的挂号交易流水号"},
            "serial_number": {"help_text": "挂号序号（就诊序号）"},
            "worktime": {"help_text": "就诊时段，如 08:00-08:30"},
            "fee": {"help_text": '挂号费（元，两位小数的字符串，如 "12.50"）'},
            "lock_expires_at": {"help_text": "锁号到期时间：在线支付须在此之前完成（默认锁号15分钟）"},
            "pay_type": {"help_text": "支付类型：3现场支付，4在线支付（未支付时为空）"},
            "pay_trade_no": {"help_text": "支付交易流水号"},
            "pay_channel": {"help_text": "支付渠道：alipay支付宝，wepay微信"},
            "paid_at": {"help_text": "支付时间"},
            "cancelled_by": {"help_text": "退号方：channel渠道，hospital医院，stop停诊，staff平台工作人员"},
            "cancelled_at": {"help_text": "退号时间"},
            "failure_reason": {"help_text": "锁号失败的原因（status为failed时）"},
            "created_at": {"help_text": "下单时间"},
        }

    def get_mark_label(self, obj: Order) -> str:
        """停诊或换诊标记的中文名称"""
        return obj.get_mark_display() if obj.mark else ""

    def get_refund_amount(self, obj: Order) -> str | None:
        """退款金额（元）：仅已退号且已退款的订单有值"""
        if obj.status != Order.CANCELLED:
            return None  # only a cancelled order is ever refunded
        refund = next((e for e in obj.ledger.all() if e.kind == "refund"), None)
        return f"{refund.amount:.2f}" if refund else None


class OrderDetailOut(OrderOut):
    transitions = TransitionOut(many=True, read_only=True)

    class Meta(OrderOut.Meta):
        fields = [*OrderOut.Meta.fields, "transitions"]


class ErrorOut(serializers.Serializer):
    """错误应答：按 code 编程，message 可直接展示给用户。全部 code 见文档“错误”一节。"""

    code = serializers.CharField(
        help_text="稳定的错误代码，如 schedule_full、hospital_unavailable（全部取值见文档“错误”一节）"
    )
    message = serializers.CharField(help_text="中文错误说明")
    errors = serializers.DictField(required=False, help_text="按字段列出的错误（参数错误时）")


class WaitlistIn(serializers.Serializer):
    patient = PatientIn(help_text="患者信息")


class WaitlistOut(serializers.Serializer):
    id = serializers.IntegerField()
    schedule_id = serializers.IntegerField()
    status = serializers.CharField(
        help_text="waiting候补中、offered已锁号待支付、booked已预约、expired超时未支付、failed锁号未成功、cancelled已取消、closed已截止"
    )
    status_label = serializers.CharField(source="get_status_display")
    position = serializers.IntegerField(allow_null=True, required=False, help_text="候补顺位（1为下一位）")
    order_no = serializers.CharField(source="order.order_no", allow_null=True, default=None)
    lock_expires_at = serializers.DateTimeField(source="order.lock_expires_at", allow_null=True, default=None)
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class OrderSearchIn(serializers.Serializer):
    id_card = serializers.CharField(max_length=30, help_text="患者身份证号")
