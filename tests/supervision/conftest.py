"""Supervision actors: three sandbox hospitals of three levels (their HIS at /sandbox/his/<no>/ws,
their interface engines pushing to /ws/center), the booking channels over REST, the referral
servlet and forms, and a month of activity built through those interfaces. No real personal data."""

from __future__ import annotations

import pytest

from sandbox import services as sandbox
from sandbox.models import SandboxHospital
from tests.base import SECRET, his_url
from tests.factories import SandboxHospitalFactory
from tests.referral.conftest import post  # noqa: F401  (the servlet poster)

# HospitalNo, name, 5.1 DegreeCode / DegreeName (level 3, 2, 1).
HOSPITALS = {
    "A": ("S001", "测试市第一人民医院", "31", "三级甲等"),
    "B": ("S002", "测试市第二医院", "21", "二级甲等"),
    "C": ("S003", "测试社区卫生服务中心", "11", "一级甲等"),
}


@pytest.fixture(autouse=True)
def _on_postgresql(postgres):
    """The supervision suite runs on PostgreSQL (skips with SERVICE-MISSING without it)."""


@pytest.fixture(autouse=True)
def _fresh(fresh_state):
    """Per test: a clean cache and Celery in process (the root conftest's `fresh_state`)."""


@pytest.fixture
def region(public_url, make_hospital) -> dict[str, SandboxHospital]:
    """The three hospitals joined: platform records with credentials, and each HIS has pushed its
    description (5.1 HospitalInfo, which carries the level) to the center."""
    result = {}
    for key, (number, name, degree_code, degree_name) in HOSPITALS.items():
        make_hospital(number, name=name, endpoint_url=his_url(public_url, number))
        his = SandboxHospitalFactory(
            hospital_no=number, name=name, degree_code=degree_code, degree_name=degree_name,
            center_url=f"{public_url}/ws/center", center_secret=SECRET,
        )  # fmt: skip
        assert sandbox.center_push_hospital(hospital=his).ok
        result[key] = his
    return result
