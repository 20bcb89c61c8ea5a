"""The Celery app. Without REDIS_URL tasks run in process (settings), so nothing else changes."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("regional")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
