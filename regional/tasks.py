"""Regional background work. Thin: ids in, services out."""

from __future__ import annotations

from celery import shared_task

RUN_CONFORMANCE = "regional.run_conformance"


@shared_task(name=RUN_CONFORMANCE)
def run_conformance(run_id: int) -> str:
    """Execute a queued conformance run (`regional.conformance.conformance_request`)."""
    from regional.conformance import conformance_execute

    run = conformance_execute(run_id=run_id)
    return run.status if run else "already-claimed"
