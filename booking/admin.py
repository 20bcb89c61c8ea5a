"""The regional staff's admin for schedules (the hospitals' data: browse, stop on a hospital's behalf),
booking channels (their API tokens are issued by an action and shown once), orders with their
history, the outbox of messages owed to hospitals (retry), patient notifications (retry), no-show
records and the payment ledger. Everything order-related is read-only here: it changes through
the services (and their actions), and personal data is shown masked with a recorded reveal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join, strip_tags

from booking import notify, rules_form
from booking.models import (
    BookingRules,
    Channel,
    LedgerEntry,
    LostLock,
    NoShowBan,
    NoShowRecord,
    Order,
    OrderTransition,
    OutboxMessage,
    PatientNotification,
    Schedule,
    WaitlistEntry,
)
from booking.rules import rules_cache_clear
from booking.services import channels, outbox, patients, schedules
from booking.services import staff as staff_services
from regional.admin import PersonalDataAdminMixin, ReadOnlyAdmin, secrets_page
from regional.admin_display import shortened
from regional.errors import DomainError
from regional.pii import lookup_hash, mask


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


class ScheduleDateFilter(WorkDateFilter):
    """The schedule list opens on today and later (staff work forward); 全部日期 shows the past too."""

    def lookups(self, request, model_admin):
        return [*super().lookups(request, model_admin), ("all", "全部日期")]

    def value(self):
        return super().value() or "future"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class StopForm(forms.Form):
    reason = forms.CharField(label="停诊原因", max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules arrive from the hospitals (2.1–2.3) and are never edited here; staff may stop one
    on a hospital's behalf (a telephoned 停诊 while its interface is down), through the service."""

    # Fits 1366 px: the day and session first, 余号/总数 within the screen, long text shortened.
    list_display = (
        "work_date_short", "session_short", "department_name", "doctor_name", "slots", "price_short", "status",
        "hospital_short", "work_id_short", "remark_short",
    )  # fmt: skip
    list_display_links = ("work_id_short",)
    list_filter = ("status", ScheduleDateFilter, "time_code", "hospital")
    search_fields = (
        "=work_id", "=department_code", "=doctor_code", "doctor__name", "^doctor__name_abbr", "department__name",
    )  # fmt: skip
    search_help_text = "按排班班次、科室编号、医生编号（完整），医生姓名、医生拼音简写（开头）或科室名称搜索"
    list_select_related = ("hospital", "department", "doctor", "replaced_by")
    show_full_result_count = False
    # From today on, by date (the filter defaults to 今天及以后), not newest first.
    ordering = ("work_date", "start_time", "work_id")
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

    @admin.display(description="出诊日期", ordering="work_date")
    def work_date_short(self, obj: Schedule) -> str:
        return f"{obj.work_date:%Y-%m-%d}"

    @admin.display(description="科室", ordering="department__name")
    def department_name(self, obj: Schedule) -> str:
        return format_html('<span title="{}">{}</span>', obj.department_code, shortened(obj.department.name, 8))

    @admin.display(description="医生", ordering="doctor__name")
    def doctor_name(self, obj: Schedule) -> str:
        return format_html('<span title="{}">{}</span>', obj.doctor_code, shortened(obj.doctor.name, 6))

    @admin.display(description="挂号费", ordering="price")
    def price_short(self, obj: Schedule) -> str:
        return f"{obj.price:.2f}"

    @admin.display(description="时段", ordering="start_time")
    def session_short(self, obj: Schedule) -> str:
        return f"{obj.get_time_code_display()} {obj.start_time:%H:%M}–{obj.stop_time:%H:%M}"

    @admin.display(description="医院", ordering="hospital__name")
    def hospital_short(self, obj: Schedule) -> str:
        return shortened(obj.hospital.short_name or obj.hospital.name, 6)

    @admin.display(description="排班班次", ordering="work_id")
    def work_id_short(self, obj: Schedule) -> str:
        return shortened(obj.work_id, 10)

    @admin.display(description="说明")
    def remark_short(self, obj: Schedule) -> str:
        text = strip_tags(self.remark(obj))
        return shortened(text, 8) if text else ""

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
                    schedules.schedule_stop(
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
        return format_html("<code>…{}</code>", obj.token_hint) if obj.token_hint else "-"

    def save_model(self, request: HttpRequest, obj: Channel, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        channel, token = channels.channel_issue_token(code=obj.code, name=obj.name)
        if channel.is_active != obj.is_active:
            channel.is_active = obj.is_active
            channel.save(update_fields=["is_active"])
        obj.pk, obj.token_hash, obj.token_hint, obj.created_at = (
            channel.pk, channel.token_hash, channel.token_hint, channel.created_at,
        )  # fmt: skip
        obj._state.adding = False
        request._issued_tokens = [(channel, token)]  # shown by response_add; in memory for this request only

    def response_add(self, request: HttpRequest, obj: Channel, post_url_continue=None):
        issued = getattr(request, "_issued_tokens", None)
        if not issued:
            return super().response_add(request, obj, post_url_continue)
        return self._tokens_page(request, issued)

    @admin.action(description="签发新令牌（旧令牌立即失效，新令牌只显示一次）")
    def issue_token(self, request: HttpRequest, queryset: QuerySet[Channel]) -> HttpResponse:
        issued = []
        for channel in queryset:
            _, token = channels.channel_issue_token(code=channel.code)
            self.log_change(request, channel, "签发新令牌")
            issued.append((channel, token))
        return self._tokens_page(request, issued)

    def _tokens_page(self, request: HttpRequest, issued: list[tuple[Channel, str]]) -> HttpResponse:
        return secrets_page(
            request,
            title="新的渠道令牌",
            subject_label="渠道",
            secret_label="新令牌（Authorization: Token <令牌>）",
            items=[(f"{channel.code}（{channel.name}）", token) for channel, token in issued],
            back_url=reverse("admin:booking_channel_changelist"),
        )


# -- orders and what they owe ----------------------------------------------------------------------


class VisitDateFilter(WorkDateFilter):
    title = "就诊日期"
    parameter_name = "visit"

    def queryset(self, request, queryset):
        today = timezone.localdate()
        ranges = {
            "today": {"schedule__work_date": today},
            "tomorrow": {"schedule__work_date": today + dt.timedelta(days=1)},
            "week": {"schedule__work_date__gte": today, "schedule__work_date__lt": today + dt.timedelta(days=7)},
            "future": {"schedule__work_date__gte": today},
            "past": {"schedule__work_date__lt": today},
        }
        return queryset.filter(**ranges[self.value()]) if self.value() in ranges else queryset


class OrderTransitionInline(admin.TabularInline):
    model = OrderTransition
    verbose_name_plural = "状态变更记录"
    fields = ("created_at", "change", "actor", "user", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at", "pk")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="变更")
    def change(self, obj: OrderTransition) -> str:
        return obj.change_text


class OrderOutboxInline(admin.TabularInline):
    model = OutboxMessage
    verbose_name_plural = "发给医院的通知"
    fields = ("kind", "status", "attempts", "transaction_id", "last_error", "created_at", "sent_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _order_link(order: Order | None) -> str:
    """A link to the order, its number shortened (the whole number on hover) so lists fit 1366 px."""
    if order is None:
        return "-"
    url = reverse("admin:booking_order_change", args=[order.pk])
    return format_html('<a href="{}">{}</a>', url, shortened(order.order_no, 16))


class StaffReasonForm(forms.Form):
    reason = forms.CharField(
        label="原因", max_length=300, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="记入订单记录与审计日志，例如“患者来电要求退号”。", error_messages={"required": "请填写原因"},
    )  # fmt: skip


@dataclass(frozen=True)
class StaffAction:
    """One of the staff's actions on an order: its Chinese title, the permission it needs, what the
    confirmation page says, and the service it calls (returns a message level and the Chinese result)."""

    key: str
    title: str
    permission: str
    intro: str
    submit: str


STAFF_ACTIONS = {
    action.key: action
    for action in (
        StaffAction(
            "cancel",
            "退号退费",
            "booking.cancel_order",
            "代患者退号：号源释放，已在线支付的挂号费原路退回（记入退款流水），并通过通知发件箱告知医院、短信告知患者。"
            "退号规则（状态、退号截止时间）与患者自行退号相同。",
            "确认退号退费",
        ),
        StaffAction(
            "resolve",
            "处理锁号中",
            "booking.resolve_order",
            "锁号已超过几分钟仍无结果：向医院查询该排班的号源数（getRegistrationInfo）核实医院是否占用此号。"
            "医院未占用则释放号源；医院很可能占用时订单转入“待核实的锁号”，请联系医院。",
            "向医院核实",
        ),
        StaffAction(
            "resend",
            "重发通知",
            "booking.retry_patientnotification",
            "将该订单最近一条患者通知重新发送给患者（未送达的立即重试，已送达的再发一次）。",
            "确认重发",
        ),
    )  # fmt: skip
}


@admin.register(Order)
class OrderAdmin(PersonalDataAdminMixin, ReadOnlyAdmin):
    """Orders with their history; the patient masked (reveal recorded). The hotline finds a
    patient's order by full ID, phone or card number or name (through the lookup hashes) and acts on
    it through the booking services (退号退费, 处理锁号中, 重发通知), each with a reason."""

    personal_fields = {
        "patient_name": "name",
        "id_card": "id",
        "phone": "phone",
        "card_no": "card",
        "address": "address",
    }
    # What the hotline needs first fits 1366 px: state, patient, visit, fee; long numbers shortened.
    list_display = (
        "state", "patient", "visit", "fee_display", "order_short", "hospital_short", "channel_code", "created_short",
    )  # fmt: skip
    list_display_links = ("order_short",)
    list_filter = ("status", "mark", VisitDateFilter, ("created_at", admin.DateFieldListFilter), "channel", "hospital")
    search_fields = (
        "=order_no", "=workflow_id", "=hospital__hospital_no", "=schedule__doctor__doctor_id",
        "=schedule__department__department_id",
    )  # fmt: skip
    search_help_text = (
        "按平台订单号、WorkFlowId、完整身份证号、手机号码、诊疗卡号、患者姓名，或医院编号、医生编号、科室编号精确搜索"
    )
    list_select_related = ("hospital", "channel", "schedule")
    actions = ["cancel_selected", "resolve_selected", "resend_selected"]
    change_form_template = "admin/booking/order/change_form.html"

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # Personal data is stored encrypted: the hotline's full ID, phone or card number or the
        # patient's name is matched through its keyed lookup hash (spaces and case ignored), never
        # against a plaintext column.
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            digest = lookup_hash(term)
            found = found | queryset.filter(
                Q(id_card_hash=digest) | Q(phone_hash=digest) | Q(card_no_hash=digest) | Q(patient_name_hash=digest)
            )
        return found, may_have_duplicates

    ordering = ("-created_at",)
    inlines = [OrderTransitionInline, OrderOutboxInline]
    fieldsets = (
        ("订单", {"fields": ("order_no", "channel", "hospital", "schedule", "num_source_id", "status", "mark",
                           "mark_reason", "cancelled_by", "failure_reason")}),
        ("医院端", {"fields": ("workflow_id", "lock_transaction_id", "serial_number", "worktime", "fee",
                            "hospital_status", "refreshed_at")}),
        ("患者（脱敏显示）", {"fields": ("masked_patient_name", "masked_id_card", "masked_phone", "masked_card_no",
                                   "card_type", "sex", "age", "masked_address")}),
        ("支付", {"fields": ("pay_type", "pay_trade_no", "pay_channel", "paid_at")}),
        ("时间", {"fields": ("created_at", "locked_at", "lock_expires_at", "cancelled_at", "finished_at",
                          "updated_at")}),
    )  # fmt: skip

    # -- list columns ----------------------------------------------------------------------------

    @admin.display(description="状态", ordering="status")
    def state(self, obj: Order) -> str:
        return f"{obj.get_status_display()}·{obj.get_mark_display()}" if obj.mark else obj.get_status_display()

    @admin.display(description="患者")
    def patient(self, obj: Order) -> str:
        return mask(obj.patient_name, "name")

    @admin.display(description="就诊日期/时段", ordering="schedule__work_date")
    def visit(self, obj: Order) -> str:
        return f"{obj.schedule.work_date:%Y-%m-%d} {obj.schedule.get_time_code_display()}"

    @admin.display(description="挂号费", ordering="fee")
    def fee_display(self, obj: Order) -> str:
        return f"{obj.fee:.2f}"

    @admin.display(description="订单号", ordering="order_no")
    def order_short(self, obj: Order) -> str:
        return shortened(obj.order_no, 12)

    @admin.display(description="医院", ordering="hospital__name")
    def hospital_short(self, obj: Order) -> str:
        return shortened(obj.hospital.short_name or obj.hospital.name, 8)

    @admin.display(description="渠道", ordering="channel__code")
    def channel_code(self, obj: Order) -> str:
        return format_html('<span title="{}">{}</span>', obj.channel.name, obj.channel.code)

    @admin.display(description="下单时间", ordering="created_at")
    def created_short(self, obj: Order) -> str:
        return f"{timezone.localtime(obj.created_at):%m-%d %H:%M}"

    # -- detail fields ---------------------------------------------------------------------------

    @admin.display(description="排班班次", ordering="schedule__work_id")
    def work_id(self, obj: Order) -> str:
        return obj.schedule.work_id

    @admin.display(description="就诊日期", ordering="schedule__work_date")
    def work_date(self, obj: Order):
        return obj.schedule.work_date

    @admin.display(description="患者姓名")
    def masked_patient_name(self, obj: Order) -> str:
        return self.masked(obj, "patient_name")

    @admin.display(description="身份证号")
    def masked_id_card(self, obj: Order) -> str:
        return self.masked(obj, "id_card")

    @admin.display(description="手机号码")
    def masked_phone(self, obj: Order) -> str:
        return self.masked(obj, "phone")

    @admin.display(description="诊疗卡号")
    def masked_card_no(self, obj: Order) -> str:
        return self.masked(obj, "card_no")

    @admin.display(description="地址")
    def masked_address(self, obj: Order) -> str:
        return self.masked(obj, "address")

    # -- staff actions: the changelist's actions and the detail page's buttons share one page ------

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(STAFF_ACTIONS["cancel"].permission)

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(STAFF_ACTIONS["resolve"].permission)

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(STAFF_ACTIONS["resend"].permission)

    @admin.action(description="退号退费（代患者）", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Order]):
        return self._bulk_action(request, queryset, STAFF_ACTIONS["cancel"], "cancel_selected")

    @admin.action(description="处理锁号中（向医院核实）", permissions=["resolve"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[Order]):
        return self._bulk_action(request, queryset, STAFF_ACTIONS["resolve"], "resolve_selected")

    @admin.action(description="重发通知（最近一条患者通知）", permissions=["resend"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Order]):
        return self._bulk_action(request, queryset, STAFF_ACTIONS["resend"], "resend_selected")

    def _bulk_action(self, request: HttpRequest, queryset: QuerySet[Order], action: StaffAction, name: str):
        form = StaffReasonForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for order in queryset.select_related("hospital")[:200]:
                self._perform(request, action, order, form.cleaned_data["reason"])
            return None
        extra = {
            "action_name": name,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "back_url": reverse("admin:booking_order_changelist"),
        }
        return self._action_page(request, action, queryset, form, extra)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/staff/<str:key>/",
                self.admin_site.admin_view(self.staff_action_view),
                name="booking_order_staff_action",
            ),
            *super().get_urls(),
        ]

    def staff_action_view(self, request: HttpRequest, object_id: str, key: str) -> HttpResponse:
        """One order's action from its detail page: GET asks the reason, POST performs it."""
        action = STAFF_ACTIONS.get(key)
        if action is None:
            raise Http404("没有这个操作")
        if not (self.has_view_permission(request) and request.user.has_perm(action.permission)):
            raise PermissionDenied
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404("订单不存在")
        change_url = reverse("admin:booking_order_change", args=[order.pk])
        form = StaffReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._perform(request, action, order, form.cleaned_data["reason"])
            return HttpResponseRedirect(change_url)
        queryset = Order.objects.filter(pk=order.pk)
        return self._action_page(request, action, queryset, form, {"back_url": change_url})

    def _action_page(self, request, action: StaffAction, queryset, form, extra: dict) -> TemplateResponse:
        orders = list(queryset.select_related("hospital", "schedule")[:200])
        context = {
            **self.admin_site.each_context(request),
            "title": action.title,
            "opts": self.model._meta,
            "action": action,
            "form": form,
            "orders": [(o, mask(o.patient_name, "name"), self.visit(o)) for o in orders],
            "count": queryset.count(),
            **extra,
        }
        return TemplateResponse(request, "admin/booking/order/staff_action.html", context)

    def _perform(self, request: HttpRequest, action: StaffAction, order: Order, reason: str) -> None:
        """Call the action's service for one order and tell the staff member what happened, in Chinese."""
        try:
            if action.key == "cancel":
                order, refund = staff_services.order_staff_cancel(order_id=order.pk, user=request.user, reason=reason)
                money = f"，挂号费{refund.amount}元已记入退款流水、原路退回" if refund else "（未在线支付，无需退款）"
                self.message_user(request, f"订单{order.order_no}已退号{money}，已通知医院与患者", messages.SUCCESS)
            elif action.key == "resolve":
                result = staff_services.order_lock_resolve(order_id=order.pk, user=request.user, reason=reason)
                level = messages.SUCCESS if result.outcome == result.RELEASED else messages.WARNING
                self.message_user(request, f"订单{order.order_no}：{result.note}", level)
            else:
                row = staff_services.notification_resend(order_id=order.pk, user=request.user, reason=reason)
                self.message_user(
                    request, f"订单{order.order_no}：已重新发送“{row.get_kind_display()}”通知", messages.SUCCESS
                )
        except DomainError as exc:
            self.message_user(request, f"订单{order.order_no}未能{action.title}：{exc.message}", messages.ERROR)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["staff_actions"] = [
                (action, reverse("admin:booking_order_staff_action", args=[obj.pk, action.key]))
                for action in STAFF_ACTIONS.values()
                if request.user.has_perm(action.permission) and self._applies(action, obj)
            ]
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @staticmethod
    def _applies(action: StaffAction, order: Order) -> bool:
        if action.key == "cancel":
            return order.status in (Order.BOOKED, Order.PAID)
        if action.key == "resolve":
            return order.status == Order.LOCKING or (
                order.status == Order.FAILED
                and order.outbox.filter(
                    kind=OutboxMessage.UNLOCK, status__in=(OutboxMessage.PENDING, OutboxMessage.UNKNOWN)
                ).exists()
            )
        return order.notifications.exists()


@admin.register(OrderTransition)
class OrderTransitionAdmin(ReadOnlyAdmin):
    """Every order's history, newest first: what changed, who changed it and why."""

    list_display = ("created_at", "order_link", "change", "actor", "user", "short_reason")
    search_fields = ("=order__order_no",)
    search_help_text = "按平台订单号精确搜索"
    list_select_related = ("order", "user")
    ordering = ("-created_at", "-pk")
    fields = ("order_link", "change", "actor", "user", "reason", "created_at")
    readonly_fields = fields

    @admin.display(description="订单")
    def order_link(self, obj: OrderTransition) -> str:
        return _order_link(obj.order)

    @admin.display(description="变更")
    def change(self, obj: OrderTransition) -> str:
        return obj.change_text

    @admin.display(description="原因")
    def short_reason(self, obj: OrderTransition) -> str:
        return shortened(obj.reason, 30)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    """Messages owed to hospitals: what waits, what failed and why; staff can send them again."""

    list_display = (
        "id", "kind", "hospital", "order_link", "status", "attempts", "next_attempt_at", "short_error", "created_at",
        "sent_at",
    )  # fmt: skip
    list_filter = ("status", "kind", "hospital")
    search_fields = ("=order__order_no", "=transaction_id", "=order__workflow_id")
    search_help_text = "按平台订单号、访问流水号或WorkFlowId精确搜索"
    list_select_related = ("hospital", "order")
    ordering = ("-created_at",)
    actions = ["retry_selected"]
    fields = (
        "kind", "hospital", "order_link", "status", "transaction_id", "payload", "attempts", "last_error",
        "next_attempt_at", "claimed_until", "created_at", "sent_at",
    )  # fmt: skip
    readonly_fields = fields

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("booking.retry_outboxmessage")

    @admin.display(description="订单")
    def order_link(self, obj: OutboxMessage) -> str:
        return _order_link(obj.order)

    @admin.display(description="最近错误")
    def short_error(self, obj: OutboxMessage) -> str:
        return obj.last_error[:80]

    @admin.action(description="立即重新发送所选通知", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        count = outbox.outbox_retry(message_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
        skipped = queryset.count() - count
        note = f"（{skipped}条已送达或无需发送，未重发）" if skipped else ""
        self.message_user(
            request, f"已重新发送{count}条医院通知{note}", messages.SUCCESS if count else messages.WARNING
        )


@admin.register(LostLock)
class LostLockAdmin(ReadOnlyAdmin):
    """The worklist of locks whose outcome is unknown: the hospital may hold a number the platform
    cannot unlock (its answer, with the WorkFlowId, was lost). The number stays out of sale until
    settled: re-check reads the hospital's count back; staff who asked the hospital may settle it."""

    list_display = ("id", "hospital", "order_link", "schedule", "created_at", "attempts", "short_error")
    list_filter = ("hospital",)
    search_fields = ("=order__order_no", "=order__schedule__work_id")
    search_help_text = "按平台订单号或排班号精确搜索"
    list_select_related = ("hospital", "order", "order__schedule")
    actions = ["recheck", "released"]
    fields = ("hospital", "order_link", "schedule", "transaction_id", "attempts", "last_error", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).filter(kind=OutboxMessage.UNLOCK, status=OutboxMessage.UNKNOWN)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("booking.retry_outboxmessage")

    @admin.display(description="订单")
    def order_link(self, obj: OutboxMessage) -> str:
        return _order_link(obj.order)

    @admin.display(description="排班")
    def schedule(self, obj: OutboxMessage) -> str:
        return str(obj.order.schedule.work_id)

    @admin.display(description="核实结果")
    def short_error(self, obj: OutboxMessage) -> str:
        return obj.last_error[:120]

    @admin.action(description="重新核实（向医院查询号源数）", permissions=["retry"])
    def recheck(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        settled = outbox.lost_lock_recheck(message_ids=ids, user=request.user)
        self.message_user(request, f"已核实{len(ids)}条，其中{settled}条医院未占用、号源已释放", messages.SUCCESS)

    @admin.action(description="医院已确认解除：释放平台号源", permissions=["retry"])
    def released(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        count = outbox.lost_lock_released(
            message_ids=list(queryset.values_list("pk", flat=True)), user=request.user, reason="工作人员在管理后台确认"
        )
        self.message_user(request, f"已释放{count}个号源", messages.SUCCESS)


@admin.register(PatientNotification)
class PatientNotificationAdmin(PersonalDataAdminMixin, ReadOnlyAdmin):
    personal_fields = {"phone": "phone"}
    list_display = ("created_at", "kind", "status", "order_link", "phone_short", "attempts", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("=order__order_no",)
    search_help_text = "按平台订单号精确搜索"
    list_select_related = ("order",)
    ordering = ("-created_at",)
    actions = ["retry_selected"]
    fields = ("kind", "order_link", "masked_phone", "message", "status", "backend", "attempts", "last_error",
              "next_attempt_at", "created_at", "sent_at")  # fmt: skip
    readonly_fields = fields

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("booking.retry_patientnotification")

    @admin.display(description="订单")
    def order_link(self, obj: PatientNotification) -> str:
        return _order_link(obj.order)

    @admin.display(description="手机号码")
    def masked_phone(self, obj: PatientNotification) -> str:
        return self.masked(obj, "phone")

    @admin.display(description="手机号码")
    def phone_short(self, obj: PatientNotification) -> str:
        return mask(obj.phone, "phone")  # the reveal link is on the detail page

    @admin.action(description="立即重新发送所选通知", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[PatientNotification]) -> None:
        count = notify.notifications_retry(
            notification_ids=list(queryset.values_list("pk", flat=True)), user=request.user
        )
        self.message_user(request, f"已重新发送{count}条患者通知", messages.SUCCESS if count else messages.WARNING)


@admin.register(NoShowRecord)
class NoShowRecordAdmin(ReadOnlyAdmin):
    list_display = ("work_date", "hospital_short", "order_link", "patient_key", "occurred_at", "created_at")
    list_filter = ("hospital", ("work_date", admin.DateFieldListFilter))
    search_fields = ("=order__order_no",)
    search_help_text = "按平台订单号精确搜索"
    list_select_related = ("hospital", "order")
    ordering = ("-created_at",)
    fields = ("order_link", "hospital", "work_date", "patient_key", "occurred_at", "created_at")
    readonly_fields = fields

    @admin.display(description="订单")
    def order_link(self, obj: NoShowRecord) -> str:
        return _order_link(obj.order)

    @admin.display(description="患者标识（身份证号摘要）")
    def patient_key(self, obj: NoShowRecord) -> str:
        return f"{obj.id_card_hash[:12]}…"

    @admin.display(description="医院", ordering="hospital__name")
    def hospital_short(self, obj: NoShowRecord) -> str:
        return shortened(obj.hospital.short_name or obj.hospital.name, 8)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(PersonalDataAdminMixin, ReadOnlyAdmin):
    """The payment ledger: append-only, so nothing here can be changed (corrections are new entries)."""

    personal_fields = {"patient_name": "name"}
    list_display = (
        "created_at", "batch", "pay_trade_no", "type", "kind", "signed_amount", "hospital", "channel",
        "pay_channel", "masked_patient_name",
    )  # fmt: skip
    list_filter = ("kind", "type", "pay_channel", ("created_at", admin.DateFieldListFilter), "channel", "hospital")
    search_fields = ("=batch", "=pay_trade_no")
    search_help_text = "按平台交易流水号（订单号）或支付交易号精确搜索"
    list_select_related = ("hospital", "channel", "order")
    ordering = ("-created_at", "-pk")
    fields = ("entry_key", "batch", "pay_trade_no", "type", "kind", "amount", "hospital", "order_link", "channel",
              "pay_channel", "masked_patient_name", "reason", "created_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="金额（元）", ordering="amount")
    def signed_amount(self, obj: LedgerEntry) -> str:
        return f"{'-' if obj.kind == LedgerEntry.REFUND else ''}{obj.amount:.2f}"

    @admin.display(description="订单")
    def order_link(self, obj: LedgerEntry) -> str:
        return _order_link(obj.order)

    @admin.display(description="患者姓名")
    def masked_patient_name(self, obj: LedgerEntry) -> str:
        return self.masked(obj, "patient_name")


# -- booking rules and no-show bans ------------------------------------------------------------------


@admin.register(BookingRules)
class BookingRulesAdmin(admin.ModelAdmin):
    """The region's rules (hospital left empty) and each hospital's overrides, one labelled field per
    rule (booking/rules_form.py); saving takes effect at once (the cached rules are dropped)."""

    list_display = (
        "scope", "rule_release_days", "rule_release_time", "rule_booking_cutoff_minutes", "rule_limit_per_day",
        "rule_limit_per_week", "rule_limit_per_month", "rule_cancel_deadline_time", "updated_at",
    )  # fmt: skip
    list_select_related = ("hospital",)

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        kwargs["form"] = rules_form.rules_form_class(obj)
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        return rules_form.rules_fieldsets(rules_form.rules_form_class(obj))

    @admin.display(description="适用范围", ordering="hospital")
    def scope(self, obj: BookingRules) -> str:
        return obj.hospital.name if obj.hospital_id else "全区域"

    def save_model(self, request: HttpRequest, obj: BookingRules, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        rules_cache_clear()
        messages.info(request, "预约规则已保存，立即生效")

    def delete_model(self, request: HttpRequest, obj: BookingRules) -> None:
        super().delete_model(request, obj)
        rules_cache_clear()

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        super().delete_queryset(request, queryset)
        rules_cache_clear()


def _rule_column(name: str):
    """A list column that says what a blank means: inherited by a hospital, off in the region's row."""
    field = BookingRules._meta.get_field(name)

    @admin.display(description=field.verbose_name, ordering=name)
    def column(self, obj: BookingRules) -> str:
        value = getattr(obj, name)
        if value is None:
            return rules_form.INHERIT_LABEL if obj.hospital_id else rules_form.OFF_LABEL
        return value.strftime("%H:%M") if hasattr(value, "strftime") else str(value)

    return column


for _name in (
    "release_days", "release_time", "booking_cutoff_minutes", "limit_per_day", "limit_per_week", "limit_per_month",
    "cancel_deadline_time",
):  # fmt: skip
    setattr(BookingRulesAdmin, f"rule_{_name}", _rule_column(_name))


class NoShowBanForm(forms.ModelForm):
    lift = forms.BooleanField(label="解除禁约", required=False, help_text="勾选后立即解除，患者可再次预约。")
    new_ends_on = forms.DateField(label="缩短至（结束日期）", required=False, help_text="只能提前，不能延后。")
    reason = forms.CharField(label="原因", required=False, max_length=300, help_text="解除或缩短禁约时必填。")

    class Meta:
        model = NoShowBan
        fields = ()


@admin.register(NoShowBan)
class NoShowBanAdmin(admin.ModelAdmin):
    """No-show bans: staff lift or shorten one with a reason (through the service, audited); the
    patient's no-shows and bans are listed on the page by ID hash (no personal data)."""

    form = NoShowBanForm
    list_display = ("created_at", "patient_key", "no_shows", "within_days", "starts_on", "ends_on", "state")
    list_filter = (("ends_on", admin.DateFieldListFilter),)
    ordering = ("-created_at",)
    show_full_result_count = False
    readonly_fields = (
        "patient_key", "no_shows", "within_days", "starts_on", "ends_on", "lifted_at", "change_reason", "changed_by",
        "created_at", "history",
    )  # fmt: skip
    fieldsets = (
        (None, {"fields": readonly_fields}),
        ("解除或缩短", {"fields": ("lift", "new_ends_on", "reason")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="患者标识（身份证号摘要）")
    def patient_key(self, obj: NoShowBan) -> str:
        return f"{obj.id_card_hash[:12]}…"

    @admin.display(description="状态")
    def state(self, obj: NoShowBan) -> str:
        if obj.lifted_at:
            return "已解除"
        return "生效中" if obj.is_active_on(timezone.localdate()) else "已到期"

    @admin.display(description="该患者的爽约与禁约记录")
    def history(self, obj: NoShowBan) -> str:
        records = NoShowRecord.objects.filter(id_card_hash=obj.id_card_hash).select_related("hospital", "order")
        bans = NoShowBan.objects.filter(id_card_hash=obj.id_card_hash)
        rows = [(f"{r.work_date:%Y-%m-%d}", f"爽约：{r.hospital.name}，订单{r.order.order_no}") for r in records]
        rows += [
            (f"{b.starts_on:%Y-%m-%d}", f"禁约至{b.ends_on:%Y-%m-%d}" + ("（已解除）" if b.lifted_at else ""))
            for b in bans
        ]
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {}</li>", sorted(rows)))

    def save_model(self, request: HttpRequest, obj: NoShowBan, form, change: bool) -> None:
        data = form.cleaned_data
        if not data.get("lift") and not data.get("new_ends_on"):
            return
        try:
            patients.no_show_ban_change(
                ban_id=obj.pk,
                ends_on=None if data.get("lift") else data["new_ends_on"],
                reason=data.get("reason") or "",
                user=request.user,
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, "禁约已解除" if data.get("lift") else "禁约已缩短", messages.SUCCESS)


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(PersonalDataAdminMixin, ReadOnlyAdmin):
    """The waitlists (候补): written by the channels and the offer task; staff browse them."""

    personal_fields = {"patient_name": "name", "phone": "phone"}
    list_display = ("created_at", "schedule", "channel", "status", "masked_patient_name", "masked_phone", "order_link")
    list_filter = ("status", "channel")
    search_fields = ("=schedule__work_id",)
    search_help_text = "按排班班次精确搜索"
    list_select_related = ("schedule", "channel", "order")
    ordering = ("-created_at",)
    fields = ("schedule", "channel", "status", "masked_patient_name", "masked_phone", "order_link", "note",
              "created_at", "updated_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="订单")
    def order_link(self, obj: WaitlistEntry) -> str:
        return _order_link(obj.order)

    @admin.display(description="患者姓名")
    def masked_patient_name(self, obj: WaitlistEntry) -> str:
        return self.masked(obj, "patient_name")

    @admin.display(description="手机号码")
    def masked_phone(self, obj: WaitlistEntry) -> str:
        return self.masked(obj, "phone")
