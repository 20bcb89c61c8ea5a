"""Issue 14 item 14: a channel retrying one booking (one Idempotency-Key) twenty times at once,
against gunicorn and the sandbox hospital over SOAP: every retry receives the same order, none is
told the patient double-booked, and the hospital holds one lock."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from booking.models import Order
from regional.models import Hospital
from sandbox.models import SandboxOrder
from tests.base import his_url, patient
from tests.services import start_gunicorn, stop_gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
RETRIES = 20


@pytest.fixture
def platform_server(db, tmp_path):
    from django.db import connection

    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    proc, base = start_gunicorn(database_url=url, log_path=os.path.join(tmp_path, "gunicorn.log"))
    yield base
    stop_gunicorn(proc)


class IdempotentRetryTests:
    @pytest.mark.parametrize("slots", [5, 1])
    def test_twenty_concurrent_retries_with_one_key_all_receive_the_one_order(
        self, platform_server, api, bookable, slots
    ):
        _, schedule = bookable(slots=slots)
        Hospital.objects.filter(hospital_no="S001").update(endpoint_url=his_url(platform_server, "S001"))
        body = {"hospital_no": "S001", "work_id": schedule.work_id, "patient": patient(1)}
        barrier = threading.Barrier(RETRIES)

        def retry(_):
            with requests.Session() as session:
                barrier.wait()
                response = session.post(
                    f"{platform_server}/api/v1/orders/",
                    json=body,
                    headers={"Authorization": f"Token {api.token}", "Idempotency-Key": "retry-key-0001"},
                    timeout=120,
                )
            return response.status_code, response.json()

        with ThreadPoolExecutor(RETRIES) as pool:
            results = list(pool.map(retry, range(RETRIES)))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] * (RETRIES - 1) + [201], [b for s, b in results if s not in (200, 201)]
        assert len({b["order_no"] for _, b in results}) == 1
        assert {b["status"] for _, b in results} == {Order.BOOKED}  # each waited for the one lock's outcome
        assert Order.objects.count() == 1 and SandboxOrder.objects.count() == 1
