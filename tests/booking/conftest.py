"""Shared actors of the booking tests: the sandbox hospital (its HIS at /sandbox/his/S001/ws, and
its interface engine pushing to /ws/center), the platform's record of it, a channel with its API
token, a REST client over HTTP, and fictitious patients. No real personal data."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import requests
from django.core.cache import cache

from booking.models import Channel, Schedule
from booking.services import channel_issue_token
from config.celery import app
from regional import hospital_client
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxSchedule
from tests.conftest import SECRET
from tests.sandbox.factories import SandboxHospitalFactory, his_url, session


@pytest.fixture(autouse=True)
def booking_state(request):
    """A clean cache (circuit breakers, rate limits, slot caches) and, unless the test runs the real
    Celery worker, tasks executed in process so that each test sees its deliveries deterministically."""
    cache.clear()
    hospital_client.clear_clients()
    eager = "celery_worker" not in request.fixturenames
    saved = app.conf.task_always_eager
    if eager:
        app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved
    if eager:
        forget_broker_connections()
    cache.clear()


def forget_broker_connections() -> None:
    """Celery caches its broker connection pool on first use, eager calls included (they borrow a
    producer since Celery 5.3). Dropped after each in-process test, so that the Celery worker
    fixture, which switches the broker to Redis later in the session, is reached through Redis."""
    # References dropped, nothing closed: kombu keeps producer pools per broker URL and hands an
    # open one back when the same broker is asked for again.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def patient(n: int = 1, **overrides) -> dict:
    """A visibly fictitious patient (the specification's 3306XXXX… style of ID number)."""
    data = {
        "name": f"测试患者{n}",
        "id_card": f"3306XXXXXXXXXX{n:04d}",
        "phone": f"1340000{n:04d}",
        "sex": "1",
        "age": "40",
        "address": "演示市测试路1号",
    }
    data.update(overrides)
    return data


@dataclass
class Api:
    """The REST API over HTTP, as a channel calls it."""

    base: str
    token: str
    session: requests.Session

    def _headers(self, headers: dict | None) -> dict:
        return {"Authorization": f"Token {self.token}", **(headers or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> requests.Response:
        return self.session.get(f"{self.base}{path}", params=params, headers=self._headers(headers), timeout=60)

    def post(self, path: str, json: dict | None = None, headers: dict | None = None) -> requests.Response:
        return self.session.post(f"{self.base}{path}", json=json or {}, headers=self._headers(headers), timeout=60)

    def delete(self, path: str, headers: dict | None = None) -> requests.Response:
        return self.session.delete(f"{self.base}{path}", headers=self._headers(headers), timeout=60)

    def lock(self, schedule: Schedule, n: int = 1, **extra) -> requests.Response:
        body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id, "patient": patient(n)}
        body.update(extra)
        return self.post("/api/v1/orders/", body)

    def pay(self, order: dict, **extra) -> requests.Response:
        body = {
            "pay_type": "4",
            "amount": order["fee"],
            "pay_trade_no": f"T{order['order_no']}",
            "pay_channel": "wepay",
        }
        body.update(extra)
        return self.post(f"/api/v1/orders/{order['order_no']}/pay", body)


@pytest.fixture
def channel(db) -> tuple[Channel, str]:
    return channel_issue_token(code="JKMZWX", name="微信公众号")


@pytest.fixture
def api(public_url, channel) -> Api:
    session = requests.Session()
    yield Api(public_url, channel[1], session)
    session.close()


@pytest.fixture
def other_api(public_url, db) -> Api:
    _, token = channel_issue_token(code="JKMYAPP", name="健康APP")
    return Api(public_url, token, requests.Session())


@pytest.fixture
def his(public_url, make_hospital) -> SandboxHospital:
    """The sandbox hospital S001, configured to call the platform like a real HIS."""
    make_hospital("S001", name="测试沙箱医院", endpoint_url=his_url(public_url, "S001"))
    return SandboxHospitalFactory(hospital_no="S001", center_url=f"{public_url}/ws/center", center_secret=SECRET)


@pytest.fixture
def bookable(his):
    """A session at the sandbox hospital, pushed to the platform (2.1): (sandbox schedule, platform schedule)."""

    def make(slots: int = 5, price: str = "12.50", **kwargs) -> tuple[SandboxSchedule, Schedule]:
        sandbox_schedule = session(his, slots=slots, price=price, **kwargs)
        answer = sandbox.center_push_schedules(hospital=his, schedules=[sandbox_schedule], full=False)
        assert answer.ok, answer.summary()
        return sandbox_schedule, Schedule.objects.select_related("hospital").get(work_id=sandbox_schedule.work_id)

    return make


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Wait for the Celery worker (another process) to have done something; never used to let time pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")
