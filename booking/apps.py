from django.apps import AppConfig


class BookingConfig(AppConfig):
    name = "booking"
    verbose_name = "预约挂号"

    def ready(self) -> None:
        from booking import operations  # noqa: F401  (registers the 2.1–2.4 handlers)
        from booking.selectors import register_gauges
        from booking.tasks import beat_schedule
        from regional.celery import app

        # Entries in settings (CELERY_BEAT_SCHEDULE) win over these defaults.
        app.conf.beat_schedule = {**beat_schedule(), **(app.conf.beat_schedule or {})}
        register_gauges()
