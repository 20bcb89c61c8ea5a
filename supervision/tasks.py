"""Supervision background work: the nightly rebuild of the daily aggregates. Thin: one service call.

The schedule is a django-celery-beat PeriodicTask created by migration 0002 (time editable in the
admin, 周期任务), like the nightly reconciliation.
"""

from __future__ import annotations

from celery import shared_task

from supervision import services

NIGHTLY = "supervision.nightly"


@shared_task(name=NIGHTLY, acks_late=True)
def nightly() -> int:
    # Idempotent by the day: a repeat after a lost acknowledgement rebuilds the same rows.
    return services.stats_rebuild_recent().rows
