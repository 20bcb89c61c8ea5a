"""The regional staff's admin for master data, credentials and the interface message log."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from regional import services
from regional.admin_display import shortened
from regional.conformance import conformance_request
from regional.errors import DomainError
from regional.messages.catalog import BY_KEY
from regional.models import (
    AuditEntry,
    ConformanceRun,
    Department,
    Doctor,
    Hospital,
    HospitalCredential,
    InboundTransaction,
    MessageLog,
    PersonalDataReveal,
)
from regional.pii import mask


def secrets_page(
    request: HttpRequest,
    *,
    title: str,
    subject_label: str,
    secret_label: str,
    items: list[tuple[str, str]],
    back_url: str,
    back_label: str = "返回列表",
) -> HttpResponse:
    """A newly issued secret, shown on this one page and nowhere else.

    Never through `message_user`: Django's messages travel in a cookie that is signed but not
    encrypted, so a secret in a message could be read back from the browser or a proxy.
    """
    context = {
        **admin.site.each_context(request),
        "title": title,
        "subject_label": subject_label,
        "secret_label": secret_label,
        "items": items,
        "back_url": back_url,
        "back_label": back_label,
    }
    response = render(request, "admin/regional/secrets_once.html", context)
    response["Cache-Control"] = "no-store"
    return response


# Who is looking at the page being rendered (a ContextVar: the ModelAdmin is shared by every thread).
_viewer: ContextVar = ContextVar("personal_data_viewer", default=None)


def _forget_viewer(rendered) -> None:
    # set, not reset(token): the render may run in another context (ASGI); and return None, or
    # Django replaces the response by the callback's value.
    _viewer.set(None)


class RevealForm(forms.Form):
    reason = forms.CharField(
        label="查看原因",
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="例如：患者来电核对身份，工单号12345。原因与查看人、时间一并记录。",
        error_messages={"required": "请填写查看原因", "max_length": "查看原因不能超过300个字"},
    )


class PersonalDataAdminMixin:
    """Masked display of personal data, with a recorded reveal for users holding the permission.

    Declare `personal_fields = {"id_card": "id", "phone": "phone"}`; use `masked_<field>` in
    list_display/readonly_fields, and the change page gets a 查看完整信息 button per field. The button
    opens a form asking the reason (GET: nothing is shown or recorded); the value is shown only in
    the answer to that form's POST, which records who, when, which record and why.
    """

    personal_fields: dict[str, str] = {}

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "<path:object_id>/reveal/<str:field>/",
                self.admin_site.admin_view(self.reveal_view),
                name="{}_{}_reveal".format(*info),
            ),
            *super().get_urls(),
        ]

    def reveal_view(self, request: HttpRequest, object_id: str, field: str) -> HttpResponse:
        if field not in self.personal_fields or not request.user.has_perm("regional.reveal_personal_data"):
            raise PermissionDenied("无权查看完整个人信息")
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        obj = self.get_object(request, unquote(object_id))  # None for a malformed key, not a 500
        if obj is None:
            raise Http404("记录不存在")
        opts = self.model._meta
        form = RevealForm(request.POST if request.method == "POST" else None)
        value = None
        if form.is_valid():
            PersonalDataReveal.objects.create(
                user=request.user,
                model=opts.label,
                object_id=str(obj.pk),
                field=field,
                reason=form.cleaned_data["reason"],
            )
            value = getattr(obj, field)
        context = {
            **self.admin_site.each_context(request),
            "title": "查看完整个人信息",
            "opts": opts,
            "obj": obj,
            "masked": mask(getattr(obj, field, ""), self.personal_fields[field]),
            "label": opts.get_field(field).verbose_name,
            "form": form,
            "value": value,
            "change_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
        }
        response = render(request, "admin/regional/reveal.html", context)
        response["Cache-Control"] = "no-store"  # a revealed value stays out of every cache
        return response

    def changeform_view(self, request: HttpRequest, *args, **kwargs):
        return self._rendered_for(request, super().changeform_view, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args, **kwargs):
        return self._rendered_for(request, super().changelist_view, *args, **kwargs)

    def _rendered_for(self, request: HttpRequest, view, *args, **kwargs):
        # The columns are computed while the template renders, after the view has returned (and
        # subclasses add to its context first): the viewer stays known until the render is done,
        # so that `masked()` offers the button only to whoever may use it.
        token = _viewer.set(request.user)
        try:
            response = view(request, *args, **kwargs)
        except BaseException:
            _viewer.reset(token)
            raise
        if hasattr(response, "add_post_render_callback") and not response.is_rendered:
            response.add_post_render_callback(_forget_viewer)
        else:
            _viewer.reset(token)
        return response

    def masked(self, obj, field: str) -> str:
        value = getattr(obj, field, "")
        shown = mask(value, self.personal_fields[field])
        viewer = _viewer.get()
        if viewer is not None and not viewer.has_perm("regional.reveal_personal_data"):
            return shown
        if obj.pk and value:
            info = self.model._meta.app_label, self.model._meta.model_name
            url = reverse("admin:{}_{}_reveal".format(*info), args=[obj.pk, field])
            # A link to the form, never the reveal itself: following it shows and records nothing.
            return format_html('{} <a href="{}" class="button reveal">查看完整信息</a>', shown, url)
        return shown


class CredentialInline(admin.StackedInline):
    """Allow-list and on/off of a hospital's credential; the secret itself is issued by a button."""

    model = HospitalCredential
    can_delete = False
    fields = ("is_active", "allowed_networks", "secret_state", "rotated_at")
    readonly_fields = ("secret_state", "rotated_at")
    extra = 0

    @admin.display(description="接入密钥")
    def secret_state(self, obj: HospitalCredential) -> str:
        if obj is None or not obj.pk or not obj.secret_hash:
            return "未签发（保存后在本页下方“签发接入密钥”）"
        return "已签发（平台只保存摘要，无法再次查看；如遗失请重新生成）"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the services only: browse, never add, edit or delete here."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


_INTERFACE_FIELDS = (
    "endpoint_url",
    "wsdl_url",
    "soap_namespace",
    "soap_part_name",
    "soap_part_form",
    "soap_action_style",
    "soap_version",
    "soap_encoding",
    "interface_version",
)


class ConformanceRequestForm(forms.Form):
    """The optional test session a hospital names for the booking round (lock, pay, cancel)."""

    work_id = forms.CharField(label="测试排班号", max_length=36, required=False)
    # A text field, not <input type=date>: that one shows the browser's own mm/dd/yyyy to an English browser.
    work_date = forms.DateField(
        label="测试排班日期",
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"placeholder": "如 2026-12-03", "size": 12}),
    )


@admin.register(Hospital)
class HospitalAdmin(admin.ModelAdmin):
    list_display = (
        "hospital_no", "name", "level_display", "interface_address", "credential_state", "last_check", "health_link",
    )  # fmt: skip
    list_filter = ("is_deleted", "degree_name", "interface_version")
    search_fields = ("hospital_no", "name", "short_name")
    list_select_related = ("credential",)
    inlines = [CredentialInline]
    actions = ["rotate_secret"]
    change_form_template = "admin/regional/hospital/change_form.html"
    # Master data is the hospital's own (5.1); staff edit only the integration settings.
    master_fields = (
        "hospital_no", "name", "short_name", "degree_code", "degree_name", "phone", "address", "description",
        "website", "bus_route", "seq_no", "is_deleted", "created_at", "updated_at",
    )  # fmt: skip
    interface_fieldsets = (
        (
            "接口地址",
            {
                "fields": ("endpoint_url", "wsdl_url"),
                "description": "平台调用医院端接口（3.x、6.x）的地址；有WSDL时命名空间、参数名、SOAP版本以WSDL为准。",
            },
        ),
        (
            "报文格式（未配置WSDL时生效）",
            {"fields": ("soap_namespace", "soap_part_name", "soap_part_form", "soap_action_style", "soap_version")},
        ),
        ("编码与版本", {"fields": ("soap_encoding", "interface_version")}),
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:  # onboarding: the code and name, until the hospital's HospitalInfo replaces them
            return ("created_at", "updated_at")
        return self.master_fields

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (("机构信息", {"fields": ("hospital_no", "name", "short_name")}), *self.interface_fieldsets)
        master = (
            "机构信息（由医院通过HospitalInfo上传，只读）",
            {"fields": self.master_fields, "classes": ("collapse",)},
        )
        return (master, *self.interface_fieldsets)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/secret/",
                self.admin_site.admin_view(self.secret_view),
                name="regional_hospital_secret",
            ),
            path(
                "<path:object_id>/conformance/",
                self.admin_site.admin_view(self.conformance_view),
                name="regional_hospital_conformance",
            ),
            *super().get_urls(),
        ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = extra_context or {}
        if object_id:
            hospital = self.get_object(request, unquote(object_id))
            if hospital is not None:
                credential = HospitalCredential.objects.filter(hospital=hospital).first()
                extra_context.update(
                    can_issue_secret=request.user.has_perm("regional.change_hospitalcredential"),
                    has_secret=bool(credential and credential.secret_hash),
                    can_run_check=request.user.has_perm("regional.run_conformance"),
                    check_form=ConformanceRequestForm(),
                    runs=ConformanceRun.objects.filter(hospital=hospital).select_related("requested_by")[:20],
                    health_url=reverse("admin:regional_messagelog_health") + f"?hospital={hospital.pk}",
                )
        return super().changeform_view(request, object_id, form_url, extra_context)

    def secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Issue (or rotate) the hospital's secret: POST only, the new one shown on this page once."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("regional.change_hospitalcredential"):
            raise PermissionDenied
        hospital = self.get_object(request, unquote(object_id))
        if hospital is None:
            raise Http404("医院不存在")
        return self._issue_secrets(
            request, [hospital], back_url=reverse("admin:regional_hospital_change", args=[hospital.pk])
        )

    def conformance_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Queue a conformance run from the button and go to its page, which refreshes until done."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("regional.run_conformance"):
            raise PermissionDenied
        hospital = self.get_object(request, unquote(object_id))
        if hospital is None:
            raise Http404("医院不存在")
        back = reverse("admin:regional_hospital_change", args=[hospital.pk])
        form = ConformanceRequestForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "测试排班日期格式不正确", messages.ERROR)
            return HttpResponseRedirect(back)
        try:
            run = conformance_request(
                hospital=hospital,
                user=request.user,
                work_id=form.cleaned_data["work_id"].strip(),
                work_date=form.cleaned_data["work_date"],
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(back)
        self.log_change(request, hospital, "发起接入检查")
        return HttpResponseRedirect(reverse("admin:regional_conformancerun_change", args=[run.pk]))

    @admin.display(description="级别")
    def level_display(self, obj: Hospital) -> str:
        return {3: "三级", 2: "二级", 1: "一级"}.get(obj.level, "未知")

    @admin.display(description="医院端接口")
    def interface_address(self, obj: Hospital) -> str:
        return shortened(obj.wsdl_url or obj.endpoint_url, 28) or "未配置"

    @admin.display(description="接入密钥")
    def credential_state(self, obj: Hospital) -> str:
        credential = getattr(obj, "credential", None) if hasattr(obj, "credential") else None
        if credential is None or not credential.secret_hash:
            return "未签发"
        return "启用" if credential.is_active else "已停用"

    def get_queryset(self, request):
        # The latest run of each hospital in the list's one query, not one query per row.
        latest = ConformanceRun.objects.filter(hospital=OuterRef("pk")).order_by("-created_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_id=Subquery(latest.values("pk")[:1]), last_run_status=Subquery(latest.values("status")[:1])
            )
        )

    @admin.display(description="最近接入检查")
    def last_check(self, obj: Hospital) -> str:
        run_id = getattr(obj, "last_run_id", None)
        if run_id is None:
            return "未检查"
        url = reverse("admin:regional_conformancerun_change", args=[run_id])
        return format_html('<a href="{}">{}</a>', url, ConformanceRun.Status(obj.last_run_status).label)

    @admin.display(description="接口健康")
    def health_link(self, obj: Hospital) -> str:
        url = reverse("admin:regional_messagelog_health")
        return format_html('<a href="{}?hospital={}">查看</a>', url, obj.pk)

    @admin.action(description="重新生成接入密钥（新密钥只显示一次）", permissions=["change_credential"])
    def rotate_secret(self, request, queryset):
        return self._issue_secrets(request, list(queryset), back_url=reverse("admin:regional_hospital_changelist"))

    def has_change_credential_permission(self, request) -> bool:
        return request.user.has_perm("regional.change_hospitalcredential")

    def _issue_secrets(
        self, request, hospitals: list[Hospital], *, back_url: str, back_label: str = "返回列表"
    ) -> HttpResponse:
        issued = []
        for hospital in hospitals:
            # Through the service and the model's save (never queryset.update): a credential cache
            # invalidated on save sees the rotation, and the old secret stops working at once.
            secret = HospitalCredential.generate_secret()
            services.hospital_onboard(hospital_no=hospital.hospital_no, secret=secret)
            self.log_change(request, hospital, "签发接入密钥")
            issued.append((f"{hospital.hospital_no} {hospital.name}", secret))
        return secrets_page(
            request,
            title="新的医院接入密钥",
            subject_label="医院",
            secret_label="新密钥",
            items=issued,
            back_url=back_url,
            back_label=back_label,
        )


@admin.register(ConformanceRun)
class ConformanceRunAdmin(ReadOnlyAdmin):
    """Past and running conformance checks; a run's page is its result table, refreshed until done."""

    list_display = ("created_at", "hospital", "status_badge", "summary", "requested_by", "finished_at")
    list_filter = ("status", "hospital")
    list_select_related = ("hospital", "requested_by")
    change_form_template = "admin/regional/conformancerun/change_form.html"
    fields = (
        ("hospital", "status_badge"),
        ("endpoint", "work_id", "work_date"),
        ("created_at", "started_at", "finished_at", "requested_by"),
        "summary",
        "advice",
        "error",
    )
    readonly_fields = (
        "hospital", "status_badge", "endpoint", "work_id", "work_date", "created_at", "started_at", "finished_at",
        "requested_by", "summary", "advice", "error",
    )  # fmt: skip

    @admin.display(description="结果", ordering="status")
    def status_badge(self, obj: ConformanceRun) -> str:
        colour = {"passed": "#2e7d32", "failed": "#ba2121", "error": "#ba2121"}.get(obj.status, "#8a6d00")
        return format_html('<strong style="color:{}">{}</strong>', colour, obj.get_status_display())

    @admin.display(description="汇总")
    def summary(self, obj: ConformanceRun) -> str:
        if obj.is_pending:
            done = obj.checks.count()
            return f"已完成{done}项" if done else "等待开始"
        return f"共{obj.total}项：通过{obj.passed}，失败{obj.failed}，跳过{obj.skipped}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        extra_context = extra_context or {}
        if run is not None:
            from regional.interface_health import interface_title

            checks = list(run.checks.all())
            for check in checks:  # 号源锁定（confirmRegistration）: the catalogue's title with the name
                check.title = interface_title("hospital", check.operation)
            extra_context.update(
                run=run,
                checks=checks,
                refresh=run.is_pending,
                hospital_url=reverse("admin:regional_hospital_change", args=[run.hospital_id]),
            )
        return super().change_view(request, object_id, form_url, extra_context)


class ReadOnlyMasterData(admin.ModelAdmin):
    """Departments and doctors are the hospital's data (5.2, 5.3): browse, never edit here."""

    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ParentFilter(admin.SimpleListFilter):
    title = "层级"
    parameter_name = "tree"

    def lookups(self, request, model_admin):
        return [("root", "一级科室"), ("child", "下级科室")]

    def queryset(self, request, queryset):
        if self.value() == "root":
            return queryset.filter(parent__isnull=True)
        if self.value() == "child":
            return queryset.filter(parent__isnull=False)
        return queryset


@admin.register(Department)
class DepartmentAdmin(ReadOnlyMasterData):
    list_display = (
        "tree_name",
        "department_id",
        "hospital",
        "name_abbr",
        "is_outpatient",
        "is_hospitalization",
        "is_deleted",
    )
    list_filter = (ParentFilter, "is_outpatient", "is_hospitalization", "is_deleted", "hospital")
    search_fields = ("department_id", "name", "name_abbr", "hospital__hospital_no", "hospital__name")
    list_select_related = ("hospital", "parent")
    ordering = ("hospital", "parent_department_id", "seq_no", "department_id")

    @admin.display(description="科室（层级）", ordering="name")
    def tree_name(self, obj: Department) -> str:
        depth, node, seen = 0, obj, set()
        while node.parent_id and node.parent_id not in seen and depth < 6:
            seen.add(node.parent_id)
            depth += 1
            node = node.parent if depth == 1 else Department.objects.only("parent_id").get(pk=node.parent_id)
        return format_html('<span style="padding-left:{}em">{}{}</span>', depth * 1.5, "└ " if depth else "", obj.name)


@admin.register(Doctor)
class DoctorAdmin(ReadOnlyMasterData):
    list_display = ("name", "doctor_id", "hospital", "department", "title", "is_expert", "is_deleted")
    list_filter = ("is_expert", "is_deleted", "hospital")
    search_fields = ("doctor_id", "name", "name_abbr", "hospital__hospital_no", "department__name")
    list_select_related = ("hospital", "department")


class InterfaceFilter(admin.SimpleListFilter):
    """Filter by operation, listed by its Chinese title from the catalogue."""

    title = "接口"
    parameter_name = "interface"

    def lookups(self, request, model_admin):
        from regional.interface_health import interface_title

        names = {iface.name for iface in BY_KEY.values()}
        return sorted(((name, interface_title(None, name)) for name in names), key=lambda item: item[1])

    def queryset(self, request, queryset):
        return queryset.filter(interface=self.value()) if self.value() else queryset


@admin.register(MessageLog)
class MessageLogAdmin(admin.ModelAdmin):
    """The message browser: every inbound and outbound call, masked. Append-only: nobody deletes."""

    list_display = (
        "created_at",
        "direction",
        "interface_title",
        "hospital_code",
        "transaction_short",
        "ok",
        "duration_ms",
        "short_error",
    )
    list_filter = ("direction", "ok", "failure", "side", InterfaceFilter, "hospital", "created_at")
    search_fields = ("hospital_no", "transaction_id", "interface")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    readonly_fields = [f.name for f in MessageLog._meta.fields]
    fields = (
        ("created_at", "direction", "side", "interface_title"),
        ("hospital_no", "transaction_id", "remote_addr"),
        ("ok", "failure", "result_code", "duration_ms"),
        "error",
        "request_pretty",
        "response_pretty",
    )

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "interface_title", "request_pretty", "response_pretty"]

    def lookup_allowed(self, lookup, value, request=None):
        # The dashboard links here with a window and a set of failure kinds.
        if lookup in {"created_at__gte", "failure__in", "hospital__id__exact", "direction__exact"}:
            return True
        return super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the log is evidence of what was exchanged: append-only, for everyone

    def get_urls(self):
        return [
            path("health/", self.admin_site.admin_view(self.health_view), name="regional_messagelog_health"),
            *super().get_urls(),
        ]

    @admin.display(description="接口", ordering="interface")
    def interface_title(self, obj: MessageLog) -> str:
        # The Chinese title in the list (short), the operation's own name on hover and on the detail page.
        from regional.interface_health import interface_title

        full = interface_title(obj.side, obj.interface)
        short = full.split("（", 1)[0] if "（" in full else full
        return format_html('<span title="{}">{}</span>', full, shortened(short, 12) if short == full else short)

    @admin.display(description="医院", ordering="hospital_no")
    def hospital_code(self, obj: MessageLog) -> str:
        return shortened(obj.hospital_no, 10)

    @admin.display(description="访问流水号", ordering="transaction_id")
    def transaction_short(self, obj: MessageLog) -> str:
        return shortened(obj.transaction_id, 8)

    @admin.display(description="错误")
    def short_error(self, obj: MessageLog) -> str:
        return shortened(obj.error, 24)

    @admin.display(description="请求报文（已脱敏）")
    def request_pretty(self, obj: MessageLog) -> str:
        return format_html("<pre style='white-space:pre-wrap;max-width:100%'>{}</pre>", _pretty(obj.request_text))

    @admin.display(description="应答报文（已脱敏）")
    def response_pretty(self, obj: MessageLog) -> str:
        return format_html("<pre style='white-space:pre-wrap;max-width:100%'>{}</pre>", _pretty(obj.response_text))

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """The morning dashboard: per hospital and interface, calls, failures, the hospital's own
        invalid messages, p95 latency, last success, the circuit state and a trend."""
        from regional import interface_health

        if not self.has_view_permission(request):
            raise PermissionDenied  # the figures of every hospital are for the interface team only
        hours = _bounded_int(request.GET.get("hours"), default=24, low=1, high=HEALTH_MAX_HOURS)
        if hours is None:
            hours = 24
            messages.warning(request, f"时间范围应为1到{HEALTH_MAX_HOURS}之间的小时数，已按24小时显示")
        hospital_id = None
        if request.GET.get("hospital"):
            hospital_id = _bounded_int(request.GET["hospital"], default=0, low=1, high=2**31 - 1)
            if hospital_id is None:
                messages.warning(request, "医院参数无效，已显示全部医院")
        now = timezone.now()
        since = now - dt.timedelta(hours=hours)
        hospitals = interface_health.hospitals_health(since=since, hospital_id=hospital_id)
        points = interface_health.trend(since=since, until=now, hospital_id=hospital_id)
        selected = Hospital.objects.filter(pk=hospital_id).first() if hospital_id else None
        context = {
            **self.admin_site.each_context(request),
            "title": "接口健康"
            + (f"：{selected.name}（{selected.hospital_no}）" if selected else "")
            + f"（最近{interface_health.WINDOWS.get(hours, f'{hours}小时')}）",
            "hospitals": hospitals,
            "hours": hours,
            "window_label": interface_health.WINDOWS.get(hours, f"{hours}小时"),
            "windows": [
                (value, label, "?" + urlencode({"hours": value, **({"hospital": hospital_id} if hospital_id else {})}))
                for value, label in interface_health.WINDOWS.items()
            ],
            "selected": selected,
            "chart": interface_health.trend_svg(points),
            "broken": [h for h in hospitals if h.broken],
            "opts": self.model._meta,
        }
        return render(request, "admin/regional/health.html", context)


HEALTH_MAX_HOURS = 24 * 92  # a quarter: beyond it the message log is the place to look


def _bounded_int(raw: str | None, *, default: int, low: int, high: int) -> int | None:
    """A query parameter as an int within [low, high]; the default when absent, None when invalid."""
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    value = int(raw)
    return value if low <= value <= high else None


def _pretty(text: str) -> str:
    from lxml import etree

    try:
        root = etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
        return etree.tostring(root, encoding="unicode", pretty_print=True)
    except etree.XMLSyntaxError:
        return text


def _model_and_link(label: str, object_id: str) -> tuple[str, str]:
    """The Chinese name of a model label ("booking.Order" -> 预约订单) and the admin URL of the record."""
    from django.apps import apps
    from django.urls import NoReverseMatch

    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return label, ""
    try:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[object_id])
    except NoReverseMatch:
        url = ""
    return str(model._meta.verbose_name), url


class RecordColumnsMixin:
    """Chinese model names and a link to the record, for logs that store "app.Model" and a pk."""

    @admin.display(description="数据类型", ordering="model")
    def model_name(self, obj) -> str:
        return _model_and_link(obj.model, obj.object_id)[0]

    @admin.display(description="记录", ordering="object_id")
    def record_link(self, obj) -> str:
        _, url = _model_and_link(obj.model, obj.object_id)
        return format_html('<a href="{}">{}</a>', url, obj.object_id) if url and obj.object_id else obj.object_id


class ModelLabelFilter(admin.SimpleListFilter):
    """Filter by data type, shown by Chinese model name instead of "app.Model"."""

    title = "数据类型"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        labels = model_admin.model.objects.order_by().values_list("model", flat=True).distinct()
        return sorted(((label, _model_and_link(label, "")[0]) for label in labels), key=lambda item: item[1])

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


@admin.register(PersonalDataReveal)
class PersonalDataRevealAdmin(RecordColumnsMixin, ReadOnlyAdmin):
    list_display = ("revealed_at", "user", "model_name", "record_link", "field_name", "reason")

    @admin.display(description="字段", ordering="field")
    def field_name(self, obj: PersonalDataReveal) -> str:
        from django.apps import apps
        from django.core.exceptions import FieldDoesNotExist

        try:
            return str(apps.get_model(obj.model)._meta.get_field(obj.field).verbose_name)
        except (LookupError, ValueError, FieldDoesNotExist):
            return obj.field

    list_filter = (ModelLabelFilter, "revealed_at")
    search_fields = ("user__username", "object_id", "reason")


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordColumnsMixin, ReadOnlyAdmin):
    """Who changed what and when, with the values before and after (personal data masked)."""

    list_display = ("at", "actor", "action", "model_name", "record_link", "reason")
    list_filter = ("action", ModelLabelFilter, "at")
    search_fields = ("actor", "object_id", "model", "reason")
    date_hierarchy = "at"
    readonly_fields = (
        "at",
        "user",
        "actor",
        "action",
        "model_name",
        "record_link",
        "before_text",
        "after_text",
        "reason",
    )

    @admin.display(description="变更前")
    def before_text(self, obj: AuditEntry) -> str:
        return _audit_values(obj.model, obj.before)

    @admin.display(description="变更后")
    def after_text(self, obj: AuditEntry) -> str:
        return _audit_values(obj.model, obj.after)


def _audit_values(model_label: str, values: dict | None) -> str:
    """Recorded values as staff read them: each field by its Chinese name, a choice by its label."""
    from django.apps import apps
    from django.core.exceptions import FieldDoesNotExist
    from django.utils.html import format_html_join

    if not values:
        return "-"
    try:
        model = apps.get_model(model_label)
    except (LookupError, ValueError):
        model = None
    rows = []
    for name, value in values.items():
        label, shown = name, value
        try:
            field = model._meta.get_field(name) if model is not None else None
        except FieldDoesNotExist:
            field = None
        if field is not None:
            label = str(getattr(field, "verbose_name", name))
            choices = dict(getattr(field, "flatchoices", None) or ())
            if value in choices:
                shown = choices[value]
        if isinstance(shown, bool):
            shown = "是" if shown else "否"
        rows.append((label, "-" if shown in (None, "") else shown))
    return format_html_join("", "<div><strong>{}</strong>：<code>{}</code></div>", rows)


@admin.register(InboundTransaction)
class InboundTransactionAdmin(ReadOnlyAdmin):
    """TransactionIds already applied, kept to answer a repeat verbatim. Append-only."""

    list_display = ("created_at", "hospital", "transaction_short", "interface_title")
    search_fields = ("transaction_id", "hospital__hospital_no")
    list_filter = (InterfaceFilter,)
    list_select_related = ("hospital",)
    fields = ("created_at", "hospital", "transaction_id", "interface_title", "body_hash")
    readonly_fields = fields

    @admin.display(description="访问流水号", ordering="transaction_id")
    def transaction_short(self, obj: InboundTransaction) -> str:
        return shortened(obj.transaction_id, 12)

    @admin.display(description="接口", ordering="interface")
    def interface_title(self, obj: InboundTransaction) -> str:
        from regional.interface_health import interface_title

        return interface_title(None, obj.interface)


def login_name(raw: str) -> str:
    """The user name as Django's login form reads it (stripped, NFKC), case-folded: every spelling
    that can log in to one account counts against that account."""
    import unicodedata

    return unicodedata.normalize("NFKC", raw.strip())[:150].casefold()


def _locked_page(request: HttpRequest, *, seconds: int, unavailable: bool = False) -> HttpResponse:
    minutes, rest = divmod(max(seconds, 1), 60)
    wait = f"{minutes}分{rest}秒" if minutes else f"{rest}秒"
    context = {**admin.site.each_context(request), "title": "暂时无法登录", "wait": wait, "unavailable": unavailable}
    response = render(request, "admin/regional/login_locked.html", context, status=503 if unavailable else 429)
    response["Retry-After"] = str(seconds)
    return response


def _throttled_login(view):
    """Admin login with a lock-out after repeated failures: per account from one address
    (LOGIN_MAX_FAILURES) and per address over all accounts (four times that). It fails closed:
    while the counters in Redis cannot be reached, nobody logs in with a password."""
    from functools import wraps

    from django.conf import settings

    from regional import ratelimit
    from regional.auth import client_address

    @wraps(view)
    def login(request, extra_context=None):
        if request.method != "POST":
            return view(request, extra_context)
        window = settings.LOGIN_LOCKOUT_MINUTES * 60
        address = client_address(request)
        limits = (
            (f"login:{address}:{login_name(request.POST.get('username', ''))}", settings.LOGIN_MAX_FAILURES),
            (f"login-address:{address}", settings.LOGIN_MAX_FAILURES * 4),
        )
        try:
            if any(ratelimit.strict_hits(key, window=window) >= limit for key, limit in limits):
                return _locked_page(request, seconds=ratelimit.retry_after(window))
            response = view(request, extra_context)
            if response.status_code == 200:  # the form came back: wrong credentials
                for key, _ in limits:
                    ratelimit.strict_hits(key, window=window, add=1)
        except ratelimit.LimiterUnavailable:
            return _locked_page(request, seconds=30, unavailable=True)
        return response

    return login


admin.site.login = _throttled_login(admin.site.login)
