from django.apps import AppConfig


class ReferralConfig(AppConfig):
    name = "referral"
    verbose_name = "双向转诊"

    def ready(self) -> None:
        from referral import protocol  # noqa: F401  (registers the servlet's handlers)
        from referral.tasks import beat_schedule
        from regional.celery import app

        # Entries in settings (CELERY_BEAT_SCHEDULE) win over these defaults.
        app.conf.beat_schedule = {**beat_schedule(), **(app.conf.beat_schedule or {})}
