from django.apps import AppConfig


class BookingConfig(AppConfig):
    name = "booking"
    verbose_name = "预约挂号"

    def ready(self) -> None:
        from booking import operations  # noqa: F401  (registers the 2.1–2.4 handlers)
        from booking.api import channel_cache  # noqa: F401  (a saved channel invalidates cached tokens)
        from booking.selectors import register_gauges

        register_gauges()
