"""The regional staff's admin for master data, credentials and the interface message log."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from regional import services
from regional.models import (
    AuditEntry,
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
    model = HospitalCredential
    can_delete = False
    fields = ("is_active", "allowed_networks", "rotated_at")
    readonly_fields = ("rotated_at",)
    extra = 0


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the services only: browse, never add, edit or delete here."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Hospital)
class HospitalAdmin(admin.ModelAdmin):
    list_display = ("hospital_no", "name", "degree_name", "level_display", "endpoint_url", "is_deleted", "health_link")
    list_filter = ("is_deleted", "degree_name", "interface_version")
    search_fields = ("hospital_no", "name", "short_name")
    inlines = [CredentialInline]
    actions = ["rotate_secret"]
    # Master data is the hospital's own (5.1); staff edit only the integration settings.
    readonly_fields = (
        "hospital_no", "name", "short_name", "degree_code", "degree_name", "phone", "address", "description",
        "website", "bus_route", "seq_no", "is_deleted", "created_at", "updated_at",
    )  # fmt: skip
    fieldsets = (
        ("机构信息（由医院通过HospitalInfo上传）", {"fields": readonly_fields}),
        (
            "接口设置",
            {
                "fields": (
                    "endpoint_url",
                    "wsdl_url",
                    "soap_namespace",
                    "soap_part_name",
                    "soap_part_form",
                    "soap_action_style",
                    "soap_version",
                    "soap_encoding",
                    "interface_version",
                )  # fmt: skip
            },
        ),
    )

    def has_add_permission(self, request):
        return False  # onboarding goes through `manage.py hospital_credentials`

    @admin.display(description="级别")
    def level_display(self, obj: Hospital) -> str:
        return {3: "三级", 2: "二级", 1: "一级"}.get(obj.level, "未知")

    @admin.display(description="接口健康")
    def health_link(self, obj: Hospital) -> str:
        url = reverse("admin:regional_messagelog_health")
        return format_html('<a href="{}?hospital={}">查看</a>', url, obj.pk)

    @admin.action(description="重新生成接入密钥（新密钥只显示一次）")
    def rotate_secret(self, request, queryset):
        issued = []
        for hospital in queryset:
            secret = HospitalCredential.generate_secret()
            services.hospital_onboard(hospital_no=hospital.hospital_no, secret=secret)
            self.log_change(request, hospital, "重新生成接入密钥")
            issued.append((f"{hospital.hospital_no} {hospital.name}", secret))
        return secrets_page(
            request,
            title="新的医院接入密钥",
            subject_label="医院",
            secret_label="新密钥",
            items=issued,
            back_url=reverse("admin:regional_hospital_changelist"),
        )


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


@admin.register(MessageLog)
class MessageLogAdmin(admin.ModelAdmin):
    """The message browser: every inbound and outbound call, masked."""

    list_display = (
        "created_at",
        "direction",
        "interface",
        "hospital_no",
        "transaction_id",
        "ok",
        "duration_ms",
        "short_error",
    )
    list_filter = ("direction", "ok", "side", "interface", "created_at")
    search_fields = ("hospital_no", "transaction_id", "interface")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    readonly_fields = [f.name for f in MessageLog._meta.fields]
    fields = (
        ("created_at", "direction", "side", "interface"),
        ("hospital_no", "transaction_id", "remote_addr"),
        ("ok", "result_code", "duration_ms"),
        "error",
        "request_pretty",
        "response_pretty",
    )

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "request_pretty", "response_pretty"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("health/", self.admin_site.admin_view(self.health_view), name="regional_messagelog_health"),
            *super().get_urls(),
        ]

    @admin.display(description="错误")
    def short_error(self, obj: MessageLog) -> str:
        return obj.error[:60]

    @admin.display(description="请求报文（已脱敏）")
    def request_pretty(self, obj: MessageLog) -> str:
        return format_html("<pre style='white-space:pre-wrap;max-width:100%'>{}</pre>", _pretty(obj.request_text))

    @admin.display(description="应答报文（已脱敏）")
    def response_pretty(self, obj: MessageLog) -> str:
        return format_html("<pre style='white-space:pre-wrap;max-width:100%'>{}</pre>", _pretty(obj.response_text))

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """Per hospital: calls, error rate and last success, over a chosen window."""
        if not self.has_view_permission(request):
            raise PermissionDenied  # the figures of every hospital are for the interface team only
        hours = _bounded_int(request.GET.get("hours"), default=24, low=1, high=HEALTH_MAX_HOURS)
        if hours is None:
            hours = 24
            messages.warning(request, f"时间范围应为1到{HEALTH_MAX_HOURS}之间的小时数，已按24小时显示")
        since = timezone.now() - dt.timedelta(hours=hours)
        logs = MessageLog.objects.filter(created_at__gte=since)
        if request.GET.get("hospital"):
            hospital = _bounded_int(request.GET["hospital"], default=0, low=1, high=2**31 - 1)
            if hospital is None:
                messages.warning(request, "医院参数无效，已显示全部医院")
            else:
                logs = logs.filter(hospital_id=hospital)
        rows = (
            logs.values("hospital_no", "direction")
            .annotate(
                calls=Count("id"),
                errors=Count("id", filter=Q(ok=False)),
                last_call=Max("created_at"),
                last_success=Max("created_at", filter=Q(ok=True)),
            )
            .order_by("hospital_no", "direction")
        )
        table = []
        for row in rows:
            row["error_rate"] = round(100 * row["errors"] / row["calls"], 1) if row["calls"] else 0
            row["direction_label"] = dict(MessageLog._meta.get_field("direction").choices)[row["direction"]]
            table.append(row)
        context = {
            **self.admin_site.each_context(request),
            "title": "接口健康",
            "rows": table,
            "hours": hours,
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
    readonly_fields = ("at", "user", "actor", "action", "model_name", "record_link", "before", "after", "reason")


@admin.register(InboundTransaction)
class InboundTransactionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "hospital", "transaction_id", "interface")
    search_fields = ("transaction_id", "hospital__hospital_no")
    list_filter = ("interface",)
    list_select_related = ("hospital",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
