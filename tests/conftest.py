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

    from config.celery import app
    from tests.services import require

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
        settings.REDIS_URL = saved_redis
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
