"""The booking rush: 200 simultaneous `POST /api/v1/orders/` for a session with 20 numbers left,
against the same number of bare conditional UPDATEs on one hot row, in the same run.

Subject: the whole platform under gunicorn (2 gthread workers × 32 threads, as tests/booking/
servers.py starts it): token authentication, validation, the reserve transaction (conditional
UPDATE + order + history + audit), confirmRegistration over SOAP to the sandbox hospital (its own
gunicorn, 2 × 16 threads, on the same 2 cores, so the hospital's work is counted too), the commit
of the lock, and the patient notification enqueued on Redis (as deployed; no worker runs during the benchmark, so the
figures are the web path's). Every answer is checked: exactly 20 × 201 and
180 × 409, no 5xx, and the platform's and the hospital's counts agree.
A second subject, "every request locks", gives 200 requests 200 numbers: the throughput of
successful locks end to end. A third, "sequential", locks 50 numbers one after another from one
client: the latency of a lock without any queueing.
Baseline: 200 threads, each with its own PostgreSQL connection, released together to run
`UPDATE booking_schedule SET remaining = remaining - 1, booked_count = booked_count + 1
WHERE id = … AND remaining > 0` on one row with 20 left (autocommit), as the reserve step does.

Figures: wall time of the rush, requests/s, successful locks/s, p50/p95 latency (all answers,
and the successful locks alone), over ROUNDS rounds each on a fresh session, after a warm-up.
Run: `.venv/bin/python -m bench.bench_booking` (PostgreSQL is started as for the tests).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

from bench.common import Measurement, fake_id, postgres_django, report

REQUESTS = 200
SLOTS = 20
ROUNDS = 3
SEQUENTIAL = 50
SECRET = "bench-secret-0123456789"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def fire(n: int, action) -> tuple[float, list[tuple[float, object]]]:
    """Run `action(i)` in `n` threads released together; (wall seconds, [(latency, result)])."""
    barrier = threading.Barrier(n + 1)
    results: list[tuple[float, object]] = [(0.0, None)] * n

    def one(i: int) -> None:
        prepared = action(i, None)  # connection set up before the start
        barrier.wait()
        started = time.perf_counter()
        outcome = action(i, prepared)
        results[i] = (time.perf_counter() - started, outcome)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        barrier.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
        wall = time.perf_counter() - started
    return wall, results


def summarise(name: str, wall: float, samples: list[tuple[float, object]], ok) -> dict:
    latencies = [latency for latency, _ in samples]
    good = [latency for latency, outcome in samples if ok(outcome)]
    return {
        "name": name,
        "wall_s": round(wall, 4),
        "requests_per_s": round(len(samples) / wall, 1),
        "successes": len(good),
        "successes_per_s": round(len(good) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "success_p50_ms": round(percentile(good, 50) * 1000, 2),
        "success_p95_ms": round(percentile(good, 95) * 1000, 2),
    }


def merge(name: str, rounds: list[dict]) -> dict:
    """The median round (by wall time), with every round's figures kept."""
    ordered = sorted(rounds, key=lambda r: r["wall_s"])
    median = ordered[len(ordered) // 2]
    return {**median, "name": name, "rounds": [{k: r[k] for k in ("wall_s", "p50_ms", "p95_ms")} for r in rounds]}


def main() -> None:
    with postgres_django():
        from django.db import connection

        from booking.models import Order, Schedule
        from booking.services.channels import channel_issue_token
        from regional.services import hospital_onboard
        from sandbox import demo
        from sandbox import services as sandbox
        from sandbox.models import SandboxSchedule
        from tests import services as test_services
        from tests.services import start_gunicorn, stop_gunicorn

        var = os.environ["REGIONAL_VAR_DIR"]
        url = os.environ["DATABASE_URL"]
        # As deployed: Redis is the broker (notifications and hospital messages are enqueued, not
        # sent by the web request) and the shared cache (circuit breakers, rate limits).
        broker = test_services.start_redis()
        if not broker:
            sys.exit(f"redis-server is needed for this benchmark: {test_services.STATE['redis_error']}")
        env = {"REDIS_URL": broker, "RATE_LIMIT_CHANNEL_PER_MINUTE": "0"}
        # The platform, and the hospital as a server of its own (as in life: the platform's threads
        # waiting on the hospital must not be the ones the hospital needs to answer).
        proc, base = start_gunicorn(database_url=url, log_path=f"{var}/gunicorn-bench.log", env=env)
        his_proc, his_base = start_gunicorn(
            database_url=url, log_path=f"{var}/gunicorn-bench-his.log", threads=16, env=env
        )
        try:
            hospital, _ = hospital_onboard(
                hospital_no="B001", name="基准医院", secret=SECRET, endpoint_url=f"{his_base}/sandbox/his/B001/ws"
            )
            his = demo.hospital_build(
                hospital_no="B001", name="基准沙箱医院", level=1, center_url=f"{base}/ws/center", center_secret=SECRET,
                days=1,
            )  # fmt: skip
            doctor = his.doctors.order_by("doctor_id").first()
            _, token = channel_issue_token(code="JKMZWX", name="微信")
            sessions = iter(range(1, 100))

            def new_session(slots: int) -> Schedule:
                n = next(sessions)
                his_schedule = sandbox.schedule_create(
                    hospital=his, doctor=doctor, work_date=dt.date.today() + dt.timedelta(days=2),
                    work_time_code="1", start_time=dt.time(8, 0), stop_time=dt.time(12, 0), slots=slots,
                    price=Decimal("12.00"), work_id=f"RUSH-{n:03d}",
                )  # fmt: skip
                answer = sandbox.center_push_schedules(hospital=his, schedules=[his_schedule], full=False)
                assert answer.ok, answer.summary()
                return Schedule.objects.get(hospital=hospital, work_id=his_schedule.work_id)

            def rush(schedule: Schedule, n: int, first_patient: int) -> tuple[float, list]:
                def action(i: int, session):
                    if session is None:
                        return requests.Session()
                    body = {
                        "hospital_no": "B001",
                        "work_id": schedule.work_id,
                        "patient": {"name": f"基准患者{i}", "id_card": fake_id(first_patient + i),
                                    "phone": f"134{first_patient + i:08d}"},
                    }  # fmt: skip
                    try:
                        response = session.post(
                            f"{base}/api/v1/orders/",
                            json=body,
                            headers={"Authorization": f"Token {token}"},
                            timeout=120,
                        )
                        if response.status_code in (201, 409):
                            return response.status_code
                        return f"{response.status_code} {response.json().get('message', '')[:120]}"
                    except requests.RequestException as exc:
                        return type(exc).__name__
                    finally:
                        session.close()

                return fire(n, action)

            def check(schedule: Schedule, results: list, slots: int) -> None:
                codes = Counter(outcome for _, outcome in results)
                expected = Counter({201: slots})
                if slots < len(results):
                    expected[409] = len(results) - slots
                assert codes == expected, codes
                schedule.refresh_from_db()
                his_schedule = SandboxSchedule.objects.get(work_id=schedule.work_id)
                assert schedule.remaining == his_schedule.remaining == 0, (schedule.remaining, his_schedule.remaining)
                assert Order.objects.filter(schedule=schedule, status=Order.BOOKED).count() == slots

            # Warm-up: every gunicorn thread opens its database connection, zeep builds its client.
            warm = new_session(64)
            rush(warm, 64, 900_000)

            patients = iter(range(0, 10_000_000, 1000))
            rush_rounds, all_rounds = [], []
            for _ in range(ROUNDS):
                schedule = new_session(SLOTS)
                wall, results = rush(schedule, REQUESTS, next(patients))
                check(schedule, results, SLOTS)
                rush_rounds.append(summarise("rush", wall, results, lambda code: code == 201))
            for _ in range(ROUNDS):
                schedule = new_session(REQUESTS)
                wall, results = rush(schedule, REQUESTS, next(patients))
                check(schedule, results, REQUESTS)
                all_rounds.append(summarise("all", wall, results, lambda code: code == 201))

            # One client, one lock after another: the cost of a lock without queueing.
            schedule = new_session(SEQUENTIAL)
            start = next(patients)
            with requests.Session() as session:
                samples = []
                started = time.perf_counter()
                for i in range(SEQUENTIAL):
                    begun = time.perf_counter()
                    body = {"hospital_no": "B001", "work_id": schedule.work_id,
                            "patient": {"name": f"基准患者{i}", "id_card": fake_id(start + i),
                                        "phone": f"134{start + i:08d}"}}  # fmt: skip
                    code = session.post(
                        f"{base}/api/v1/orders/", json=body, headers={"Authorization": f"Token {token}"}, timeout=60
                    ).status_code
                    samples.append((time.perf_counter() - begun, code))
                sequential = summarise("sequential", time.perf_counter() - started, samples, lambda c: c == 201)
            check(schedule, samples, SEQUENTIAL)

            # Baseline: the bare conditional UPDATE, 200 connections released together on one hot row.
            settings = connection.settings_dict
            dsn = f"host={settings['HOST']} port={settings['PORT']} user={settings['USER']} dbname={settings['NAME']}"
            import psycopg

            baseline_rounds = []
            for _ in range(ROUNDS):
                row = new_session(SLOTS)

                def update(i: int, conn, row_id=row.pk):
                    if conn is None:
                        return psycopg.connect(dsn, autocommit=True)
                    try:
                        with conn.cursor() as cursor:
                            cursor.execute(
                                "UPDATE booking_schedule SET remaining = remaining - 1, booked_count = booked_count + 1"
                                " WHERE id = %s AND remaining > 0",
                                [row_id],
                            )
                            return cursor.rowcount
                    finally:
                        conn.close()

                wall, results = fire(REQUESTS, update)
                assert sum(outcome for _, outcome in results) == SLOTS
                baseline_rounds.append(summarise("baseline", wall, results, lambda rows: rows == 1))
        finally:
            stop_gunicorn(proc)
            stop_gunicorn(his_proc)

        subject = merge(
            f"rush: {REQUESTS} POST /api/v1/orders/ for {SLOTS} numbers (gunicorn, sandbox over SOAP)", rush_rounds
        )
        every = merge(f"every request locks: {REQUESTS} POST /api/v1/orders/ for {REQUESTS} numbers", all_rounds)
        baseline = merge(f"baseline: {REQUESTS} bare conditional UPDATEs on one row with {SLOTS} left", baseline_rounds)
        report(
            "booking rush: lock throughput and latency",
            Measurement(subject["name"], subject["wall_s"], 0.0),
            Measurement(baseline["name"], baseline["wall_s"], 0.0),
            {"rush": subject, "every_request_locks": every, "sequential_locks": sequential,
             "baseline_conditional_update": baseline,
             "checked": f"each rush: exactly {SLOTS}×201 and {REQUESTS - SLOTS}×409, no 5xx, platform and hospital "
                        "counts both 0"},
        )  # fmt: skip


if __name__ == "__main__":
    main()
