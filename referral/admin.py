"""The regional staff's view of referrals: lists with filters and history, the overdue list,
reminders, and the statistics (table, bars, CSV). Personal data is masked; revealing it needs
`regional.reveal_personal_data` and is recorded."""

from __future__ import annotations

import csv
import datetime as dt

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from referral import notify, selectors, services
from referral.models import (
    PERSONAL_FIELDS,
    OverdueReferral,
    Referral,
    ReferralBooking,
    ReferralNotification,
    ReferralTransition,
)
from regional.admin import PersonalDataAdminMixin
from regional.admin_display import shortened
from regional.errors import DomainError
from regional.models import Hospital
from regional.pii import lookup_hash, mask
from regional.spreadsheet import csv_cell


class TransitionInline(admin.TabularInline):
    model = ReferralTransition
    extra = 0
    can_delete = False
    fields = ("at", "from_status", "to_status", "actor_label", "reason")
    readonly_fields = fields
    verbose_name_plural = "处理记录"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class BookingInline(admin.StackedInline):
    model = ReferralBooking
    extra = 0
    can_delete = False
    readonly_fields = (
        "order_no", "slot_id", "status", "date", "department_code", "department_name", "doctor_code", "doctor_name",
        "start_time", "end_time", "schedule_ref",
    )  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


class OverdueFilter(admin.SimpleListFilter):
    title = "超时"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "超时未处理"), ("flagged", "已发超时提醒")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=selectors.overdue_referrals().values("pk"))
        if self.value() == "flagged":
            return queryset.filter(overdue_flagged_at__isnull=False)
        return queryset


class BackFilter(admin.SimpleListFilter):
    title = "回转"
    parameter_name = "back"

    def lookups(self, request, model_admin):
        return [("yes", "回转单"), ("no", "非回转单")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(original__isnull=False)
        if self.value() == "no":
            return queryset.filter(original__isnull=True)
        return queryset


@admin.register(Referral)
class ReferralAdmin(PersonalDataAdminMixin, admin.ModelAdmin):
    personal_fields = PERSONAL_FIELDS
    change_list_template = "referral/admin/change_list.html"
    # What the referral desk looks for first (state, patient, urgency, time), then the route; fits 1366 px.
    list_display = (
        "code",
        "status",
        "patient_masked",
        "urgency",
        "submitted_at",
        "overdue_mark",
        "route",
        "kind",
    )
    list_filter = (
        "status",
        "direction",
        BackFilter,
        "urgency",
        "care_type",
        "source",
        OverdueFilter,
        ("sending_hospital", admin.RelatedOnlyFieldListFilter),
        ("receiving_hospital", admin.RelatedOnlyFieldListFilter),
        "submitted_at",
        "created_at",
    )
    date_hierarchy = "created_at"
    search_fields = ("order_id",)
    search_help_text = "按转诊编码，或完整的身份证号、就诊卡号、患者姓名查找"
    list_select_related = ("sending_hospital", "receiving_hospital")
    show_full_result_count = False
    list_per_page = 50
    inlines = [BookingInline, TransitionInline]
    actions = ["cancel_referrals"]
    fieldsets = (
        (
            "转出",
            {
                "fields": (
                    ("sending_hospital", "order_id", "source"),
                    ("sending_department_name", "sending_doctor_name", "sending_doctor_code"),
                )
            },
        ),
        (
            "转入",
            {"fields": (("receiving_hospital", "receiving_department_name", "receiving_department_code"),)},
        ),
        (
            "患者（已脱敏）",
            {
                "fields": (
                    ("masked_patient_name", "birth_date", "patient_type"),
                    ("masked_id_no", "masked_card_no", "card_type"),
                    ("masked_phone", "masked_address"),
                )
            },
        ),
        (
            "病情（已脱敏）",
            {
                "fields": (
                    "masked_diagnosis",
                    "masked_history_summary",
                    "masked_past_history",
                    "masked_treatment",
                    "masked_notes",
                )
            },
        ),
        (
            "转诊",
            {
                "fields": (
                    ("care_type", "urgency", "direction", "status"),
                    "purpose",
                    ("original", "booking_order"),
                    ("accept_note", "reject_reason", "cancel_reason"),
                    "page_link",
                )
            },
        ),
        (
            "时间",
            {
                "fields": (
                    ("created_at", "submitted_at", "accepted_at", "rejected_at"),
                    ("arrived_at", "completed_at", "cancelled_at", "overdue_flagged_at"),
                )
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        # Everything is read-only here: changes go through the services (actions, the pages).
        names = [f.name for f in Referral._meta.fields]
        return [*names, *(f"masked_{f}" for f in PERSONAL_FIELDS), "page_link"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # referrals are medical records: cancel, never delete

    def get_search_results(self, request, queryset, search_term):
        # Personal data is encrypted: a full ID number, card number or name matches its lookup hash.
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            digest = lookup_hash(term)
            found |= queryset.filter(Q(id_no_hash=digest) | Q(card_no_hash=digest) | Q(patient_name_hash=digest))
        return found, may_have_duplicates

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "statistics/",
                self.admin_site.admin_view(self.statistics_view),
                name="{}_{}_statistics".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description="转诊编码", ordering="order_id")
    def code(self, obj: Referral) -> str:
        return shortened(obj.order_id, 14)

    @admin.display(description="转出 → 转入")
    def route(self, obj: Referral) -> str:
        return format_html(
            "{} → {}",
            _hospital_short(obj.sending_hospital, obj.sending_hospital_name),
            _hospital_short(obj.receiving_hospital),
        )

    @admin.display(description="类型")
    def kind(self, obj: Referral) -> str:
        return f"{obj.get_care_type_display()}·{obj.get_direction_display()}"

    @admin.display(description="患者")
    def patient_masked(self, obj: Referral) -> str:
        return mask(obj.patient_name, "name")

    @admin.display(description="超时", boolean=True)
    def overdue_mark(self, obj: Referral) -> bool | None:
        if obj.status != Referral.Status.SUBMITTED or obj.submitted_at is None:
            return None
        return obj.submitted_at < timezone.now() - selectors.pending_limit()

    @admin.display(description="转诊单页面")
    def page_link(self, obj: Referral) -> str:
        if not obj.pk:
            return ""
        return format_html(
            '<a href="{}?id={}" target="_blank" rel="noopener">转入医院通知页</a> · '
            '<a href="{}?id={}" target="_blank" rel="noopener">申请单/转诊单</a>',
            reverse("referral:znts"),
            obj.pk,
            reverse("referral:his"),
            obj.pk,
        )

    @admin.action(description="取消所选转诊（仅限未接收的）", permissions=["change"])
    def cancel_referrals(self, request, queryset):
        actor = services.Actor.staff(request.user)
        done = 0
        for referral in queryset:
            try:
                services.referral_cancel(referral=referral, actor=actor, reason="平台工作人员在管理后台取消")
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{referral.order_id}：{exc.message}", messages.WARNING)
        if done:
            self.message_user(request, f"已取消{done}张转诊单。", messages.SUCCESS)

    # -- statistics ------------------------------------------------------------------------------

    def statistics_view(self, request: HttpRequest) -> HttpResponse:
        """Counts and median times per hospital pair and month; `?format=csv` downloads the table."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        default_from = (today.replace(day=1) - dt.timedelta(days=330)).replace(day=1)
        errors = []
        date_from = _date(request.GET.get("from"), default_from, errors, "开始日期")
        date_to = _date(request.GET.get("to"), today, errors, "结束日期")
        if date_to < date_from:
            errors.append("结束日期不能早于开始日期")
            date_from, date_to = default_from, today
        hospital = None
        if request.GET.get("hospital"):
            hospital = Hospital.objects.filter(hospital_no=request.GET["hospital"]).first()
        rows = selectors.referral_statistics(date_from=date_from, date_to=date_to, hospital=hospital)
        if request.GET.get("format") == "csv":
            return _statistics_csv(rows, date_from, date_to)
        query = request.GET.copy()
        query["format"] = "csv"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "转诊统计",
            "rows": rows,
            "months": selectors.monthly_totals(rows),
            "date_from": date_from,
            "date_to": date_to,
            "hospital": hospital,
            "hospitals": Hospital.objects.filter(is_deleted=False).order_by("hospital_no"),
            "errors": errors,
            "csv_query": query.urlencode(),
            "totals": {
                "sent": sum(r.sent for r in rows),
                "accepted": sum(r.accepted for r in rows),
                "arrived": sum(r.arrived for r in rows),
            },
        }
        return render(request, "referral/admin/statistics.html", context)


def _date(raw: str | None, default: dt.date, errors: list[str], label: str) -> dt.date:
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label}格式应为yyyy-mm-dd")
        return default


def _statistics_csv(rows, date_from: dt.date, date_to: dt.date) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="referral-statistics-{date_from:%Y%m%d}-{date_to:%Y%m%d}.csv"'
    )
    response.write("\ufeff")  # Excel opens UTF-8 Chinese correctly only with a BOM
    writer = csv.writer(response)
    writer.writerow(
        [
            "月份", "转出医院", "转入医院", "转诊数", "已接收", "已拒绝", "已到院", "已完成", "已取消",
            "提交→接收中位时长(小时)", "接收→到院中位时长(小时)", "提交→到院中位时长(小时)",
        ]
    )  # fmt: skip
    for r in rows:
        writer.writerow(
            [
                r.month.strftime("%Y-%m"), csv_cell(r.sending), csv_cell(r.receiving), r.sent, r.accepted, r.rejected,
                r.arrived, r.completed, r.cancelled, csv_cell(r.median_accept_hours), csv_cell(r.median_arrive_hours),
                csv_cell(r.median_total_hours),
            ]
        )  # fmt: skip
    return response


def _hospital_short(hospital: Hospital | None, fallback: str = "") -> str:
    """A hospital's name cut to fit a list column; its full name and code on hover."""
    if hospital is None:
        return fallback or "-"
    return format_html('<span title="{}（{}）">{}</span>', hospital.name, hospital.hospital_no, _cut(hospital.name, 8))


def _cut(text: str, keep: int) -> str:
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def _masked_display(field: str):
    label = Referral._meta.get_field(field).verbose_name

    @admin.display(description=label)
    def display(self, obj):
        return self.masked(obj, field)

    return display


for _field in PERSONAL_FIELDS:
    setattr(ReferralAdmin, f"masked_{_field}", _masked_display(_field))


@admin.register(OverdueReferral)
class OverdueReferralAdmin(ReferralAdmin):
    """Submitted referrals the receiving hospital has not acted on within REFERRAL_PENDING_HOURS."""

    change_list_template = None
    list_display = ("code", "urgency", "waited", "submitted_at", "route", "overdue_flagged_at")
    list_filter = ("urgency", ("receiving_hospital", admin.RelatedOnlyFieldListFilter), "overdue_flagged_at")
    date_hierarchy = None
    actions = ["scan_now", "cancel_referrals"]
    ordering = ("submitted_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=selectors.overdue_referrals().values("pk"))

    @admin.display(description="已等待", ordering="submitted_at")
    def waited(self, obj: Referral) -> str:
        hours = int((timezone.now() - obj.submitted_at).total_seconds() // 3600)
        return f"{hours // 24}天{hours % 24}小时" if hours >= 24 else f"{hours}小时"

    @admin.action(description="立即扫描并发送超时提醒", permissions=["view"])
    def scan_now(self, request, queryset):
        flagged = services.referral_overdue_scan()
        self.message_user(request, f"本次新标记{flagged}张超时转诊单并已发送提醒。", messages.SUCCESS)


@admin.register(ReferralNotification)
class ReferralNotificationAdmin(admin.ModelAdmin):
    list_display = (
        "status",
        "kind",
        "referral_code",
        "recipient",
        "created_at",
        "sent_at",
        "attempts",
        "short_message",
    )
    list_filter = ("status", "kind", "sent_at", "created_at")
    search_fields = ("recipient", "referral__order_id")
    list_select_related = ("referral",)
    show_full_result_count = False
    readonly_fields = [f.name for f in ReferralNotification._meta.fields]
    actions = ["deliver_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="转诊编码", ordering="referral__order_id")
    def referral_code(self, obj: ReferralNotification) -> str:
        return shortened(obj.referral.order_id, 14)

    @admin.display(description="内容")
    def short_message(self, obj: ReferralNotification) -> str:
        return shortened(obj.message, 24)

    @admin.action(description="立即重新发送未送达的提醒", permissions=["view"])
    def deliver_now(self, request, queryset):
        count = notify.notifications_retry(
            notification_ids=list(queryset.values_list("pk", flat=True)), user=request.user
        )
        self.message_user(request, f"已重新发送{count}条提醒。", messages.SUCCESS if count else messages.WARNING)
