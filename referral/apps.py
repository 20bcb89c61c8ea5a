from django.apps import AppConfig


class ReferralConfig(AppConfig):
    name = "referral"
    verbose_name = "双向转诊"

    def ready(self) -> None:
        from referral import protocol  # noqa: F401  (registers the servlet's handlers)
