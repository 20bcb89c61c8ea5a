"""Reconciliation background work. Thin: ids and dates in, services out.

The nightly run is an entry of the project's beat schedule (CELERY_BEAT_SCHEDULE, its time from
RECONCILIATION_NIGHTLY_AT), synced into django-celery-beat's tables when beat starts: it fetches yesterday's bills from every source with an adapter and
reconciles yesterday. Re-running a day is safe (runs are idempotent).
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from reconciliation import services
from reconciliation.models import ReconciliationRun, StatementImport

NIGHTLY = "reconciliation.nightly"


@shared_task(name=NIGHTLY)
def nightly_reconciliation(day: str | None = None) -> dict:
    """Fetch the bills of `day` (default: yesterday) and reconcile it."""
    bill_date = dt.date.fromisoformat(day) if day else timezone.localdate() - dt.timedelta(days=1)
    fetched = services.statements_fetch_due(bill_date=bill_date)
    run = services.reconciliation_run(
        date_from=bill_date, date_to=bill_date, trigger=ReconciliationRun.Trigger.SCHEDULE
    )
    return {"run": run.pk, "result": run.result, "fetched": fetched}


@shared_task(name="reconciliation.run")
def run_reconciliation(run_id: int, fetch: bool = False) -> str:
    """Execute a queued run (`services.reconciliation_request`)."""
    run = ReconciliationRun.objects.get(pk=run_id)
    return services.reconciliation_execute(run=run, fetch=fetch).status


@shared_task(name="reconciliation.import_statement")
def import_statement(job_id: int) -> str:
    """Import a queued bill (`services.statement_upload_request`, `statement_fetch_request`)."""
    job = StatementImport.objects.get(pk=job_id)
    return services.statement_import_execute(job=job).status
