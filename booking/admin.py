"""The regional staff's admin for schedules (the hospitals' data: browse, stop on a hospital's behalf)
and booking channels (their API tokens are issued by an action and shown once)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from booking import services
from booking.models import Channel, Schedule
from regional.errors import DomainError


class WorkDateFilter(admin.SimpleListFilter):
    title = "出诊日期"
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return [
            ("today", "今天"),
            ("tomorrow", "明天"),
            ("week", "未来7天"),
            ("future", "今天及以后"),
            ("past", "已过"),
        ]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        ranges = {
            "today": {"work_date": today},
            "tomorrow": {"work_date": today + dt.timedelta(days=1)},
            "week": {"work_date__gte": today, "work_date__lt": today + dt.timedelta(days=7)},
            "future": {"work_date__gte": today},
            "past": {"work_date__lt": today},
        }
        return queryset.filter(**ranges[self.value()]) if self.value() in ranges else queryset


class StopForm(forms.Form):
    reason = forms.CharField(label="停诊原因", max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules arrive from the hospitals (2.1–2.3) and are never edited here; staff may stop one
    on a hospital's behalf (a telephoned 停诊 while its interface is down), through the service."""

    list_display = (
        "work_id",
        "hospital",
        "department",
        "doctor",
        "work_date",
        "time_code",
        "session",
        "price",
        "slots",
        "booked_count",
        "status",
        "remark",
    )
    list_filter = ("status", WorkDateFilter, "time_code", "hospital")
    search_fields = ("=work_id", "doctor__name", "^doctor__name_abbr", "department__name")
    search_help_text = "按排班班次（完整）、医生姓名、医生拼音简写（开头）或科室名称搜索"
    list_select_related = ("hospital", "department", "doctor", "replaced_by")
    show_full_result_count = False
    ordering = ("-work_date", "start_time")
    actions = ["stop_selected"]
    fieldsets = (
        ("排班", {"fields": ("work_id", "hospital", "department", "doctor", "work_addr", "registration_type")}),
        ("出诊时间", {"fields": ("work_date", "time_code", "session")}),
        ("号源", {"fields": ("price", "remaining", "total", "hospital_reserved", "booked_count")}),
        (
            "状态",
            {
                "fields": (
                    "status",
                    ("stop_reason", "stopped_at"),
                    ("change_reason", "retired_at"),
                    "replaced_by_link",
                    "replaces_links",
                )
            },
        ),
        ("记录", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "session", "registration_type", "replaced_by_link", "replaces_links",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return False  # the hospital's data: it changes only through 2.1–2.3 (and the stop action)

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return False

    def has_stop_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("booking.stop_schedule")

    @admin.display(description="时间", ordering="start_time")
    def session(self, obj: Schedule) -> str:
        return f"{obj.start_time:%H:%M}–{obj.stop_time:%H:%M}"

    @admin.display(description="余号/总数")
    def slots(self, obj: Schedule) -> str:
        return f"{obj.remaining}/{obj.total}"

    @admin.display(description="挂号类型")
    def registration_type(self, obj: Schedule) -> str:
        return " ".join(v for v in (obj.registration_type_id, obj.registration_type_name) if v) or "-"

    @admin.display(description="说明")
    def remark(self, obj: Schedule) -> str:
        if obj.status == Schedule.STOPPED:
            return obj.stop_reason
        if obj.status == Schedule.CHANGED:
            if obj.replaced_by_id:
                return format_html("换诊为 {}（{}）", self._link(obj.replaced_by), obj.change_reason)
            return obj.change_reason
        if obj.status == Schedule.WITHDRAWN:
            return f"医院重新同步排班时未再包含；有{obj.booked_count}笔订单，故保留"
        return f"已按换诊通知更新：{obj.change_reason}" if obj.change_reason else ""

    @admin.display(description="换诊后的排班")
    def replaced_by_link(self, obj: Schedule) -> str:
        return self._link(obj.replaced_by) if obj.replaced_by_id else "-"

    @admin.display(description="由以下排班换诊而来")
    def replaces_links(self, obj: Schedule) -> str:
        older = list(obj.replaces.all()[:20])
        if not older:
            return "-"
        return format_html_join("，", "{}", ((self._link(s),) for s in older))

    def _link(self, schedule: Schedule) -> str:
        url = reverse("admin:booking_schedule_change", args=[schedule.pk])
        return format_html('<a href="{}">{}</a>', url, schedule.work_id)

    @admin.action(description="代医院停诊所选排班", permissions=["stop"])
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]):
        form = StopForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            stopped = 0
            for schedule in queryset.select_related("hospital"):
                try:
                    services.schedule_stop(
                        hospital=schedule.hospital, work_id=schedule.work_id, reason=form.cleaned_data["reason"]
                    )
                except DomainError as exc:
                    self.message_user(request, f"{schedule.work_id}：{exc.message}", messages.ERROR)
                    continue
                self.log_change(request, schedule, f"代医院停诊：{form.cleaned_data['reason']}")
                stopped += 1
            if stopped:
                self.message_user(request, f"已停诊{stopped}个排班", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "代医院停诊",
            "opts": self.model._meta,
            "form": form,
            "schedules": queryset.select_related("hospital", "doctor")[:200],
            "count": queryset.count(),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/booking/schedule/stop_selected.html", context)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    """Booking channels; a channel's API token is shown only once, when it is issued."""

    list_display = ("code", "name", "is_active", "token_hint_display", "created_at")
    list_filter = ("is_active",)
    search_fields = ("code", "name")
    fields = ("code", "name", "is_active", "token_hint_display", "created_at")
    readonly_fields = ("token_hint_display", "created_at")
    actions = ["issue_token"]

    def get_readonly_fields(self, request: HttpRequest, obj: Channel | None = None):
        return ("code", *self.readonly_fields) if obj else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Channel | None = None) -> bool:
        return False  # orders and payments name their channel; switch it off instead

    @admin.display(description="令牌尾号")
    def token_hint_display(self, obj: Channel) -> str:
        return f"…{obj.token_hint}" if obj.token_hint else "-"

    def save_model(self, request: HttpRequest, obj: Channel, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        channel, token = services.channel_issue_token(code=obj.code, name=obj.name)
        if channel.is_active != obj.is_active:
            channel.is_active = obj.is_active
            channel.save(update_fields=["is_active"])
        obj.pk, obj.token_hash, obj.token_hint, obj.created_at = (
            channel.pk, channel.token_hash, channel.token_hint, channel.created_at,
        )  # fmt: skip
        obj._state.adding = False
        self._show_token(request, channel, token)

    @admin.action(description="签发新令牌（旧令牌立即失效，新令牌只显示一次）")
    def issue_token(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            _, token = services.channel_issue_token(code=channel.code)
            self.log_change(request, channel, "签发新令牌")
            self._show_token(request, channel, token)

    def _show_token(self, request: HttpRequest, channel: Channel, token: str) -> None:
        self.message_user(
            request,
            f"渠道{channel.code}（{channel.name}）的新令牌（只显示这一次，请立即交给渠道方妥善保存）：{token}",
            messages.WARNING,
        )
