from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "财务对账"

    def ready(self) -> None:
        from reconciliation import operations  # noqa: F401  (registers the 2.5 handler)
