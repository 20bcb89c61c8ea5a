"""The staff roles' groups (regional/roles.py) and Chinese names for Django's default permissions.

Permissions are normally created after all migrations (post_migrate): they are created here for the
models that exist at this point; post_migrate runs the same again once every app has migrated, so a
role whose permission comes with a later migration gets it then."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from regional.roles import ensure_roles, name_permissions_in_chinese


def create_roles(apps, schema_editor):
    using = schema_editor.connection.alias
    for config in apps.get_app_configs():
        config.models_module = True  # the migration state's app configs have none; create_permissions needs it
        create_permissions(config, apps=apps, verbosity=0, using=using)
    name_permissions_in_chinese(apps, using=using)
    ensure_roles(apps, using=using, warn=False)


class Migration(migrations.Migration):
    dependencies = [
        ("regional", "0007_reveal_reason"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
