"""The specification's code lists, each stated once with its Chinese label.

The message catalog's enumerations and the models' `choices` both refer to these classes, so a
code or a label is changed in one place. Labels follow the specification's wording
(支付渠道 alipay 支付宝、wepay 微信; 卡类型 01 院内就诊卡、02 居民健康卡; …).
"""

from __future__ import annotations

from django.db import models


class YesNo(models.TextChoices):
    """0/1 flags such as IsMultiTimes (是否清空旧的排班记录) and IsZJ (专家标示)."""

    NO = "0", "否"
    YES = "1", "是"


class WorkTimeCode(models.IntegerChoices):
    """出诊时段 (WorkTimeCode); the messages carry it as a digit."""

    ALL_DAY = 0, "全天"
    MORNING = 1, "上午"
    NOON = 2, "中午"
    AFTERNOON = 3, "下午"
    EVENING = 4, "晚上"


class SexCode(models.TextChoices):
    """性别编码 (GB/T 2261.1)."""

    UNKNOWN = "0", "未知的性别"
    MALE = "1", "男性"
    FEMALE = "2", "女性"
    FEMALE_TO_MALE = "5", "女性改（变）为男性"
    MALE_TO_FEMALE = "6", "男性改（变）为女性"
    UNSTATED = "9", "未说明的性别"


class CardType(models.TextChoices):
    """卡类型 / 就诊卡类型 of the booking messages."""

    HOSPITAL_CARD = "01", "院内就诊卡"
    HEALTH_CARD = "02", "居民健康卡"


class ChannelCode(models.TextChoices):
    """预约渠道 / 发起渠道 (channel, since 2.4)."""

    WECHAT = "JKMZWX", "微信"
    APP = "JKMYAPP", "APP"


class PayType(models.TextChoices):
    """支付类型 (PayType)."""

    ONSITE = "3", "现场支付"
    ONLINE = "4", "在线支付"


class PayChannel(models.TextChoices):
    """支付渠道 (payChannel, since 2.1): also the payment providers whose bills are reconciled."""

    ALIPAY = "alipay", "支付宝"
    WEPAY = "wepay", "微信"

    @property
    def provider(self) -> str:
        """The provider that issues the channel's bills, as finance staff name it (微信支付 for 微信)."""
        return "微信支付" if self.value == "wepay" else self.label


class PromiseType(models.TextChoices):
    """履约状态 (workType of getPromiseNotice)."""

    CANCELLED = "3", "退号"
    VISITED = "4", "履约"
    NO_SHOW = "6", "爽约"
    OTHER = "9", "其他"


class WorkFlowStatus(models.TextChoices):
    """订单状态 (WorkFlowStatus) as hospitals report it."""

    BOOKED = "1", "已预约"
    PAID = "2", "已支付"
    CANCELLED = "3", "已退号"
    VISITED = "4", "已履约"
    NO_SHOW = "6", "已爽约"


class SlotStatus(models.TextChoices):
    """号源状态 (Status of a numbered slot)."""

    FREE = "1", "可挂"
    INVALID = "2", "失效"
    TAKEN = "3", "已挂"
    LOCKED = "4", "已锁号"


class LedgerType(models.TextChoices):
    """类型 of a ReconciliationInfo record: what the money was for."""

    REGISTRATION = "1", "预约挂号"
    CLINIC = "2", "诊间支付"


class OutpatientType(models.TextChoices):
    """门诊类型 of a department."""

    GENERAL = "1", "普通门诊"
    EMERGENCY = "2", "急诊"


class ReferralCardType(models.TextChoices):
    """就诊卡类型 (jzklx) of the referral messages."""

    SOCIAL_SECURITY = "0", "社保卡"
    SELF_PAY = "2", "通用就诊卡（自费卡）"
    ID_CARD = "8", "身份证"
    OTHER = "9", "其他卡"


class PatientType(models.TextChoices):
    """病人类型 (brlx)."""

    GENERAL = "0", "普通病人"
    CONTRACTED = "1", "签约患者"


class Urgency(models.TextChoices):
    """紧急程度 (jjcd)."""

    URGENT = "1", "紧急"
    NORMAL = "2", "一般"
    NOT_URGENT = "3", "不紧急"


class CareType(models.TextChoices):
    """门诊住院标志 (mzzycxbz); the referral query sends it in upper case (`CARE_TYPES_UPPER`)."""

    OUTPATIENT = "mz", "门诊"
    INPATIENT = "zy", "住院"


CARE_TYPES_UPPER = tuple((code.upper(), label) for code, label in CareType.choices)
