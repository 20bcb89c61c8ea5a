"""The commission's role (a Group with the supervision view permissions) and the nightly rebuild
of the aggregates as a django-celery-beat PeriodicTask (time editable in the admin, 周期任务).
02:30 Asia/Shanghai: after the day's 2.4 reports and before staff arrive."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "卫健委监管人员"
TASK = "supervision.nightly"
NAME = "每日监管指标汇总（重算近期每日汇总表）"
CODENAMES = [
    "view_dashboard",
    "export_dashboard",
    "view_supervisedorder",
    "view_supervisedschedule",
    "view_supervisedreferral",
    "view_supervisedmessage",
    "view_outpatientcapacity",
    "view_outpatientvisits",
    "view_statsrun",
]


def create_role(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate): create them now.
    config = apps.get_app_config("supervision")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="supervision", codename__in=CODENAMES))


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
    )
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "crontab": crontab,
            "enabled": True,
            "description": "重算最近14天及未来31天的监管指标每日汇总（预约、履约、停诊、转诊、接口服务水平）。",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("supervision", "0001_aggregates_and_entries"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_role, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, migrations.RunPython.noop),
    ]
