"""The nightly reconciliation as a django-celery-beat PeriodicTask, so that staff can change its
time in the admin (周期任务). 10:30 Asia/Shanghai: WeChat Pay generates the previous day's bill
from 09:00 and advises fetching after 10:00; Alipay's is ready earlier."""

from django.db import migrations

TASK = "reconciliation.nightly"
NAME = "每日财务对账（获取昨日对账单并对账）"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="10", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
    )
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "crontab": crontab,
            "enabled": True,
            "description": "获取各支付渠道前一日的对账单，并完成平台流水、渠道对账单与医院订单状态的三方对账。",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0001_statements_runs_discrepancies"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, migrations.RunPython.noop)]
