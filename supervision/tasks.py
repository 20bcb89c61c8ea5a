"""Supervision background work: the nightly rebuild of the daily aggregates. Thin: one service call.

Scheduled by the project's one beat schedule (CELERY_BEAT_SCHEDULE, 02:30 Asia/Shanghai: after the
day's 2.4 reports, before staff arrive).
"""

from __future__ import annotations

from celery import shared_task

from supervision import services

NIGHTLY = "supervision.nightly"


@shared_task(name=NIGHTLY, acks_late=True)
def nightly() -> int:
    # Idempotent by the day: a repeat after a lost acknowledgement rebuilds the same rows.
    return services.stats_rebuild_recent().rows
