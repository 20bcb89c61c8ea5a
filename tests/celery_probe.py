"""A task for tests that run a real worker (`celery worker --include tests.celery_probe`): it logs a
line holding a full ID number and phone, as a careless log call in a task would."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger("tests.celery_probe")


@shared_task(name="tests.celery_probe.log_patient")
def log_patient(marker: str) -> str:
    logger.warning("probe %s patient 330600199001011234 phone 13400001234", marker)
    return marker
