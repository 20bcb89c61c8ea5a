from django.apps import AppConfig


class RegionalConfig(AppConfig):
    name = "regional"
    verbose_name = "区域主数据与接口"

    def ready(self) -> None:
        from django.contrib import admin
        from django.db.models.signals import post_migrate

        from regional import operations  # noqa: F401  (registers the 5.x handlers)
        from regional.audit import install_admin_audit
        from regional.auth import connect_signals
        from regional.locale import install_admin_catalog
        from regional.roles import roles_after_migrate

        connect_signals()  # the credential cache's invalidation

        install_admin_audit()
        # The admin's widgets read their words from /admin/jsi18n/: Chinese, and complete.
        install_admin_catalog(admin.site)
        # After every migrate and every flush of a test database: Chinese permission names and the
        # roles' groups (regional/roles.py). Connected for this app only; it handles every app.
        post_migrate.connect(roles_after_migrate, sender=self, dispatch_uid="regional.roles")
