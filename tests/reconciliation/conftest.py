"""Reconciliation runs on PostgreSQL (skips with SERVICE-MISSING without it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh(fresh_state):
    """Per test: a clean cache (circuit breakers) and Celery in process unless the test runs the real
    worker, reached through Redis (see the root conftest's `fresh_state`)."""


@pytest.fixture(autouse=True)
def _on_postgresql(postgres):
    """Every reconciliation test needs the PostgreSQL cluster (COPY, advisory locks, collation)."""
