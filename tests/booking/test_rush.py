"""No overbooking: 200 channels' requests at once for the last 20 numbers of a session, over HTTP,
the sandbox hospital locking each number over SOAP.

The platform and the sandbox hospital are served by gunicorn against the test database
(tests/booking/servers.py): live_server's listen backlog of 10 resets some of 200 simultaneous
connections before Django sees them, which would test the test server rather than the platform.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from booking.models import Order
from regional.models import Hospital
from sandbox.models import SandboxOrder, SandboxSlot
from tests.base import his_url, patient
from tests.services import start_gunicorn, stop_gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REQUESTS = 200
SLOTS = 20


@pytest.fixture(scope="module")
def platform_server(django_db_setup, django_db_blocker):
    """gunicorn serving the platform and the sandbox hospital on the test database."""
    from django.db import connection

    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    log = os.path.join(os.environ["REGIONAL_VAR_DIR"], "gunicorn-rush.log")
    proc, base = start_gunicorn(database_url=url, log_path=log)
    yield base
    stop_gunicorn(proc)


def rush(base: str, token: str, work_id: str, *, requests_count: int = REQUESTS) -> list[tuple[int, dict]]:
    """Fire `requests_count` order requests at once (a barrier releases every thread together)."""
    barrier = threading.Barrier(requests_count)

    def one(n: int) -> tuple[int, dict]:
        body = {"hospital_no": "S001", "work_id": work_id, "patient": patient(n)}
        with requests.Session() as session:
            barrier.wait()
            try:
                response = session.post(
                    f"{base}/api/v1/orders/", json=body, headers={"Authorization": f"Token {token}"}, timeout=120
                )
            except requests.RequestException as exc:
                return 0, {"error": type(exc).__name__}
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=requests_count) as pool:
        return list(pool.map(one, range(1, requests_count + 1)))


class RushTests:
    def test_two_hundred_requests_for_twenty_numbers_give_exactly_twenty_orders(self, platform_server, api, bookable):
        his_schedule, schedule = bookable(slots=SLOTS)
        Hospital.objects.filter(hospital_no="S001").update(endpoint_url=his_url(platform_server, "S001"))
        results = rush(platform_server, api.token, schedule.work_id)
        statuses = Counter(status for status, _ in results)
        assert statuses == {201: SLOTS, 409: REQUESTS - SLOTS}, [
            body for status, body in results if status >= 500 or not status
        ]
        refusals = [body for status, body in results if status == 409]
        assert {body["code"] for body in refusals} == {"schedule_full"}
        assert all("号源已满" in body["message"] for body in refusals)
        orders = [body for status, body in results if status == 201]
        assert len({o["workflow_id"] for o in orders}) == SLOTS
        assert sorted(o["serial_number"] for o in orders) == list(range(1, SLOTS + 1))
        # Both sides agree: the platform's count and the hospital's numbers.
        schedule.refresh_from_db()
        his_schedule.refresh_from_db()
        assert (schedule.remaining, schedule.booked_count) == (0, SLOTS)
        assert his_schedule.remaining == 0
        assert SandboxOrder.objects.filter(status=SandboxOrder.BOOKED).count() == SLOTS
        assert SandboxSlot.objects.filter(schedule=his_schedule, status=SandboxSlot.LOCKED).count() == SLOTS
        assert Order.objects.filter(status=Order.BOOKED).count() == SLOTS
        assert Order.objects.count() == SLOTS  # the losers never got past the conditional update
