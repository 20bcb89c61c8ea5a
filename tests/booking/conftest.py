"""Booking tests: every test starts from a clean shared state (the root conftest's `fresh_state`).
The actors (the sandbox hospital S001, channels and their REST API, patients) are in tests/base.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh(fresh_state):
    """Per test: a clean cache and Celery in process unless the test runs the real worker."""
