"""django-celery-beat's periodic tasks in the staff's language: each task by its Chinese title and its
schedule described in Chinese (the app's own admin shows the schedule keys, `reconciliation.nightly`,
"Scheduler" and "At 10:30 AM"). The project package may name every app; nothing imports this."""

from __future__ import annotations

from cron_descriptor import (
    ExpressionDescriptor,
    FormatException,
    MissingFieldException,
    Options,
    WrongArgumentException,
)
from django.contrib import admin
from django.utils.html import format_html
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

# What each scheduled task does, as staff call it (the task names are the code's).
TASK_TITLES = {
    "booking.expire_locks": "释放超时未支付的锁号",
    "booking.sweep": "补发未送达的消息，续办中断的锁号",
    "booking.waitlist_sweep": "候补：通知有号或关闭过期候补",
    "booking.remind": "就诊前一日提醒患者",
    "referral.scan_overdue": "扫描超时未处理的转诊并提醒",
    "reconciliation.nightly": "每日财务对账",
    "supervision.nightly": "监管指标每日汇总",
    "celery.backend_cleanup": "清理过期的任务结果",
}
# cron-descriptor's zh_CN leaves day and month names in English.
_NAMES = {
    "Monday": "星期一", "Tuesday": "星期二", "Wednesday": "星期三", "Thursday": "星期四", "Friday": "星期五",
    "Saturday": "星期六", "Sunday": "星期日", "January": "1月", "February": "2月", "March": "3月", "April": "4月",
    "May": "5月", "June": "6月", "July": "7月", "August": "8月", "September": "9月", "October": "10月",
    "November": "11月", "December": "12月",
}  # fmt: skip
_INTERVAL_UNITS = {"days": "天", "hours": "小时", "minutes": "分钟", "seconds": "秒", "microseconds": "微秒"}


def crontab_text(crontab: CrontabSchedule) -> str:
    """A crontab in Chinese: `每天 10:30（Asia/Shanghai）`."""
    expression = " ".join(
        str(part) for part in (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year,
                               crontab.day_of_week)
    )  # fmt: skip
    options = Options()
    options.locale_code = "zh_CN"
    options.use_24hour_time_format = True
    try:
        text = ExpressionDescriptor(expression, options).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException):
        text = expression
    for english, chinese in _NAMES.items():
        text = text.replace(english, chinese)
    if crontab.day_of_month == "*" and crontab.month_of_year == "*" and crontab.day_of_week == "*":
        text = text.replace("在 ", "每天 ", 1)
    return f"{text}（{crontab.timezone}）"


def schedule_text(task: PeriodicTask) -> str:
    if task.crontab_id:
        return crontab_text(task.crontab)
    if task.interval_id:
        return f"每 {task.interval.every} {_INTERVAL_UNITS.get(task.interval.period, task.interval.period)}"
    if task.clocked_id:
        return f"一次：{task.clocked.clocked_time:%Y-%m-%d %H:%M}"
    if task.solar_id:
        return str(task.solar)
    return "-"


class TaskFilter(admin.AllValuesFieldListFilter):
    """The filter by task name (the app's field is labelled "Task Name", not translatable)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "任务"


class PeriodicTaskInline(beat_admin.PeriodicTaskInline):
    """The tasks on a schedule's page, the task by its title (the app's column reads "Task Name")."""

    fields = ("name", "task_title", "args", "kwargs")
    readonly_fields = fields

    @admin.display(description="任务")
    def task_title(self, obj: PeriodicTask) -> str:
        return TASK_TITLES.get(obj.task, obj.task)


for _model in (PeriodicTask, CrontabSchedule, IntervalSchedule, ClockedSchedule, SolarSchedule):
    admin.site.unregister(_model)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    list_display = ("title", "enabled", "schedule", "last_run_at", "one_off")
    list_select_related = ("interval", "crontab", "solar", "clocked")
    list_filter = ["enabled", "one_off", ("task", TaskFilter), "start_time", "last_run_at"]
    readonly_fields = ("last_run_at", "crontab_translation")

    @admin.display(description="任务", ordering="name")
    def title(self, obj: PeriodicTask) -> str:
        # The row's name is the schedule key of the settings (beat finds the row by it): kept, on hover.
        title = TASK_TITLES.get(obj.task)
        if not title or title == obj.name:
            return obj.name
        return format_html('<span title="{}（{}）">{}</span>', obj.name, obj.task, title)

    @admin.display(description="执行时间")
    def schedule(self, obj: PeriodicTask) -> str:
        return schedule_text(obj)

    @admin.display(description="执行时间说明")
    def crontab_translation(self, obj: PeriodicTask) -> str:
        return crontab_text(obj.crontab) if obj.crontab_id else "-"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form's script shows the chosen crontab's description from this mapping.
        extra_context = {
            **(extra_context or {}),
            "readable_crontabs": {c.id: crontab_text(c) for c in CrontabSchedule.objects.all()},
        }
        return admin.ModelAdmin.changeform_view(self, request, object_id, form_url, extra_context)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(beat_admin.IntervalScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(beat_admin.ClockedScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(SolarSchedule)
class SolarScheduleAdmin(beat_admin.SolarScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(beat_admin.CrontabScheduleAdmin):
    inlines = [PeriodicTaskInline]
    list_display = ("__str__", "description")
    fields = ("description", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")
    readonly_fields = ("description",)

    @admin.display(description="说明")
    def description(self, obj: CrontabSchedule) -> str:
        return crontab_text(obj) if obj.pk else "-"
