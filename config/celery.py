"""The Celery app. Without REDIS_URL tasks run in process (settings), so nothing else changes."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("regional")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def keep_project_logging(**kwargs) -> None:
    """Workers and beat log as the web tier does: JSON lines through the masking filter.

    A connected `setup_logging` signal stops Celery from replacing the root logger's handlers with
    its own (which have neither the filter nor the format); Django's LOGGING is applied instead.
    """
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    logging.captureWarnings(True)  # Python warnings become JSON lines too, not bare stderr text
