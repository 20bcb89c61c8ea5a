"""The sandbox hospital's staff screens: hospitals and their faults, sessions and slots, orders, cards.

Anything beyond editing a field goes through sandbox.services; personal data is shown
masked and is not editable here.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.urls import reverse

from regional.errors import DomainError
from regional.pii import mask
from sandbox import services
from sandbox.center import CenterAnswer
from sandbox.models import (
    SandboxCancellation,
    SandboxCard,
    SandboxDepartment,
    SandboxDoctor,
    SandboxHospital,
    SandboxOrder,
    SandboxPayment,
    SandboxSchedule,
    SandboxSlot,
)


def _report(modeladmin: admin.ModelAdmin, request, fn: Callable[[], CenterAnswer | str | None]) -> None:
    """Run one service call and tell the user what happened, in Chinese."""
    try:
        outcome = fn()
    except DomainError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    if isinstance(outcome, CenterAnswer):
        level = messages.SUCCESS if outcome.ok else messages.WARNING
        modeladmin.message_user(request, outcome.summary(), level)
    elif outcome:
        modeladmin.message_user(request, outcome, messages.SUCCESS)


@admin.register(SandboxHospital)
class SandboxHospitalAdmin(admin.ModelAdmin):
    list_display = ["hospital_no", "name", "degree_name", "fault_mode", "fault_latency_ms", "fault_operations"]
    search_fields = ["hospital_no", "name"]
    readonly_fields = ["his_address", "card_seq", "created_at"]
    fieldsets = [
        ("基本信息", {"fields": ["hospital_no", "name", "short_name", "degree_code", "degree_name", "phone", "address",
                                 "description", "website", "bus_route", "seq_no"]}),
        ("接口", {"fields": ["his_address", "center_url", "center_secret"]}),
        ("故障模拟", {"fields": ["fault_mode", "fault_latency_ms", "fault_timeout_seconds", "fault_operations",
                                 "fault_error_message"]}),
        ("其他", {"fields": ["card_seq", "created_at"]}),
    ]  # fmt: skip
    actions = ["push_master_data", "push_schedules", "clear_faults"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "center_secret":
            kwargs["widget"] = forms.PasswordInput(render_value=True)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="医院端接口地址（平台配置此地址）")
    def his_address(self, obj: SandboxHospital) -> str:
        if not obj.pk:
            return "-"
        return settings.PUBLIC_BASE_URL + reverse("sandbox-his-ws", args=[obj.hospital_no])

    @admin.action(description="向平台推送机构、科室、医生信息（5.1–5.3）")
    def push_master_data(self, request, queryset):
        for hospital in queryset:
            for push in (services.center_push_hospital, services.center_push_departments, services.center_push_doctors):
                _report(self, request, lambda push=push, hospital=hospital: push(hospital=hospital))

    @admin.action(description="向平台全量推送今日起的排班（2.1，IsMultiTimes=1）")
    def push_schedules(self, request, queryset):
        for hospital in queryset:
            _report(self, request, lambda hospital=hospital: services.center_push_schedules(hospital=hospital))

    @admin.action(description="清除故障设置")
    def clear_faults(self, request, queryset):
        for hospital in queryset:
            services.hospital_fault_set(hospital=hospital)
        self.message_user(request, f"已清除{queryset.count()}家沙箱医院的故障设置", messages.SUCCESS)


@admin.register(SandboxDepartment)
class SandboxDepartmentAdmin(admin.ModelAdmin):
    list_display = ["department_id", "name", "hospital", "parent_department_id", "is_outpatient", "is_deleted"]
    list_filter = ["hospital"]
    search_fields = ["department_id", "name"]
    list_select_related = ["hospital"]


@admin.register(SandboxDoctor)
class SandboxDoctorAdmin(admin.ModelAdmin):
    list_display = ["doctor_id", "name", "hospital", "department", "title", "is_expert", "is_deleted"]
    list_filter = ["hospital", "is_expert"]
    search_fields = ["doctor_id", "name"]
    list_select_related = ["hospital", "department"]


class SlotInline(admin.TabularInline):
    model = SandboxSlot
    extra = 0
    fields = ["cur_num", "start_time", "end_time", "num_source_id", "status"]
    readonly_fields = ["cur_num", "start_time", "end_time", "num_source_id"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ScheduleActionForm(ActionForm):
    reason = forms.CharField(label="原因（停诊/换诊）", required=False, max_length=500)


@admin.register(SandboxSchedule)
class SandboxScheduleAdmin(admin.ModelAdmin):
    list_display = ["work_id", "hospital", "doctor", "work_date", "work_time_code", "remaining", "total", "now_seq",
                    "status"]  # fmt: skip
    list_filter = ["hospital", "status", "work_time_code", "work_date"]
    search_fields = ["work_id", "doctor__name"]
    list_select_related = ["hospital", "doctor"]
    date_hierarchy = "work_date"
    readonly_fields = ["remaining", "next_serial", "now_seq", "replaced_by"]
    inlines = [SlotInline]
    action_form = ScheduleActionForm
    actions = ["call_next", "stop_and_notify", "change_and_notify", "push_selected"]
    show_full_result_count = False

    @admin.action(description="叫下一位患者")
    def call_next(self, request, queryset):
        for schedule in queryset:
            order = services.queue_call_next(schedule=schedule)
            if order is None:
                self.message_user(request, f"{schedule.work_id}：没有候诊的患者", messages.WARNING)
            else:
                self.message_user(request, f"{schedule.work_id}：请{order.serial_number}号就诊", messages.SUCCESS)

    @admin.action(description="停诊并通知平台（2.2）")
    def stop_and_notify(self, request, queryset):
        reason = request.POST.get("reason") or "医生临时停诊"
        for schedule in queryset:
            _report(self, request, lambda s=schedule: services.schedule_stop_and_notify(schedule=s, reason=reason))

    @admin.action(description="换诊（同科室另一位医生）并通知平台（2.3）")
    def change_and_notify(self, request, queryset):
        reason = request.POST.get("reason") or "医生临时换诊"
        for schedule in queryset.select_related("doctor"):
            other = (
                SandboxDoctor.objects.filter(department=schedule.department_id, is_deleted=False)
                .exclude(pk=schedule.doctor_id)
                .first()
            )

            def change(schedule=schedule, other=other):
                new, answer = services.schedule_change_and_notify(schedule=schedule, reason=reason, doctor=other)
                self.message_user(request, f"{schedule.work_id} 已换诊为 {new.work_id}", messages.SUCCESS)
                return answer

            _report(self, request, change)

    @admin.action(description="向平台推送所选排班（2.1，IsMultiTimes=0）")
    def push_selected(self, request, queryset):
        by_hospital: dict[int, list[SandboxSchedule]] = {}
        for schedule in queryset.select_related("hospital", "doctor", "department"):
            by_hospital.setdefault(schedule.hospital_id, []).append(schedule)
        for items in by_hospital.values():
            _report(
                self,
                request,
                lambda items=items: services.center_push_schedules(
                    hospital=items[0].hospital, schedules=items, full=False
                ),
            )


class PaymentInline(admin.TabularInline):
    model = SandboxPayment
    extra = 0
    can_delete = False
    readonly_fields = ["transaction_id", "pay_type", "amount", "pay_trade_no", "pay_channel", "channel", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class CancellationInline(admin.TabularInline):
    model = SandboxCancellation
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "transaction_id", "reason", "occurred_at", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


PERSONAL_FIELDS = ["patient_no", "name", "telephone", "address", "id_code"]


@admin.register(SandboxOrder)
class SandboxOrderAdmin(admin.ModelAdmin):
    list_display = ["work_flow_id", "hospital", "schedule", "serial_number", "status", "patient_name", "patient_phone",
                    "patient_id", "channel", "locked_at"]  # fmt: skip
    list_filter = ["hospital", "status", "channel"]
    search_fields = ["work_flow_id", "transaction_id", "schedule__work_id"]
    list_select_related = ["hospital", "schedule"]
    exclude = [*PERSONAL_FIELDS, "id_hash"]
    readonly_fields = ["work_flow_id", "transaction_id", "schedule", "slot", "serial_number", "worktime", "fee",
                       "status", "onsite_payment", "patient_name", "patient_phone", "patient_id", "patient_card",
                       "card_type", "sex", "sex_name", "age", "channel", "locked_at", "paid_at", "cancelled_at",
                       "checked_in_at", "visited_at", "reported_status"]  # fmt: skip
    inlines = [PaymentInline, CancellationInline]
    actions = ["check_in", "mark_no_show", "withdraw", "report_promise"]
    show_full_result_count = False

    @admin.display(description="姓名")
    def patient_name(self, obj: SandboxOrder) -> str:
        return mask(obj.name, "name")

    @admin.display(description="手机号码")
    def patient_phone(self, obj: SandboxOrder) -> str:
        return mask(obj.telephone, "phone")

    @admin.display(description="身份证号")
    def patient_id(self, obj: SandboxOrder) -> str:
        return mask(obj.id_code, "id")

    @admin.display(description="医疗卡号")
    def patient_card(self, obj: SandboxOrder) -> str:
        return mask(obj.patient_no, "card")

    def has_add_permission(self, request) -> bool:
        return False

    def _each(self, request, queryset, fn: Callable[[SandboxOrder], object], done: str) -> None:
        for order in queryset:
            try:
                fn(order)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{order.work_flow_id} {done}", messages.SUCCESS)

    @admin.action(description="患者报到")
    def check_in(self, request, queryset):
        self._each(request, queryset, lambda o: services.order_check_in(order=o), "已报到")

    @admin.action(description="标记爽约")
    def mark_no_show(self, request, queryset):
        self._each(request, queryset, lambda o: services.order_mark_no_show(order=o), "已标记爽约")

    @admin.action(description="医院退号")
    def withdraw(self, request, queryset):
        self._each(request, queryset, lambda o: services.order_withdraw(order=o, reason="医院退号"), "已退号")

    @admin.action(description="向平台报告履约/爽约/退号（2.4）")
    def report_promise(self, request, queryset):
        orders = list(queryset.select_related("hospital"))
        by_hospital: dict[int, list[SandboxOrder]] = {}
        for order in orders:
            by_hospital.setdefault(order.hospital_id, []).append(order)
        for items in by_hospital.values():
            _report(self, request, lambda items=items: services.center_push_promise(orders=items))


@admin.register(SandboxCard)
class SandboxCardAdmin(admin.ModelAdmin):
    list_display = ["card_no", "hospital", "card_type", "holder_name", "holder_id", "holder_phone", "is_active",
                    "last_used_at"]  # fmt: skip
    list_filter = ["hospital", "card_type", "is_active"]
    search_fields = ["card_no"]
    list_select_related = ["hospital"]
    exclude = ["id_code", "id_hash", "name", "phone", "address", "health_card_num"]
    readonly_fields = ["card_no", "card_type", "holder_name", "holder_id", "holder_phone", "created_at", "last_used_at"]
    show_full_result_count = False

    @admin.display(description="姓名")
    def holder_name(self, obj: SandboxCard) -> str:
        return mask(obj.name, "name")

    @admin.display(description="身份证号")
    def holder_id(self, obj: SandboxCard) -> str:
        return mask(obj.id_code, "id")

    @admin.display(description="手机号码")
    def holder_phone(self, obj: SandboxCard) -> str:
        return mask(obj.phone, "phone")

    def has_add_permission(self, request) -> bool:
        return False
