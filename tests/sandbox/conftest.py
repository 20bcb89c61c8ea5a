"""Sandbox tests: `his` is the sandbox hospital S001 on its own, `hospital` the platform's record of
it (its HIS reached over HTTP); both from the root conftest. test_admin and test_pushes build a
demo sandbox hospital that calls the platform instead."""

from __future__ import annotations

import pytest


@pytest.fixture
def his(sandbox_his):
    return sandbox_his


@pytest.fixture
def hospital(sandbox_hospital):
    return sandbox_hospital
