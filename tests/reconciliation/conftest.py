"""Reconciliation runs on PostgreSQL (skips with SERVICE-MISSING without it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_postgresql(postgres):
    """Every reconciliation test needs the PostgreSQL cluster (COPY, advisory locks, collation)."""
