"""Issue 14 item 10, on the real stack: gunicorn (threads keeping their connections) in front of the
suite's own PostgreSQL, which this test stops and starts again.

While PostgreSQL is away, REST answers JSON 503 and SOAP a fault (or its ResultCode), never Django's
HTML 500; after the restart no request fails on a dead kept connection (CONN_HEALTH_CHECKS)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from booking.services.channels import channel_issue_token
from tests.conftest import SECRET
from tests.regional.test_center_public import HOSPITAL_XML, envelope
from tests.services import postgres_start, postgres_stop, start_gunicorn, stop_gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def rest(base: str, token: str):
    return requests.get(f"{base}/api/v1/hospitals/", headers={"Authorization": f"Token {token}"}, timeout=30)


def soap(base: str, n: int):
    body = envelope("HospitalInfo", HOSPITAL_XML.format(tx=f"restart-{n}", name="甲"))
    return requests.post(f"{base}/ws/center", data=body, auth=("H0001", SECRET), timeout=30)


class DatabaseRestartTests:
    def test_an_outage_is_answered_in_each_format_and_the_restart_costs_no_request(self, hospital, postgres, tmp_path):
        token = channel_issue_token(code="JKMZWX", name="微信")[1]
        db = connection.settings_dict
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        proc, base = start_gunicorn(
            database_url=url, log_path=str(tmp_path / "gunicorn.log"), workers=2, threads=8,
            env={"DATABASE_CONN_MAX_AGE": "600", "RATE_LIMIT_HOSPITAL_PER_MINUTE": "0"},
        )  # fmt: skip
        try:
            with ThreadPoolExecutor(16) as pool:  # every gunicorn thread keeps a connection
                assert {r.status_code for r in pool.map(lambda _: rest(base, token), range(64))} == {200}
            connection.close()
            postgres_stop()
            try:
                down = rest(base, token)
                assert down.status_code == 503 and down.json()["code"] == "database_unavailable"
                fault = soap(base, 0)
                assert fault.status_code in (200, 503) and fault.headers["Content-Type"].startswith("text/xml")
                assert "数据库暂时不可用" in fault.text and "<html" not in fault.text.lower()
                servlet = requests.post(f"{base}/referral/api/SxzzAppServlet", data=b"<referral/>", timeout=30)
                assert servlet.status_code in (200, 503) and "<html" not in servlet.text.lower()
            finally:
                postgres_start()
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(lambda _: rest(base, token).status_code, range(64)))
                soaps = list(pool.map(lambda n: soap(base, n).status_code, range(1, 17)))
            assert statuses == [200] * 64 and soaps == [200] * 16, (statuses, soaps)
        finally:
            stop_gunicorn(proc)
            connection.close()
        assert os.path.exists(tmp_path / "gunicorn.log")
