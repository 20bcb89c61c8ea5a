"""The finance staff's admin (财务对账): bill sources, bills (upload, fetch), runs (reconcile now,
re-run, export to CSV and Excel), discrepancies (explain or correct, with why), the payment ledger
with totals, and the monthly summary per hospital with its chart. Everything beyond editing a
source goes through `reconciliation.services`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from booking.models import LedgerEntry
from reconciliation import charts, exports, selectors, services
from reconciliation.forms import FetchForm, ReconcileForm, ResolveForm, StatementSourceForm, UploadForm
from reconciliation.models import (
    Discrepancy,
    LedgerEntryRecord,
    ReconciliationRun,
    Statement,
    StatementImport,
    StatementLine,
    StatementSource,
)
from regional.admin import PersonalDataAdminMixin, ReadOnlyAdmin
from regional.admin_display import shortened
from regional.errors import DomainError
from regional.models import Hospital

ZERO = Decimal("0.00")


def _context(model_admin: admin.ModelAdmin, request: HttpRequest, **extra) -> dict:
    return {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, **extra}


def _money(value) -> str:
    return f"{(value or ZERO):,.2f}"


# -- sources and bills --------------------------------------------------------------------------------


@admin.register(StatementSource)
class StatementSourceAdmin(admin.ModelAdmin):
    form = StatementSourceForm
    list_display = ("name", "pay_channel", "merchant_id", "adapter", "is_active", "last_fetched_at", "last_error")
    list_filter = ("pay_channel", "adapter", "is_active")
    readonly_fields = ("last_fetched_at", "last_error", "secret_state")
    fieldsets = (
        (None, {"fields": ("name", "pay_channel", "merchant_id", "is_active")}),
        ("获取方式", {"fields": ("adapter", "url", "username", "secret", "secret_state", "timeout_seconds")}),
        ("沙箱渠道", {"fields": ("sandbox_options",), "classes": ("collapse",)}),
        ("最近获取", {"fields": ("last_fetched_at", "last_error")}),
    )

    @admin.display(description="密钥状态")
    def secret_state(self, obj: StatementSource) -> str:
        return "已设置（加密保存）" if obj.secret_encrypted else "未设置"


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    change_list_template = "reconciliation/admin/statement_change_list.html"
    list_display = ("bill_date", "pay_channel", "payments", "refunds", "lines_link", "origin", "imported_at")
    ordering = ("-bill_date", "pay_channel")
    list_filter = ("pay_channel", "origin", ("bill_date", admin.DateFieldListFilter))
    date_hierarchy = "bill_date"
    list_select_related = ("imported_by",)
    fields = (
        "source", "pay_channel", "bill_date", "layout", "encoding", "account", "filename", "sha256", "size", "origin",
        "line_count", "payment_count", "payment_total", "refund_count", "refund_total", "imported_at", "imported_by",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="支付", ordering="payment_total")
    def payments(self, obj: Statement) -> str:
        return f"{obj.payment_count}笔 {_money(obj.payment_total)}元"

    @admin.display(description="退款", ordering="refund_total")
    def refunds(self, obj: Statement) -> str:
        return f"{obj.refund_count}笔 {_money(obj.refund_total)}元"

    @admin.display(description="明细")
    def lines_link(self, obj: Statement) -> str:
        url = reverse("admin:reconciliation_statementline_changelist") + f"?statement__id__exact={obj.pk}"
        return format_html('<a href="{}">查看{}笔</a>', url, obj.line_count)

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="reconciliation_statement_upload"),
            path("fetch/", self.admin_site.admin_view(self.fetch_view), name="reconciliation_statement_fetch"),
            *super().get_urls(),
        ]

    def _may_import(self, request: HttpRequest) -> None:
        if not request.user.has_perm("reconciliation.add_statement"):
            raise PermissionDenied

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """Finance staff upload a bill downloaded from the provider's merchant platform."""
        self._may_import(request)
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                job = services.statement_upload_request(
                    source=data["source"],
                    bill_date=data["bill_date"],
                    file=data["file"].file,
                    filename=data["file"].name,
                    user=request.user,
                )
            except DomainError as exc:
                form.add_error("file", exc.message)
            else:
                return _to_import(job)
        return TemplateResponse(
            request,
            "reconciliation/admin/form.html",
            _context(self, request, title="上传对账单", form=form, multipart=True, submit="上传并导入"),
        )

    def fetch_view(self, request: HttpRequest) -> HttpResponse:
        """Fetch one day's bill from a source's adapter now (the nightly task does it every day)."""
        self._may_import(request)
        form = FetchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = services.statement_fetch_request(
                    source=form.cleaned_data["source"], bill_date=form.cleaned_data["bill_date"], user=request.user
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                return _to_import(job)
        return TemplateResponse(
            request,
            "reconciliation/admin/form.html",
            _context(self, request, title="从渠道获取对账单", form=form, submit="获取并导入"),
        )


def _to_import(job: StatementImport) -> HttpResponseRedirect:
    """The import's own page, which follows it until it is done."""
    return HttpResponseRedirect(reverse("admin:reconciliation_statementimport_change", args=[job.pk]))


@admin.register(StatementImport)
class StatementImportAdmin(ReadOnlyAdmin):
    """Bill imports (uploads and fetches) and their progress; each runs as a background task."""

    change_form_template = "reconciliation/admin/import_change_form.html"
    list_display = (
        "created_at", "bill_date", "source", "kind", "status_display", "rows_read", "statement_link", "short_error",
    )  # fmt: skip
    list_filter = ("status", "kind", "source")
    list_select_related = ("source", "statement", "created_by")
    ordering = ("-created_at",)
    fields = (
        "source", "bill_date", "kind", "filename", "size", "status", "phase", "rows_read", "statement_link",
        "replaced", "error", "created_by", "created_at", "started_at", "finished_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="状态", ordering="status")
    def status_display(self, obj: StatementImport) -> str:
        colours = {"done": "#2e7d32", "failed": "#ba2121", "running": "#b26a00", "queued": "#666"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.status, "inherit"), obj.get_status_display())

    @admin.display(description="对账单")
    def statement_link(self, obj: StatementImport) -> str:
        if not obj.statement_id:
            return "-"
        url = reverse("admin:reconciliation_statementline_changelist") + f"?statement__id__exact={obj.statement_id}"
        return format_html('<a href="{}">{}（{}笔明细）</a>', url, obj.statement, obj.statement.line_count)

    @admin.display(description="错误")
    def short_error(self, obj: StatementImport) -> str:
        return shortened(obj.error, 24) if obj.error else "-"


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnlyAdmin):
    list_display = (
        "bill_date", "line_no", "pay_channel", "kind", "batch", "pay_trade_no", "refund_no", "amount", "occurred_at",
        "status", "hospital",
    )  # fmt: skip
    list_filter = ("pay_channel", "kind", ("bill_date", admin.DateFieldListFilter), "hospital")
    search_fields = ("=batch", "=pay_trade_no", "=refund_no")
    search_help_text = "按交易流水号、渠道交易号或退款单号精确搜索"
    list_select_related = ("hospital",)
    list_per_page = 100
    ordering = ("-statement", "line_no")  # the (statement, line_no) index


# -- runs ----------------------------------------------------------------------------------------------


class DiscrepancyInline(admin.TabularInline):
    model = Discrepancy
    fields = ("day", "type", "entry_kind", "batch", "ledger_amount", "statement_amount", "difference", "status")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "本批次发现的差异（前50条，全部见差异列表）"

    def get_queryset(self, request):
        queryset = super().get_queryset(request).order_by("day", "type", "batch")
        ids = list(queryset.values_list("pk", flat=True)[:50])
        return queryset.filter(pk__in=ids)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    change_list_template = "reconciliation/admin/run_change_list.html"
    change_form_template = "reconciliation/admin/run_change_form.html"
    # Scope (hospital, channel), trigger and counts are on the run's page and in the filters.
    list_display = (
        "__str__", "status_display", "result_display", "ledger_net_display", "statement_net_display",
        "discrepancies_link", "finished_at",
    )  # fmt: skip
    ordering = ("-created_at", "-pk")
    list_filter = ("status", "result", "trigger", "pay_channel", ("date_from", admin.DateFieldListFilter), "hospital")
    list_select_related = ("hospital", "started_by")
    actions = ["rerun"]
    inlines = [DiscrepancyInline]
    fieldsets = (
        ("范围", {"fields": ("date_from", "date_to", "hospital", "pay_channel", "hospital_check")}),
        (
            "执行",
            {
                "fields": (
                    "trigger",
                    "started_by",
                    "status",
                    "result",
                    "phase",
                    "checks_done",
                    "checks_total",
                    "rows_read",
                    "created_at",
                    "started_at",
                    "finished_at",
                )  # fmt: skip
            },
        ),
        (
            "平台流水",
            {"fields": ("ledger_payment_count", "ledger_payment_total", "ledger_refund_count", "ledger_refund_total")},
        ),
        (
            "渠道对账单",
            {
                "fields": (
                    "statement_payment_count",
                    "statement_payment_total",
                    "statement_refund_count",
                    "statement_refund_total",
                    "missing_statements",
                )  # fmt: skip
            },
        ),
        (
            "结果",
            {
                "fields": (
                    "matched_count",
                    "discrepancy_count",
                    "resolved_count",
                    "hospital_checked",
                    "hospital_unchecked",
                    "note",
                )  # fmt: skip
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ReconciliationRun._meta.fields]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="状态", ordering="status")
    def status_display(self, obj: ReconciliationRun) -> str:
        if obj.in_progress and obj.checks_total:
            return f"{obj.get_status_display()}（{obj.checks_done}/{obj.checks_total}）"
        return obj.get_status_display()

    @admin.display(description="结果", ordering="result")
    def result_display(self, obj: ReconciliationRun) -> str:
        colours = {"balanced": "#2e7d32", "discrepancies": "#ba2121", "incomplete": "#b26a00", "failed": "#ba2121"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.result, "inherit"), obj.get_result_display())

    @admin.display(description="平台净额")
    def ledger_net_display(self, obj: ReconciliationRun) -> str:
        return _money(obj.ledger_net)

    @admin.display(description="渠道净额")
    def statement_net_display(self, obj: ReconciliationRun) -> str:
        return _money(obj.statement_net)

    @admin.display(description="差异", ordering="discrepancy_count")
    def discrepancies_link(self, obj: ReconciliationRun) -> str:
        url = reverse("admin:reconciliation_discrepancy_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.discrepancy_count)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("reconcile/", view(self.reconcile_view), name="reconciliation_run_reconcile"),
            path("monthly/", view(self.monthly_view), name="reconciliation_run_monthly"),
            path("<int:pk>/export.csv", view(self.export_csv), name="reconciliation_run_export_csv"),
            path("<int:pk>/export.xlsx", view(self.export_xlsx), name="reconciliation_run_export_xlsx"),
            *super().get_urls(),
        ]

    def reconcile_view(self, request: HttpRequest) -> HttpResponse:
        """对账: a date range, a hospital or all, a channel or all; queued for the worker."""
        if not request.user.has_perm("reconciliation.run_reconciliation"):
            raise PermissionDenied
        form = ReconcileForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = services.reconciliation_request(
                    date_from=data["date_from"],
                    date_to=data["date_to"],
                    hospital=data["hospital"],
                    pay_channel=data["pay_channel"],
                    hospital_check=data["hospital_check"],
                    fetch=data["fetch"],
                    user=request.user,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                run.refresh_from_db()
                self.message_user(request, f"已发起{run}：{run.get_status_display()}", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]))
        return TemplateResponse(
            request,
            "reconciliation/admin/form.html",
            _context(
                self,
                request,
                title="立即对账",
                form=form,
                submit="开始对账",
                intro="对所选日期逐日核对平台支付流水与渠道对账单，并向医院查询状态不一致的订单。"
                "重新对账会替换这些日期未处理的差异，已处理的差异保留。",
            ),
        )

    @admin.action(description="重新对账所选批次的日期范围")
    def rerun(self, request: HttpRequest, queryset) -> None:
        if not request.user.has_perm("reconciliation.run_reconciliation"):
            raise PermissionDenied
        started = []
        for run in queryset:
            try:
                new = services.reconciliation_request(
                    date_from=run.date_from,
                    date_to=run.date_to,
                    hospital=run.hospital,
                    pay_channel=run.pay_channel,
                    hospital_check=run.hospital_check,
                    user=request.user,
                )
            except DomainError as exc:
                self.message_user(request, f"{run}：{exc.message}", messages.ERROR)
            else:
                started.append(f"#{new.pk}")
        if started:
            self.message_user(request, f"已重新发起对账：{'、'.join(started)}", messages.SUCCESS)

    def _export(self, request: HttpRequest, pk: int) -> ReconciliationRun:
        if not request.user.has_perm("reconciliation.export_reconciliation"):
            raise PermissionDenied
        return get_object_or_404(ReconciliationRun, pk=pk)

    def export_csv(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._export(request, pk)
        response = HttpResponse(exports.as_csv(run), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="reconciliation-{run.pk}.csv"'
        return response

    def export_xlsx(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._export(request, pk)
        response = HttpResponse(
            exports.as_xlsx(run), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        response["Content-Disposition"] = f'attachment; filename="reconciliation-{run.pk}.xlsx"'
        return response

    def monthly_view(self, request: HttpRequest) -> HttpResponse:
        """Per month and hospital: registrations, paid, refunded, net; and the year's chart."""
        if not request.user.has_perm("reconciliation.view_reconciliationrun"):
            raise PermissionDenied
        today = timezone.localdate()
        try:
            year = int(request.GET.get("year") or today.year)
        except ValueError:
            year = today.year
        hospital = Hospital.objects.filter(pk=request.GET.get("hospital") or None).first()
        rows = selectors.monthly_summary(year=year, hospital=hospital)
        months = []
        for month in range(1, 13):
            these = [r for r in rows if timezone.localtime(r["month"]).month == month] if rows else []
            paid = sum((r["paid"] for r in these), ZERO)
            refunded = sum((r["refunded"] for r in these), ZERO)
            months.append(
                {
                    "label": f"{month}月",
                    "month": month,
                    "rows": these,
                    "bookings": sum(r["bookings"] for r in these),
                    "payments": sum(r["payments"] for r in these),
                    "refunds": sum(r["refunds"] for r in these),
                    "paid": paid,
                    "refunded": refunded,
                    "net": paid - refunded,
                }
            )
        totals = {
            key: sum((m[key] for m in months), ZERO if key in ("paid", "refunded", "net") else 0)
            for key in ("bookings", "payments", "refunds", "paid", "refunded", "net")
        }
        context = _context(
            self,
            request,
            title=f"{year}年月度汇总" + (f"（{hospital.name}）" if hospital else ""),
            year=year,
            years=list(range(today.year - 4, today.year + 1)),
            hospital=hospital,
            hospitals=Hospital.objects.filter(is_deleted=False).order_by("hospital_no"),
            months=months,
            totals=totals,
            chart=charts.monthly_bars(months),
        )
        return TemplateResponse(request, "reconciliation/admin/monthly.html", context)


# -- discrepancies -------------------------------------------------------------------------------------


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    change_list_template = "reconciliation/admin/discrepancy_change_list.html"
    # The money and the state first: they must fit 1366 px (long trade numbers shortened, whole on hover).
    # (Hospital, channel, the hospital's status and who resolved it: on the detail page and in the filters.)
    list_display = (
        "day", "short_type", "short_batch", "ledger_amount", "statement_amount", "difference_display", "status_display",
    )  # fmt: skip
    list_display_links = ("day", "short_batch")
    ordering = ("status", "-day", "type", "batch")  # open ones first, newest day first
    list_filter = ("status", "type", "pay_channel", ("day", admin.DateFieldListFilter), "hospital")
    search_fields = ("=batch", "=pay_trade_no")
    search_help_text = "按交易流水号或渠道交易号精确搜索"
    list_select_related = ("hospital", "resolved_by", "run")
    date_hierarchy = "day"
    actions = ["explain", "correct"]
    change_form_template = "reconciliation/admin/discrepancy_change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Discrepancy._meta.fields] + ["order_link"]

    def get_fields(self, request, obj=None):
        return [
            "day", "type", "entry_kind", "pay_channel", "hospital", "batch", "pay_trade_no", "order_link",
            "ledger_amount", "statement_amount", "difference", "hospital_status", "detail", "run", "created_at",
            "status", "resolution", "resolved_by", "resolved_at",
        ]  # fmt: skip

    @admin.display(description="差异类型", ordering="type")
    def short_type(self, obj: Discrepancy) -> str:
        return shortened(obj.get_type_display(), 12)

    @admin.display(description="交易流水号", ordering="batch")
    def short_batch(self, obj: Discrepancy) -> str:
        return shortened(obj.batch, 12)

    @admin.display(description="差额", ordering="difference")
    def difference_display(self, obj: Discrepancy) -> str:
        # The header stays short to fit; the sign's meaning is on hover (and in the totals line).
        return format_html('<span title="平台−渠道">{}</span>', obj.difference)

    @admin.display(description="处理状态", ordering="status")
    def status_display(self, obj: Discrepancy) -> str:
        colour = "#ba2121" if obj.status == Discrepancy.Status.OPEN else "#2e7d32"
        return format_html('<b style="color:{}">{}</b>', colour, obj.get_status_display())

    @admin.display(description="订单")
    def order_link(self, obj: Discrepancy) -> str:
        if not obj.order_id:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:booking_order_change", args=[obj.order_id]), obj.batch)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if hasattr(response, "context_data") and "cl" in response.context_data:
            queryset = response.context_data["cl"].queryset
            response.context_data["totals"] = queryset.aggregate(
                count=Count("id"), open=Count("id", filter=Q(status="open")), difference=Sum("difference")
            )
        return response

    def get_urls(self):
        return [
            path("resolve/", self.admin_site.admin_view(self.resolve_view), name="reconciliation_discrepancy_resolve"),
            *super().get_urls(),
        ]

    def _resolve_redirect(self, queryset, status: str) -> HttpResponseRedirect:
        ids = ",".join(str(pk) for pk in queryset.filter(status="open").values_list("pk", flat=True)[:500])
        return HttpResponseRedirect(reverse("admin:reconciliation_discrepancy_resolve") + f"?ids={ids}&status={status}")

    @admin.action(description="标记为已说明…（需填写原因）", permissions=["resolve"])
    def explain(self, request, queryset):
        return self._resolve_redirect(queryset, Discrepancy.Status.EXPLAINED)

    @admin.action(description="标记为已更正…（需填写处理情况）", permissions=["resolve"])
    def correct(self, request, queryset):
        return self._resolve_redirect(queryset, Discrepancy.Status.CORRECTED)

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.resolve_discrepancy")

    def resolve_view(self, request: HttpRequest) -> HttpResponse:
        """Explain or correct one or more open discrepancies, with the reason, through the service."""
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        raw = request.POST.get("ids") or request.GET.get("ids") or ""
        ids = [int(x) for x in raw.split(",") if x.strip().isdigit()]
        selected = Discrepancy.objects.filter(pk__in=ids).select_related("hospital").order_by("day", "batch")
        form = ResolveForm(request.POST or None, initial={"status": request.GET.get("status") or "explained"})
        if request.method == "POST" and form.is_valid():
            try:
                done, skipped = services.discrepancies_resolve(
                    discrepancies=selected,
                    status=form.cleaned_data["status"],
                    reason=form.cleaned_data["reason"],
                    user=request.user,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                note = f"，{skipped}条此前已处理，未改动" if skipped else ""
                self.message_user(request, f"已处理{done}条差异{note}", messages.SUCCESS)
                if len(ids) == 1:  # resolved from its own page: back to it, showing the resolution
                    return HttpResponseRedirect(reverse("admin:reconciliation_discrepancy_change", args=ids))
                return HttpResponseRedirect(reverse("admin:reconciliation_discrepancy_changelist"))
        return TemplateResponse(
            request,
            "reconciliation/admin/resolve.html",
            _context(self, request, title="处理对账差异", form=form, selected=selected, ids=",".join(map(str, ids))),
        )


# -- the ledger, for finance -----------------------------------------------------------------------------


class LedgerDayFilter(admin.SimpleListFilter):
    title = "交易日期"
    parameter_name = "day"

    def lookups(self, request, model_admin):
        return [("yesterday", "昨天"), ("today", "今天"), ("7", "最近7天"), ("month", "本月")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        ranges = {
            "today": (today, today),
            "yesterday": (today - dt.timedelta(days=1), today - dt.timedelta(days=1)),
            "7": (today - dt.timedelta(days=6), today),
            "month": (today.replace(day=1), today),
        }
        if self.value() not in ranges:
            return queryset
        start, end = selectors.day_bounds(*ranges[self.value()])
        return queryset.filter(created_at__gte=start, created_at__lt=end)


@admin.register(LedgerEntryRecord)
class LedgerEntryRecordAdmin(PersonalDataAdminMixin, ReadOnlyAdmin):
    """The payment ledger with its totals, filtered as finance needs (read-only, append-only)."""

    change_list_template = "reconciliation/admin/ledger_change_list.html"
    personal_fields = {"patient_name": "name"}
    list_display = (
        "created_at", "batch", "pay_trade_no", "type", "kind", "signed_amount", "hospital", "channel", "pay_channel",
        "masked_patient_name",
    )  # fmt: skip
    list_filter = (LedgerDayFilter, "pay_channel", "kind", "type", "channel", "hospital")
    search_fields = ("=batch", "=pay_trade_no")
    search_help_text = "按交易流水号或支付交易号精确搜索"
    date_hierarchy = "created_at"
    list_select_related = ("hospital", "channel")
    ordering = ("-created_at", "-pk")
    fields = (
        "batch", "pay_trade_no", "type", "kind", "amount", "hospital", "order", "channel", "pay_channel",
        "masked_patient_name", "reason", "created_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="金额（元）", ordering="amount")
    def signed_amount(self, obj: LedgerEntry) -> str:
        return f"{'-' if obj.kind == LedgerEntry.REFUND else ''}{obj.amount:.2f}"

    @admin.display(description="患者姓名")
    def masked_patient_name(self, obj: LedgerEntry) -> str:
        return self.masked(obj, "patient_name")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if hasattr(response, "context_data") and "cl" in response.context_data:
            queryset = response.context_data["cl"].queryset.order_by()
            totals = queryset.aggregate(
                payments=Count("id", filter=Q(kind=LedgerEntry.PAYMENT)),
                paid=Sum("amount", filter=Q(kind=LedgerEntry.PAYMENT)),
                refunds=Count("id", filter=Q(kind=LedgerEntry.REFUND)),
                refunded=Sum("amount", filter=Q(kind=LedgerEntry.REFUND)),
            )
            totals["paid"] = totals["paid"] or ZERO
            totals["refunded"] = totals["refunded"] or ZERO
            totals["net"] = totals["paid"] - totals["refunded"]
            response.context_data["totals"] = totals
        return response
