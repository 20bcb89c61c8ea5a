"""The suite's fixtures; each calls an actor of tests/base.py or a factory of tests/factories.py."""

from __future__ import annotations

import pytest
import requests
import zeep
from zeep.transports import Transport

from booking.models import Schedule
from booking.services.channels import channel_issue_token
from config.celery import app
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxSchedule
from tests import base
from tests.base import SECRET, Api
from tests.factories import SandboxHospitalFactory, session
from tests.services import require
from tests.simulators.vendor_his import vendor_his  # noqa: F401 - a fixture for every test package


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
    return base.hospital_make


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


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, live_server):
    """A real Celery worker process on the test Redis and the test database.

    The test process is switched to the same broker for the session (tasks are no longer run in
    process), so `.delay()` in the code under test goes through Redis to this worker. Use with
    `@pytest.mark.django_db(transaction=True)` so the worker sees committed rows.
    """
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings
    from django.db import connection

    redis = require("redis")
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url if connection.vendor == "postgresql" else os.environ.get("DATABASE_URL", ""),
        "REDIS_URL": redis,
        "PUBLIC_BASE_URL": live_server.url,
        "HOSPITAL_CALL_TIMEOUT": str(settings.HOSPITAL_CALL_TIMEOUT),
    }
    log = open(os.path.join(os.environ["REGIONAL_VAR_DIR"], "celery-worker.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "regional", "-c", "2", "--pool", "threads",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "test@%h", "-l", "info"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    saved = {k: app.conf[k] for k in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=redis, result_backend=redis, task_always_eager=False)
    base.forget_broker_connections()  # a ping made before the switch must not keep the old broker
    saved_redis = settings.REDIS_URL
    settings.REDIS_URL = redis
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Celery worker exited with {proc.returncode}; see {log.name}")
            try:
                if app.control.ping(timeout=0.5):
                    break
            except Exception:  # noqa: BLE001 - broker not answering yet
                time.sleep(0.2)
        else:
            raise RuntimeError("Celery worker did not answer a ping within 60 s")
        yield proc
    finally:
        app.conf.update(saved)
        base.forget_broker_connections()
        settings.REDIS_URL = saved_redis
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def fresh_state(request):
    """A clean cache (circuit breakers, rate limits, slot caches) and, unless the test runs the real
    Celery worker, tasks executed in process so that each test sees its deliveries deterministically."""
    base.shared_state_clear()
    eager = "celery_worker" not in request.fixturenames
    saved = app.conf.task_always_eager
    if eager:
        app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved
    if eager:
        base.forget_broker_connections()
    base.shared_state_clear()


@pytest.fixture
def sandbox_his(db) -> SandboxHospital:
    """The sandbox hospital S001 on its own (it does not call the platform)."""
    return SandboxHospitalFactory(hospital_no="S001")


@pytest.fixture
def sandbox_hospital(public_url, sandbox_his):
    """The platform's record of the sandbox hospital S001, calling its HIS over HTTP."""
    return base.sandbox_platform_hospital(public_url, "S001", name="测试沙箱医院")


@pytest.fixture
def his(public_url, make_hospital) -> SandboxHospital:
    """The sandbox hospital S001, configured to call the platform like a real HIS."""
    base.sandbox_platform_hospital(public_url, "S001", name="测试沙箱医院")
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


@pytest.fixture
def channel(db):
    """The booking channel JKMZWX and its API token."""
    return channel_issue_token(code="JKMZWX", name="微信公众号")


@pytest.fixture
def api(public_url, channel) -> Api:
    """The REST API over HTTP, as the channel JKMZWX calls it."""
    session = requests.Session()
    yield Api(public_url, channel[1], session)
    session.close()


@pytest.fixture
def other_api(public_url, db) -> Api:
    """A second channel (JKMYAPP) and its REST API."""
    return base.channel_api(public_url, code="JKMYAPP", name="健康APP")
