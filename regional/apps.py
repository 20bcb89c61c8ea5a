from django.apps import AppConfig


class RegionalConfig(AppConfig):
    name = "regional"
    verbose_name = "区域主数据与接口"

    def ready(self) -> None:
        from regional import operations  # noqa: F401  (registers the 5.x handlers)
        from regional.audit import install_admin_audit
        from regional.auth import connect_signals

        connect_signals()  # the credential cache's invalidation

        install_admin_audit()
