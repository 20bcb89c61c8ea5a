"""The booking rules' admin form: one labelled field per rule, no JSON typed by hand.

The stored format stays what booking/rules.py reads: `ban_tiers` a list of
{"no_shows", "within_days", "ban_days"}, `channel_quotas` {channel code: percent}. An empty field
of a hospital's row inherits the region's rule (沿用区域规则); an empty field of the region's row
switches the rule off (不启用), which is why the same blank reads differently in the two scopes.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms

from booking.models import BookingRules, Channel
from booking.rules import parse_holidays

INHERIT = "inherit"
OFF = "off"
SET = "set"

INHERIT_LABEL = "沿用区域规则"
OFF_LABEL = "不启用"
TIER_ROWS = 3  # blank rows offered; a stored list longer than that gets one more than it has

# The plain fields of the model, in the order of the page; the two JSON fields are edited through
# the rows below and written back in clean().
MODEL_FIELDS = (
    "hospital", "release_days", "release_time", "booking_cutoff_minutes", "limit_per_day", "limit_per_week",
    "limit_per_month", "forbid_same_doctor_session", "forbid_overlap", "cancel_deadline_time",
    "cancel_deadline_working_days", "holidays", "waitlist_close_minutes", "reminder_time", "quota_release_minutes",
)  # fmt: skip
BOOLEAN_FIELDS = ("forbid_same_doctor_session", "forbid_overlap")
TIER_PARTS = (("no_shows", "爽约次数"), ("within_days", "统计天数（天内）"), ("ban_days", "禁约天数"))


def tier_field(row: int, part: str) -> str:
    return f"ban_{row}_{part}"


def quota_field(code: str) -> str:
    return f"quota_{code}"


def quota_channels(obj: BookingRules | None = None) -> list[tuple[str, str]]:
    """(code, label) of every channel that may hold a quota: the channels on record, and any code the
    row stores for a channel since removed (so saving the form does not drop it unseen)."""
    channels = [(c.code, str(c)) for c in Channel.objects.order_by("code")]
    known = {code for code, _ in channels}
    stored = (obj.channel_quotas or {}) if obj is not None else {}
    return channels + [(code, f"渠道{code}（已停用或不存在）") for code in sorted(stored) if code not in known]


def tier_rows(obj: BookingRules | None = None) -> int:
    stored = (obj.ban_tiers or []) if obj is not None else []
    return max(TIER_ROWS, len(stored) + 1) if stored else TIER_ROWS


class BookingRulesForm(forms.ModelForm):
    """Subclassed per page by `rules_form_class()` with the no-show rows and the channels' quota
    fields (the channels are rows in the database, not known when this module loads)."""

    tier_count = TIER_ROWS
    channels: tuple[tuple[str, str], ...] = ()

    ban_mode = forms.ChoiceField(label="爽约处罚", choices=())
    quota_mode = forms.ChoiceField(label="渠道号源配额（%）", choices=())

    class Meta:
        model = BookingRules
        fields = MODEL_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        # The region's own row: blanks switch a rule off. Any other (a hospital's, or a new row
        # while the region's exists) inherits.
        self.for_region = instance.pk is not None and instance.hospital_id is None
        if instance.pk is None and not BookingRules.objects.filter(hospital__isnull=True).exists():
            self.for_region = None  # a new row that may still become the region's: say both
        blank = {True: OFF_LABEL, False: INHERIT_LABEL, None: f"{INHERIT_LABEL}（全区域规则中为{OFF_LABEL}）"}[
            self.for_region
        ]
        if "hospital" in self.fields:
            self.fields["hospital"].empty_label = "（全区域规则）"
        for name, field in self.fields.items():
            if name in BOOLEAN_FIELDS or name == "hospital" or isinstance(field, forms.ChoiceField):
                continue
            if isinstance(field.widget, forms.TextInput | forms.NumberInput):
                field.widget.attrs.setdefault("placeholder", blank)
        for name in BOOLEAN_FIELDS:
            model_field = BookingRules._meta.get_field(name)
            self.fields[name] = forms.TypedChoiceField(
                label=model_field.verbose_name,
                help_text=model_field.help_text,
                required=False,
                choices=[("", blank), ("true", "是"), ("false", "否")],
                coerce=lambda value: value == "true",
                empty_value=None,
            )
            self.initial[name] = _choice(getattr(instance, name))  # model_to_dict's True would match no choice
        self.fields["holidays"].widget = forms.Textarea(attrs={"rows": 3, "cols": 20, "placeholder": "2026-10-01"})
        self._setup_modes(blank)

    def _setup_modes(self, blank: str) -> None:
        inherit = [] if self.for_region else [(INHERIT, blank)]
        self.fields["ban_mode"].choices = [*inherit, (OFF, "不处罚爽约"), (SET, "按下列档位处罚")]
        self.fields[
            "ban_mode"
        ].help_text = "统计期内爽约达到次数即暂停预约相应天数；同时满足几档时取最高档。例如：90天内爽约3次，禁约90天。"
        self.fields["quota_mode"].choices = [*inherit, (OFF, "不分配配额"), (SET, "按下列比例分配")]
        self.fields[
            "quota_mode"
        ].help_text = (
            "按渠道分配平台可预约号源（号源总数减医院保留号源）的百分比；未填写比例的渠道（如转诊）不受配额限制。"
        )
        tiers = self.instance.ban_tiers
        quotas = self.instance.channel_quotas
        default = OFF if self.for_region else INHERIT
        self.fields["ban_mode"].initial = default if tiers is None else (SET if tiers else OFF)
        self.fields["quota_mode"].initial = default if quotas is None else (SET if quotas else OFF)
        for row, tier in enumerate(tiers or [], start=1):
            for part, _ in TIER_PARTS:
                if row <= self.tier_count and isinstance(tier, dict):
                    self.fields[tier_field(row, part)].initial = tier.get(part)
        for code, _ in self.channels:
            if quotas and code in quotas:
                self.fields[quota_field(code)].initial = quotas[code]

    def clean_holidays(self):
        value = self.cleaned_data.get("holidays") or ""
        try:
            parse_holidays(value)
        except ValueError as exc:
            raise forms.ValidationError("节假日应每行一个日期，格式如2026-10-01") from exc
        return value

    def clean(self):
        data = super().clean()
        hospital = data.get("hospital")
        if not hospital:
            others = BookingRules.objects.filter(hospital__isnull=True).exclude(pk=self.instance.pk)
            if others.exists():
                self.add_error("hospital", "全区域规则已存在：请选择医院，或修改现有的全区域规则")
        if data.get("release_time") is not None and data.get("release_days") is None and not hospital:
            self.add_error("release_days", "设置放号时间时需同时设置提前放号天数")
        self.instance.ban_tiers = self._clean_tiers(data, hospital)
        self.instance.channel_quotas = self._clean_quotas(data, hospital)
        return data

    def _mode(self, data, name: str, hospital) -> str:
        mode = data.get(name) or OFF
        # "Inherit" on the region's own row means the same as off: there is nothing to inherit.
        return OFF if mode == INHERIT and not hospital else mode

    def _clean_tiers(self, data, hospital) -> list[dict] | None:
        tiers, filled = [], False
        for row in range(1, self.tier_count + 1):
            values = {part: data.get(tier_field(row, part)) for part, _ in TIER_PARTS}
            if all(v is None for v in values.values()):
                continue
            filled = True
            if any(v is None for v in values.values()):
                self.add_error(tier_field(row, "no_shows"), f"第{row}档需同时填写爽约次数、统计天数和禁约天数")
                continue
            tiers.append(values)
        mode = self._mode(data, "ban_mode", hospital)
        if mode == SET and not tiers and not filled:
            self.add_error("ban_mode", "选择“按下列档位处罚”时请至少填写一档")
        elif mode != SET and filled:
            self.add_error("ban_mode", "已填写处罚档位：请选择“按下列档位处罚”，或清空各档")
        if mode == INHERIT:
            return None
        return sorted(tiers, key=lambda t: (t["no_shows"], t["ban_days"])) if mode == SET else []

    def _clean_quotas(self, data, hospital) -> dict | None:
        quotas = {}
        for code, _ in self.channels:
            value = data.get(quota_field(code))
            if value is not None:
                quotas[code] = int(value) if value == value.to_integral_value() else float(value)
        mode = self._mode(data, "quota_mode", hospital)
        if mode == SET and not quotas:
            self.add_error("quota_mode", "选择“按下列比例分配”时请至少填写一个渠道的比例")
        elif mode != SET and quotas:
            self.add_error("quota_mode", "已填写渠道比例：请选择“按下列比例分配”，或清空各渠道比例")
        if mode == INHERIT:
            return None
        return quotas if mode == SET else {}


def _choice(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def rules_form_class(obj: BookingRules | None = None) -> type[BookingRulesForm]:
    """The form for one page: `tier_rows(obj)` rows of 爽约次数/统计天数/禁约天数 and one percentage
    per channel of `quota_channels(obj)`."""
    count = tier_rows(obj)
    channels = tuple(quota_channels(obj))
    attrs: dict = {"tier_count": count, "channels": channels, "__module__": __name__}
    for row in range(1, count + 1):
        for part, label in TIER_PARTS:
            attrs[tier_field(row, part)] = forms.IntegerField(
                label=f"第{row}档：{label}" if part == "no_shows" else label,
                required=False,
                min_value=1,
                max_value=3650,
                error_messages={"min_value": "应为正整数", "max_value": "不能超过3650", "invalid": "应为整数"},
            )
    for code, label in channels:
        attrs[quota_field(code)] = forms.DecimalField(
            label=label,
            required=False,
            min_value=Decimal(0),
            max_value=Decimal(100),
            max_digits=5,
            decimal_places=2,
            help_text="百分比，0到100",
            error_messages={
                "min_value": "比例应在0到100之间",
                "max_value": "比例应在0到100之间",
                "invalid": "应为数字",
            },
        )
    return type("BookingRulesPageForm", (BookingRulesForm,), attrs)


def rules_fieldsets(form_class: type[BookingRulesForm]) -> tuple:
    """The page's sections, each rule on its line; a no-show tier's three numbers on one line."""
    tiers = [tuple(tier_field(row, part) for part, _ in TIER_PARTS) for row in range(1, form_class.tier_count + 1)]
    quotas = [quota_field(code) for code, _ in form_class.channels]
    return (
        (None, {"fields": ("hospital",)}),
        ("放号与预约时间", {"fields": ("release_days", "release_time", "booking_cutoff_minutes")}),
        (
            "患者预约限制",
            {
                "fields": (
                    "limit_per_day",
                    "limit_per_week",
                    "limit_per_month",
                    "forbid_same_doctor_session",
                    "forbid_overlap",
                )  # fmt: skip
            },
        ),
        ("退号截止", {"fields": ("cancel_deadline_time", "cancel_deadline_working_days", "holidays")}),
        ("爽约处罚", {"fields": ("ban_mode", *tiers)}),
        ("候补与提醒", {"fields": ("waitlist_close_minutes", "reminder_time")}),
        ("渠道号源配额", {"fields": ("quota_mode", *quotas, "quota_release_minutes")}),
    )
