"""Issue 14 item 6: with Redis stopped, booking, paying and cancelling answer at once (publishing
after commit gives up within about a second) and the outbox sweep sends the hospital's messages
once Redis is back. The platform runs on the live server over HTTP, the sandbox hospital over SOAP."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from booking.models import Order, OutboxMessage
from config.celery import app
from sandbox.models import SandboxOrder
from tests.base import forget_broker_connections
from tests.services import free_port, require
from tests.test_worker_logging import start_redis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def stopped_redis(settings):
    require("redis")
    port = free_port()
    server = start_redis(port)
    server.terminate()
    server.wait(10)  # a Redis that was there and is gone: connections are refused
    url = f"redis://127.0.0.1:{port}/0"
    saved = {k: app.conf[k] for k in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=url, result_backend=url, task_always_eager=False)
    forget_broker_connections()
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {
            "BACKEND": "regional.cache.ResilientRedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    yield url
    app.conf.update(saved)
    forget_broker_connections()


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


# Bounds far above a give-up of about a second per publish (a write publishes one or two tasks) and
# far below the 16-38 s that a write waited for Redis before: a loaded 2-core machine stays inside.
LOCK_BOUND, WRITE_BOUND = 8, 8


class RedisDownTests:
    def test_writes_answer_at_once_and_the_sweep_delivers_later(self, api, bookable, stopped_redis):
        _, schedule = bookable(slots=3)
        booked, seconds = timed(lambda: api.lock(schedule, 1))
        assert booked.status_code == 201 and seconds < LOCK_BOUND, (booked.status_code, seconds)
        paid, seconds = timed(lambda: api.pay(booked.json()))
        assert paid.status_code == 200 and seconds < WRITE_BOUND, (paid.status_code, seconds)
        other = api.lock(schedule, 2).json()
        cancelled, seconds = timed(lambda: api.post(f"/api/v1/orders/{other['order_no']}/cancel", {"reason": "测试"}))
        assert cancelled.status_code == 200 and seconds < WRITE_BOUND, (cancelled.status_code, seconds)
        assert OutboxMessage.objects.filter(status=OutboxMessage.PENDING).count() >= 2

        # Redis is back (tasks in process here): the periodic sweep sends what was left behind.
        app.conf.task_always_eager = True
        from booking.services import outbox

        outbox.outbox_sweep(now=timezone.now() + dt.timedelta(minutes=5))
        assert not OutboxMessage.objects.filter(status=OutboxMessage.PENDING).exists()
        paid_order = Order.objects.get(order_no=booked.json()["order_no"])
        assert SandboxOrder.objects.get(work_flow_id=paid_order.workflow_id).status == SandboxOrder.PAID
