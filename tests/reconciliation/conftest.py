"""Reconciliation runs on PostgreSQL (skips with SERVICE-MISSING without it)."""

from __future__ import annotations

import pytest

# Per test: a clean cache (circuit breakers) and Celery in process unless the test runs the real
# worker; Celery's cached broker connections are dropped after in-process use, so that the worker
# fixture, later in the session, is reached through Redis. The booking suite's fixture does exactly that.
from tests.booking.conftest import booking_state  # noqa: F401


@pytest.fixture(autouse=True)
def _on_postgresql(postgres):
    """Every reconciliation test needs the PostgreSQL cluster (COPY, advisory locks, collation)."""
