"""Shared actors of the suite: services, hospitals with credentials, SOAP clients from the WSDL."""

from __future__ import annotations

import pathlib

import pytest
import requests
import zeep
from zeep.transports import Transport

from tests.services import require

SPEC_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "spec"
SECRET = "test-secret-not-for-production-0001"


def spec_example(name: str) -> str:
    """A message exactly as the specification prints it (tests/fixtures/spec)."""
    return (SPEC_FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def postgres() -> str:
    return require("postgres")


@pytest.fixture
def redis_url() -> str:
    return require("redis")


@pytest.fixture
def public_url(live_server, settings) -> str:
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def make_hospital(db):
    from regional.services import hospital_onboard

    def make(hospital_no: str = "H0001", name: str = "测试第一医院", secret: str = SECRET, **kwargs):
        hospital, _ = hospital_onboard(hospital_no=hospital_no, name=name, secret=secret, **kwargs)
        return hospital

    return make


@pytest.fixture
def hospital(make_hospital):
    return make_hospital()


@pytest.fixture
def center_client(public_url):
    """A zeep client generated from /ws/center?wsdl, authenticated as a hospital with HTTP Basic."""

    def make(hospital_no: str = "H0001", secret: str = SECRET, auth: bool = True) -> zeep.Client:
        session = requests.Session()
        if auth:
            session.auth = (hospital_no, secret)
        transport = Transport(session=session, timeout=10, operation_timeout=30)
        return zeep.Client(f"{public_url}/ws/center?wsdl", transport=transport)

    return make
