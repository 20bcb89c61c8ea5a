"""The commission's role (卫健委监管人员): a Group with the supervision view and export permissions
(Chinese names, no English defaults), so that an account added to it sees the dashboard, the
drill-down lists and the entered figures, and nothing else."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "卫健委监管人员"
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


class Migration(migrations.Migration):
    dependencies = [
        ("supervision", "0001_aggregates_and_entries"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_role, migrations.RunPython.noop),
    ]
