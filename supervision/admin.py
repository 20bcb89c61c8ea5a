"""The commission's pages in the admin: the dashboard (监管指标看板) with its charts, the printable
monthly report (HTML, Excel, CSV), the drill-down lists of the records behind each figure, the
outpatient capacity staff enter and the import of monthly outpatient visit totals."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from referral import selectors as referral_selectors
from regional.admin_display import shortened
from regional.messages.catalog import ALL_INTERFACES
from regional.models import Department, Doctor, Hospital
from supervision import charts, reports, selectors, services
from supervision.definitions import (
    INDICATORS,
    MESSAGE_FIGURES,
    ORDER_FIGURES,
    REFERRAL_BY_SENDER,
    SCHEDULE_FIGURES,
    orders_annotated,
    referral_figures,
    schedules_annotated,
)
from supervision.models import (
    Dashboard,
    OutpatientCapacity,
    OutpatientVisits,
    StatsRun,
    SupervisedMessage,
    SupervisedOrder,
    SupervisedReferral,
    SupervisedSchedule,
)

DRILL_MODELS = {
    "order": "supervisedorder",
    "schedule": "supervisedschedule",
    "referral": "supervisedreferral",
    "message": "supervisedmessage",
}
# Indicators in the hospital table of the region's page (the full table is in the report).
TABLE_CODES = (
    "published", "bookings", "lock_success", "visit_rate", "no_show_rate", "cancel_rate", "stop_rate",
    "stop_affected", "timeshare_rate", "appointment_rate", "referral_up", "referral_timely", "availability",
    "latency_p95", "refused_rate",
)  # fmt: skip


class Links:
    """The drill-down URLs of one period: each list reversed once, then one string per figure
    (a year of the region has some 4,500 figures on one page)."""

    def __init__(self, period: selectors.Period):
        self.bases = {kind: reverse(f"admin:supervision_{name}_changelist") for kind, name in DRILL_MODELS.items()}
        self.dates = urlencode({"from": period.start.isoformat(), "to": period.end.isoformat()})

    def url(self, kind: str, figure: str, **scope: int | None) -> str:
        extra = "".join(f"&{key}={int(value)}" for key, value in scope.items() if value)
        return f"{self.bases[kind]}?figure={figure}&{self.dates}{extra}"


def drill_url(kind: str, figure: str, period: selectors.Period, **scope) -> str:
    """The drill-down list of the records behind one figure."""
    return Links(period).url(kind, figure, **scope)


def cells(links: Links, figures: selectors.Figures, codes=None, **scope) -> list[dict]:
    """One cell per indicator: its display value and the link to the records behind it."""
    indicators = [i for i in INDICATORS if codes is None or i.code in codes]
    values = figures.values(indicators)
    result = []
    for indicator in indicators:
        value = values[indicator.code]
        url = links.url(*indicator.drill, **scope) if indicator.drill else ""
        result.append({"indicator": indicator, "value": value, "text": selectors.display(indicator, value), "url": url})
    return result


def figure_table(first: str, head, rows: list[dict], *, printing: bool = False) -> SafeString:
    """The big tables (hospitals, departments, doctors) rendered here rather than by the template
    engine, which would take most of the page's time for 300 hospitals."""
    parts = ['<div class="sv-wide"><table class="sv-table"><thead><tr><th>', escape(first), "</th>"]
    parts += [f"<th>{escape(i.name)}</th>" for i in head]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        label = escape(row["label"])
        if row.get("href") and not printing:
            label = f'<a href="{escape(row["href"])}">{label}</a>'
        parts.append(f"<tr><td>{label}</td>")
        for cell in row["cells"]:
            text = escape(cell["text"])
            if cell["url"] and not printing:
                text = f'<a href="{escape(cell["url"])}">{text}</a>'
            parts.append(f'<td class="num">{text}</td>')
        parts.append("</tr>")
    if not rows:
        parts.append(f'<tr><td colspan="{len(head) + 1}">该期间没有数据</td></tr>')
    parts.append("</tbody></table></div>")
    return mark_safe("".join(parts))  # noqa: S308 - every value is escaped above


# -- the dashboard ----------------------------------------------------------------------------------------


def _period(request: HttpRequest) -> selectors.Period:
    grain = request.GET.get("grain", "month")
    try:
        return selectors.period_of(grain, request.GET.get("period", ""), today=timezone.localdate())
    except (ValueError, TypeError):
        return selectors.period_of("month", today=timezone.localdate())


def _hospital(request: HttpRequest) -> Hospital | None:
    value = request.GET.get("hospital", "")
    return Hospital.objects.filter(pk=value).first() if value.isdigit() else None


def trend_points(overview: selectors.Overview, code: str) -> list[tuple[str, float | None]]:
    if overview.period.grain == "month":
        rows = selectors.daily(period=overview.period, hospital=overview.hospital)
        by_day = dict(rows)
        points = []
        day = overview.period.start
        while day <= overview.period.end:
            figures = by_day.get(day)
            points.append((f"{day.day}日", figures.value(code) if figures else None))
            day += dt.timedelta(days=1)
        return points
    return [(f"{month.month}月", figures.value(code)) for month, figures in overview.months]


def dashboard_context(request: HttpRequest, *, printing: bool = False) -> dict:
    period, hospital = _period(request), _hospital(request)
    overview = selectors.overview(period=period, hospital=hospital)
    links = Links(period)
    scope = {"hospital": hospital.pk} if hospital else {}
    query = urlencode({"grain": period.grain, "period": period.value, **scope})
    context = {
        "period": period,
        "hospital": hospital,
        "overview": overview,
        "cells": cells(links, overview.total, **scope),
        "hospital_choices": selectors.hospitals(),
        "grain": period.grain,
        "channels": overview.channels,
        "charts": {
            "bookings": charts.trend(trend_points(overview, "bookings"), title="预约量趋势", unit="人次"),
            "visit_rate": charts.trend(trend_points(overview, "visit_rate"), title="履约率趋势", unit="%"),
            "flow": charts.flow(overview.flows),
        },
        "query": query,
        "tables": [],
    }
    if hospital is None:
        ranked = sorted(((h.name, f.value("bookings") or 0) for h, f in overview.hospitals), key=lambda item: -item[1])[
            :15
        ]
        context["charts"]["ranking"] = charts.ranking(ranked, title="医院预约量排名（前15）", unit="人次")
        head = [i for i in INDICATORS if i.code in TABLE_CODES]
        base = urlencode({"grain": period.grain, "period": period.value})
        rows = [
            {"label": h.name, "href": f"?{base}&hospital={h.pk}", "cells": cells(links, f, TABLE_CODES, hospital=h.pk)}
            for h, f in overview.hospitals
        ]
        context["tables"].append(("各医院", figure_table("医院", head, rows, printing=printing)))
    else:
        codes = {i.code for i in selectors.DOCTOR_INDICATORS}
        for title, first, by in (("各科室", "科室", "department"), ("各医生", "医生", "doctor")):
            rows = [
                {"label": label, "cells": cells(links, f, codes, hospital=hospital.pk, **{by: pk})}
                for label, pk, f in selectors.breakdown(hospital=hospital, period=period, by=by)
            ]
            context["tables"].append((title, figure_table(first, selectors.DOCTOR_INDICATORS, rows, printing=printing)))
    return context


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """The dashboard is this model's change list; the report and exports hang off it."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("supervision.view_dashboard")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("report/", wrap(self.report_view), name="supervision_report"),
            path("report.xlsx", wrap(self.excel_view), name="supervision_report_xlsx"),
            path("report.csv", wrap(self.csv_view), name="supervision_report_csv"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **dashboard_context(request),
            "title": "监管指标看板",
            "opts": self.model._meta,
            "can_export": request.user.has_perm("supervision.export_dashboard"),
            "last_run": StatsRun.objects.filter(finished_at__isnull=False).first(),
        }
        return TemplateResponse(request, "supervision/dashboard.html", context)

    def _export_allowed(self, request) -> None:
        if not request.user.has_perm("supervision.export_dashboard"):
            raise PermissionDenied

    def report_view(self, request):
        self._export_allowed(request)
        context = {**self.admin_site.each_context(request), **dashboard_context(request, printing=True)}
        context["title"] = f"{context['hospital'].name if context['hospital'] else '全区域'}监管月报"
        context["generated_at"] = timezone.localtime()
        return TemplateResponse(request, "supervision/report.html", context)

    def excel_view(self, request):
        self._export_allowed(request)
        period, hospital = _period(request), _hospital(request)
        content = reports.workbook(selectors.overview(period=period, hospital=hospital))
        response = HttpResponse(
            content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        response["Content-Disposition"] = f'attachment; filename="supervision-{period.value}.xlsx"'
        return response

    def csv_view(self, request):
        self._export_allowed(request)
        period, hospital = _period(request), _hospital(request)
        response = HttpResponse(reports.csv_text(selectors.overview(period=period, hospital=hospital)),
                                content_type="text/csv; charset=utf-8")  # fmt: skip
        response["Content-Disposition"] = f'attachment; filename="supervision-{period.value}.csv"'
        return response


# -- drill-down lists ---------------------------------------------------------------------------------------


class ParamFilter(admin.SimpleListFilter):
    """A filter set by the dashboard's links (shown in the sidebar while it applies)."""

    label_of = staticmethod(lambda value: value)

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, self.label_of(value))] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        return self.apply(request, queryset, value) if value else queryset

    def apply(self, request, queryset, value):  # pragma: no cover - overridden
        return queryset


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _local(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def date_filters(field: str, *, is_datetime: bool = False):
    """From/to filters on the date a figure is attributed to (inclusive)."""

    class From(ParamFilter):
        title, parameter_name = "起始日期", "from"

        def apply(self, request, queryset, value):
            day = _day(value)
            if day is None:
                return queryset.none()
            return queryset.filter(**{f"{field}__gte": _local(day) if is_datetime else day})

    class To(ParamFilter):
        title, parameter_name = "截止日期", "to"

        def apply(self, request, queryset, value):
            day = _day(value)
            if day is None:
                return queryset.none()
            if is_datetime:
                return queryset.filter(**{f"{field}__lt": _local(day + dt.timedelta(days=1))})
            return queryset.filter(**{f"{field}__lte": day})

    return From, To


def model_filter(name: str, title: str, model, lookup: str):
    class Filter(ParamFilter):
        parameter_name = name

        def apply(self, request, queryset, value):
            return queryset.filter(**{lookup: value}) if value.isdigit() else queryset.none()

    Filter.title = title
    Filter.label_of = staticmethod(lambda value: str(model.objects.filter(pk=value).first() or value))
    return Filter


def figure_filter(figures: dict, prepare=None):
    class Figure(admin.SimpleListFilter):
        title, parameter_name = "指标", "figure"

        def lookups(self, request, model_admin):
            return [(name, label) for name, (label, _q) in self._figures().items()]

        def _figures(self) -> dict:
            return figures() if callable(figures) else figures

        def queryset(self, request, queryset):
            chosen = self._figures().get(self.value() or "")
            if chosen is None:
                return queryset
            if prepare is not None:
                queryset = prepare(queryset)
            return queryset.filter(chosen[1]) if chosen[1] else queryset

    return Figure


class DrillAdmin(admin.ModelAdmin):
    """Read-only list of the records behind a figure; no personal data shown."""

    show_full_result_count = False
    list_per_page = 50
    list_display_links = None
    actions = None
    figures: dict | object = {}

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="医院", ordering="hospital__name")
    def hospital_short(self, obj):
        return _hospital_short(obj.hospital)

    def get_model_perms(self, request):
        # Reached from the dashboard's figures, not from the admin index.
        return {}

    def changelist_view(self, request, extra_context=None):
        figure = request.GET.get("figure", "")
        figures = self.figures() if callable(self.figures) else self.figures
        label = figures[figure][0] if figure in figures else ""
        title = f"{self.model._meta.verbose_name}{f'（{label}）' if label else ''}"
        return super().changelist_view(
            request, {"title": title, "subtitle": "构成监管指标数字的记录", **(extra_context or {})}
        )


def _hospital_short(hospital) -> str:
    """A hospital's name cut to fit a list column; the full name and code on hover."""
    if hospital is None:
        return "-"
    name = hospital.name if len(hospital.name) <= 9 else hospital.name[:8] + "…"
    return format_html('<span title="{}（{}）">{}</span>', hospital.name, hospital.hospital_no, name)


_INTERFACE_TITLES = {(i.side, i.name): i.title for i in ALL_INTERFACES}


def _tail(order_no: str, keep: int = 10) -> str:
    """An order number by its last characters (they start alike: YY and the date); the whole on hover."""
    if len(order_no) <= keep + 1:
        return order_no
    return format_html('<span title="{}">…{}</span>', order_no, order_no[-keep:])


def _short_time(value) -> str:
    """A time in the region's zone without the year (the list's filters say which period it is); the full one on hover."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<span title="{}">{}</span>', f"{local:%Y-%m-%d %H:%M:%S}", f"{local.month}月{local.day}日 {local:%H:%M}"
    )


def _where(hospital, department, doctor) -> str:
    """Hospital, department and doctor in one column: the hospital above, the rest below, small."""
    return format_html(
        "{}<br><small>{} · {}</small>",
        _hospital_short(hospital),
        department.name if department else "-",
        doctor.name if doctor else "-",
    )


@admin.register(SupervisedOrder)
class SupervisedOrderAdmin(DrillAdmin):
    figures = ORDER_FIGURES
    # Lists fit 1366 px: the record and its state first, long numbers shortened (full on hover).
    list_display = ("order_code", "status", "mark", "work_date", "where", "channel", "ordered_at")
    list_filter = (
        figure_filter(ORDER_FIGURES, orders_annotated),
        *date_filters("schedule__work_date"),
        model_filter("hospital", "医院", Hospital, "hospital_id"),
        model_filter("department", "科室", Department,
                     "schedule__department_id"),
        model_filter("doctor", "医生", Doctor, "schedule__doctor_id"),
    )  # fmt: skip
    list_select_related = ("hospital", "channel", "schedule__department", "schedule__doctor")
    ordering = ("schedule__work_date", "order_no")

    @admin.display(description="平台订单号", ordering="order_no")
    def order_code(self, obj):
        return _tail(obj.order_no)

    @admin.display(description="医院·科室·医生")
    def where(self, obj):
        return _where(obj.hospital, obj.schedule.department, obj.schedule.doctor)

    @admin.display(description="下单时间", ordering="created_at")
    def ordered_at(self, obj):
        return _short_time(obj.created_at)

    @admin.display(description="科室")
    def department(self, obj):
        return obj.schedule.department.name

    @admin.display(description="医生")
    def doctor(self, obj):
        return obj.schedule.doctor.name

    @admin.display(description="出诊日期", ordering="schedule__work_date")
    def work_date(self, obj):
        return obj.schedule.work_date


@admin.register(SupervisedSchedule)
class SupervisedScheduleAdmin(DrillAdmin):
    figures = SCHEDULE_FIGURES
    list_display = ("work_code", "work_date", "time_code", "status", "slots", "where", "stopped_at")
    list_filter = (
        figure_filter(SCHEDULE_FIGURES, schedules_annotated),
        *date_filters("work_date"),
        model_filter("hospital", "医院", Hospital, "hospital_id"),
        model_filter("department", "科室", Department, "department_id"),
        model_filter("doctor", "医生", Doctor, "doctor_id"),
    )
    list_select_related = ("hospital", "department", "doctor")
    ordering = ("work_date", "start_time", "work_id")

    @admin.display(description="排班班次", ordering="work_id")
    def work_code(self, obj):
        return shortened(obj.work_id, 10)

    @admin.display(description="平台订单/号源", ordering="total")
    def slots(self, obj):
        return f"{obj.booked_count}/{obj.total}"

    @admin.display(description="医院·科室·医生")
    def where(self, obj):
        return _where(obj.hospital, obj.department, obj.doctor)


def _referral_figures() -> dict:
    return referral_figures(now=timezone.now(), limit=referral_selectors.pending_limit())


class ReferralHospitalFilter(ParamFilter):
    """Up, down and submitted by the sending hospital, the rest by the receiving one (definitions)."""

    title, parameter_name = "医院", "hospital"
    label_of = staticmethod(lambda value: str(Hospital.objects.filter(pk=value).first() or value))

    def apply(self, request, queryset, value):
        if not value.isdigit():
            return queryset.none()
        if request.GET.get("figure", "submitted") in REFERRAL_BY_SENDER:
            return queryset.filter(sending_hospital_id=value)
        return queryset.filter(receiving_hospital_id=value)


@admin.register(SupervisedReferral)
class SupervisedReferralAdmin(DrillAdmin):
    figures = staticmethod(_referral_figures)
    list_display = ("code", "status", "direction", "submitted_at", "accepted_at", "route", "booking_code")
    list_filter = (
        figure_filter(_referral_figures),
        *date_filters("submitted_at", is_datetime=True),
        ReferralHospitalFilter,
    )
    list_select_related = ("sending_hospital", "receiving_hospital", "booking_order")
    ordering = ("submitted_at", "pk")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(submitted_at__isnull=False, receiving_hospital__isnull=False)

    @admin.display(description="转诊编码", ordering="order_id")
    def code(self, obj):
        return shortened(obj.order_id, 14)

    @admin.display(description="转出 → 转入")
    def route(self, obj):
        return format_html("{} → {}", _hospital_short(obj.sending_hospital), _hospital_short(obj.receiving_hospital))

    @admin.display(description="转诊预约订单", ordering="booking_order__order_no")
    def booking_code(self, obj):
        return _tail(obj.booking_order.order_no) if obj.booking_order else "-"


@admin.register(SupervisedMessage)
class SupervisedMessageAdmin(DrillAdmin):
    figures = MESSAGE_FIGURES
    list_display = ("when", "ok", "interface_named", "direction", "hospital_short", "result_code", "duration_ms",
                    "error_short")  # fmt: skip
    list_filter = (
        figure_filter(MESSAGE_FIGURES),
        *date_filters("created_at", is_datetime=True),
        model_filter("hospital", "医院", Hospital, "hospital_id"),
    )
    list_select_related = ("hospital",)
    ordering = ("-created_at",)

    # The commission sees that a call was made and how it went, not the messages themselves.
    exclude = ("request_text", "response_text")

    @admin.display(description="时间", ordering="created_at")
    def when(self, obj):
        return _short_time(obj.created_at)

    @admin.display(description="接口", ordering="interface")
    def interface_named(self, obj):
        title = _INTERFACE_TITLES.get((obj.side, obj.interface))
        if not title:
            return format_html("<code>{}</code>", obj.interface)
        return format_html("{}<br><small><code>{}</code></small>", title, obj.interface)

    @admin.display(description="错误")
    def error_short(self, obj):
        return shortened(obj.error, 12) or "-"


# -- entered by staff ---------------------------------------------------------------------------------------


@admin.register(OutpatientCapacity)
class OutpatientCapacityAdmin(admin.ModelAdmin):
    list_display = ("hospital", "month", "capacity", "note", "updated_at")
    list_filter = ("month",)
    search_fields = ("hospital__hospital_no", "hospital__name")
    autocomplete_fields = ("hospital",)
    list_select_related = ("hospital",)


class VisitsImportForm(forms.Form):
    file = forms.FileField(
        label="Excel文件（.xlsx）", help_text="表头：医院编号、月份、门诊诊疗总人次、急诊人次、平台外预约诊疗人次"
    )


@admin.register(OutpatientVisits)
class OutpatientVisitsAdmin(admin.ModelAdmin):
    list_display = ("hospital", "month", "total_visits", "emergency_visits", "other_appointment_visits",
                    "source_file", "imported_at")  # fmt: skip
    list_filter = ("month",)
    search_fields = ("hospital__hospital_no", "hospital__name")
    list_select_related = ("hospital",)
    change_list_template = "supervision/visits_change_list.html"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False  # rows come from the import only

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="supervision_visits_import"),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not request.user.has_perm("supervision.add_outpatientvisits"):
            raise PermissionDenied
        form = VisitsImportForm(request.POST or None, request.FILES or None)
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = services.visits_import(file=upload, filename=upload.name)
            except services.VisitsImportRefused as exc:
                problems = exc.problems
                messages.error(request, "文件未导入，未写入任何数据。请改正以下错误后重新上传。")
            else:
                messages.success(
                    request, f"已导入：新增{result.created}条，更新{result.updated}条（{'、'.join(result.months)}）"
                )
                return HttpResponseRedirect(reverse("admin:supervision_outpatientvisits_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "导入门诊诊疗人次",
            "form": form,
            "problems": problems,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "supervision/visits_import.html", context)


@admin.register(StatsRun)
class StatsRunAdmin(admin.ModelAdmin):
    list_display = ("date_from", "date_to", "trigger", "started_at", "finished_at", "rows")
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
