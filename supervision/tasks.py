"""Supervision background work: the nightly rebuild of the daily aggregates. Thin: one service call.

The schedule is a django-celery-beat PeriodicTask created by migration 0002 (time editable in the
admin, 周期任务), like the nightly reconciliation.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from supervision import services

NIGHTLY = "supervision.nightly"


@shared_task(name=NIGHTLY, acks_late=True)
def nightly() -> int:
    # Idempotent by the day: a repeat after a lost acknowledgement rebuilds the same rows.
    run = services.stats_rebuild_recent(
        days_back=int(getattr(settings, "SUPERVISION_REBUILD_DAYS_BACK", 14)),
        days_ahead=int(getattr(settings, "SUPERVISION_REBUILD_DAYS_AHEAD", 31)),
    )
    return run.rows
