"""The embedded default as `make run` starts it (issue 12): `migrate`, `seed_demo`, then `manage.py
serve` — gunicorn, a Celery worker and beat on the filesystem broker under var/, no server to
install — driven over real HTTP like a new user would.

The stack is started once per database for this module: a SQLite file (the default) and, for the
larger rush, a fresh PostgreSQL database. Lock minutes, sweep interval and the stale-lock interval
are shortened by environment so the periodic work shows within the test.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import pytest
import requests

from tests.base import patient, wait_for
from tests.services import free_port, require

ROOT = Path(__file__).resolve().parent.parent
SWEEP_SECONDS = 5


class Stack:
    """`make run` in a temporary var/ directory: the supervisor process, its URL, a channel token,
    and read-only SQL on its database (to compare the platform's and the hospital's counts)."""

    def __init__(self, var: Path, database_url: str) -> None:
        from django.conf import settings

        self.var, self.database_url = var, database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_EAGER"}}
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
                "REGIONAL_VAR_DIR": str(var),
                "DATABASE_URL": database_url,
                "DJANGO_DEBUG": "1",
                "PUBLIC_BASE_URL": self.url,
                "ORDER_LOCK_MINUTES": "1",
                "BOOKING_SWEEP_SECONDS": str(SWEEP_SECONDS),
                "HOSPITAL_CALL_TIMEOUT": "5",
                "BOOKING_LOCKING_STALE_SECONDS": "20",
                "HEALTHZ_WORKERS_CACHE_SECONDS": "2",
                "HEALTHZ_CACHE_SECONDS": "1",
                "SANDBOX_ENABLED": "1",
            }
        )
        manage = [sys.executable, str(ROOT / "manage.py")]
        for step in (["migrate", "--noinput"], ["seed_demo", "--serve-port", str(self.port), "--days", "2"]):
            done = subprocess.run([*manage, *step], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            if step[0] == "seed_demo":
                self.token = next(
                    line.rsplit("：", 1)[1].strip()
                    for line in done.stdout.splitlines()
                    if "JKMZWX" in line and "令牌" in line
                )
        self.log = open(var / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*manage, "serve", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: self.health().get("status") == "ok", timeout=90, interval=0.5, message="stack healthy")

    def health(self) -> dict:
        assert self.proc.poll() is None, f"serve exited; see {self.var / 'serve.log'}"
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).json()
        except requests.RequestException:
            return {}

    def child(self, name: str) -> int:
        """The pid of one child of the supervisor (`beat`, `worker`)."""
        pids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        for pid in pids:
            if name in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(pid)
        raise LookupError(name)

    def sql(self, query: str, *params) -> list[tuple]:
        if self.database_url.startswith("sqlite"):
            path = self.database_url.removeprefix("sqlite:///")
            with sqlite3.connect(f"file:/{path.lstrip('/')}?mode=ro", uri=True) as db:
                return db.execute(query.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://")) as db:
            return db.execute(query, params).fetchall()

    def bookable_session(self, hospital_no: str = "DEMO002") -> str:
        """A session of tomorrow with all of its 10 numbers free on both sides."""
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date() + dt.timedelta(days=1)
        rows = self.sql(
            "SELECT s.work_id FROM booking_schedule s JOIN regional_hospital h ON h.id = s.hospital_id "
            "JOIN sandbox_sandboxschedule x ON x.work_id = s.work_id "
            "WHERE h.hospital_no = %s AND s.work_date = %s AND s.total = 10 AND s.remaining = 10 AND x.remaining = 10 "
            "AND s.id NOT IN (SELECT o.schedule_id FROM booking_order o) ORDER BY s.work_id",
            hospital_no,
            tomorrow.isoformat(),
        )
        assert rows, "no free demo session of tomorrow"
        return rows[0][0]

    def remaining(self, work_id: str) -> tuple[int, int]:
        """(the platform's remaining count, the hospital's) of one session."""
        platform = self.sql("SELECT remaining FROM booking_schedule WHERE work_id = %s", work_id)[0][0]
        hospital = self.sql("SELECT remaining FROM sandbox_sandboxschedule WHERE work_id = %s", work_id)[0][0]
        return platform, hospital

    def statuses(self, work_id: str) -> dict[str, int]:
        rows = self.sql(
            "SELECT o.status, COUNT(*) FROM booking_order o JOIN booking_schedule s ON s.id = o.schedule_id "
            "WHERE s.work_id = %s GROUP BY o.status",
            work_id,
        )
        return dict(rows)

    def rush(self, work_id: str, clients: int, first_patient: int) -> list[requests.Response | Exception]:
        """`clients` channel requests for one session, released at the same moment."""
        start = Barrier(clients)

        def book(n: int):
            body = {"hospital_no": work_id.split("-")[0], "work_id": work_id, "patient": patient(first_patient + n)}
            headers = {"Authorization": f"Token {self.token}"}
            start.wait()
            try:
                return requests.post(f"{self.url}/api/v1/orders/", json=body, headers=headers, timeout=60)
            except requests.RequestException as exc:
                return exc

        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(book, range(clients)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory):
    var = tmp_path_factory.mktemp("embedded-sqlite")
    stack = Stack(var, f"sqlite:///{var / 'db.sqlite3'}")
    children = [stack.child(name) for name in ("gunicorn", "worker", "beat")]
    yield stack
    stack.stop()
    # SIGTERM (as Ctrl-C) stops every child, not only the supervisor.
    assert stack.proc.returncode == 0
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


@pytest.fixture(scope="module")
def postgres_stack(tmp_path_factory):
    import psycopg

    server = require("postgres")
    admin = server.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS regional_embedded")
        db.execute("CREATE DATABASE regional_embedded")
    stack = Stack(tmp_path_factory.mktemp("embedded-postgres"), server.rsplit("/", 1)[0] + "/regional_embedded")
    yield stack
    stack.stop()


def rush_figures(answers) -> dict[str, int]:
    figures: dict[str, int] = {}
    for answer in answers:
        key = type(answer).__name__ if isinstance(answer, Exception) else str(answer.status_code)
        figures[key] = figures.get(key, 0) + 1
    return figures


def assert_rush_held(stack: Stack, work_id: str, answers, clients: int) -> None:
    figures = rush_figures(answers)
    print(f"\n{stack.database_url.split(':')[0]}: {clients} concurrent locks for 10 numbers -> {figures}")
    assert figures.get("201") == 10, figures
    assert "500" not in figures and not any(key.isalpha() for key in figures), figures
    refused = {answer.json()["code"] for answer in answers if answer.status_code != 201}
    assert refused <= {"schedule_full"}, refused
    statuses = stack.statuses(work_id)
    assert statuses.get("1") == 10 and "locking" not in statuses, statuses
    assert stack.remaining(work_id) == (0, 0)  # 10 minus the 10 bookings, on both sides


@pytest.mark.slow
class EmbeddedStackTests:
    def test_sixteen_concurrent_locks_on_sqlite_book_exactly_ten_numbers(self, sqlite_stack):
        work_id = sqlite_stack.bookable_session()
        answers = sqlite_stack.rush(work_id, 16, first_patient=1)
        assert_rush_held(sqlite_stack, work_id, answers, 16)

    def test_forty_concurrent_locks_on_postgresql_book_exactly_ten_numbers(self, postgres_stack):
        work_id = postgres_stack.bookable_session()
        answers = postgres_stack.rush(work_id, 40, first_patient=1)
        assert_rush_held(postgres_stack, work_id, answers, 40)

    def test_beat_releases_an_unpaid_lock_after_the_lock_time_without_any_command(self, sqlite_stack):
        work_id = sqlite_stack.bookable_session()
        headers = {"Authorization": f"Token {sqlite_stack.token}"}
        body = {"hospital_no": work_id.split("-")[0], "work_id": work_id, "patient": patient(100)}
        locked = requests.post(f"{sqlite_stack.url}/api/v1/orders/", json=body, headers=headers, timeout=60)
        assert locked.status_code == 201, locked.text
        assert sqlite_stack.remaining(work_id) == (9, 9)
        order_no = locked.json()["order_no"]
        wait_for(
            lambda: (
                sqlite_stack.sql("SELECT status FROM booking_order WHERE order_no = %s", order_no)[0][0] == "expired"
            ),
            timeout=180,
            interval=2,
            message="the unpaid lock released by beat",
        )
        # UnlockReg reached the hospital through the worker: the number is back on both sides.
        wait_for(lambda: sqlite_stack.remaining(work_id) == (10, 10), timeout=30, message="number back on both sides")
        # More than a minute after the rush too: no order anywhere is left 锁号中, and every session's
        # count agrees with the hospital's (the rush's locks expired as well).
        assert not sqlite_stack.sql("SELECT COUNT(*) FROM booking_order WHERE status = 'locking'")[0][0]
        wait_for(
            lambda: (
                not sqlite_stack.sql(
                    "SELECT s.work_id FROM booking_schedule s JOIN sandbox_sandboxschedule x ON x.work_id = s.work_id "
                    # A stopped session (the demo has one) has no bookable count: the hospital zeroes it.
                    "WHERE s.remaining <> x.remaining AND s.status = 'normal'"
                )
            ),
            timeout=30,
            message="every session's count equal on both sides",
        )

    def test_healthz_says_degraded_while_beat_is_stopped(self, sqlite_stack):
        health = sqlite_stack.health()
        assert health["status"] == "ok" and health["beat"]["last_tick_seconds_ago"] <= 2 * SWEEP_SECONDS
        assert health["workers"]["count"] == 1 and health["broker"]["kind"] == "filesystem"
        beat = sqlite_stack.child("beat")
        os.kill(beat, signal.SIGSTOP)
        try:
            wait_for(
                lambda: sqlite_stack.health()["status"] == "degraded", timeout=4 * SWEEP_SECONDS, message="degraded"
            )
            health = sqlite_stack.health()
            assert health["beat"]["ok"] is False and health["beat"]["last_tick_seconds_ago"] >= 2 * SWEEP_SECONDS
            assert health["database"]["ok"] and health["workers"]["ok"]
        finally:
            os.kill(beat, signal.SIGCONT)
        wait_for(lambda: sqlite_stack.health()["status"] == "ok", timeout=4 * SWEEP_SECONDS, message="ok again")
