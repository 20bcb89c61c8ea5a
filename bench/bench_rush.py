"""The 7 o'clock rush: 1,000 `POST /api/v1/orders/` from 64 concurrent clients for a session with 50
numbers, the sandbox hospital locking each number over SOAP, then the refusals once the pool is empty
against a bare view, in the same run.

Subject: the platform under gunicorn (2 gthread workers × 32 threads, as tests/booking/servers.py
starts it) with Redis as broker and shared cache and the channel rate limit on (a limit no client
reaches, so that its cost is counted); the sandbox hospital as a gunicorn of its own (2 × 16 threads)
on the same 2 cores. Every rush is checked: exactly 50 × 201 and 950 × 409, no 5xx, the platform's
and the hospital's counts both 0, 50 booked orders.
Refusals: once the count is zero, REFUSALS more lock requests from the same 64 clients, answered
from the platform's own count (no transaction, no hospital call), against a bare Django view in the
same gunicorn (bench/urls.py `bare_lock_refusal`: read the JSON body, one query for the count,
answer 409). Also counted: database queries of one refusal (in process) and Redis commands per
refusal (the Redis server's own command statistics over the refusal phase).

    .venv/bin/python -m bench.bench_rush
    .venv/bin/python -m bench.bench_rush profile   # the same, then the top frames of 500 refusals (cProfile)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
import time
from collections import Counter
from decimal import Decimal

import requests

from bench.common import fake_id, postgres_django

REQUESTS = 1000
CLIENTS = 64
SLOTS = 50
REFUSALS = 2000
ROUNDS = 2
SECRET = "bench-secret-0123456789"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def fire(base: str, path: str, bodies: list[dict], headers: dict) -> tuple[float, list[tuple[float, float, int]]]:
    """POST every body from CLIENTS threads (one keep-alive session each), released together;
    (wall seconds, [(finished at, latency, status)])."""
    barrier = threading.Barrier(CLIENTS + 1)
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    todo = iter(bodies)

    def client() -> None:
        session = requests.Session()
        try:
            session.get(f"{base}/healthz", timeout=30)  # connect before the start
        finally:
            barrier.wait()
        while True:
            with lock:
                body = next(todo, None)
            if body is None:
                break
            started = time.perf_counter()
            try:
                status = session.post(f"{base}{path}", json=body, headers=headers, timeout=120).status_code
            except requests.RequestException:
                status = 0
            finished = time.perf_counter()
            with lock:
                results.append((finished, finished - started, status))
        session.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return wall, [(at - started, latency, status) for at, latency, status in results]


def figures(wall: float, results: list[tuple[float, float, int]], status: int | None = None) -> dict:
    chosen = [latency for _, latency, code in results if status is None or code == status]
    return {
        "requests": len(results),
        "wall_s": round(wall, 3),
        "per_second": round(len(results) / wall, 1),
        "p50_ms": round(percentile(chosen, 50) * 1000, 1),
        "p95_ms": round(percentile(chosen, 95) * 1000, 1),
    }


def redis_commands(url: str) -> int:
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"  # the platform plus the bare views
    with postgres_django():
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

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
        broker = test_services.start_redis()
        if not broker:
            sys.exit(f"redis-server is needed for this benchmark: {test_services.STATE['redis_error']}")
        env = {"REDIS_URL": broker, "RATE_LIMIT_CHANNEL_PER_MINUTE": "1000000"}
        proc, base = start_gunicorn(database_url=url, log_path=f"{var}/gunicorn-rush.log", env=env)
        his_proc, his_base = start_gunicorn(
            database_url=url, log_path=f"{var}/gunicorn-rush-his.log", threads=16, env=env
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
            headers = {"Authorization": f"Token {token}"}
            sessions = iter(range(1, 100))
            patients = iter(range(0, 10_000_000, 10_000))

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

            def bodies(schedule: Schedule, n: int) -> list[dict]:
                first = next(patients)
                return [
                    {"hospital_no": "B001", "work_id": schedule.work_id,
                     "patient": {"name": f"基准患者{i}", "id_card": fake_id(first + i), "phone": f"134{first + i:08d}"}}
                    for i in range(n)
                ]  # fmt: skip

            warm = new_session(CLIENTS)  # every thread opens its connection, zeep builds its client
            fire(base, "/api/v1/orders/", bodies(warm, CLIENTS * 2), headers)
            fire(base, "/bench/bare-lock-refusal", bodies(warm, CLIENTS * 2), headers)

            rounds = []
            for _ in range(ROUNDS):
                schedule = new_session(SLOTS)
                wall, results = fire(base, "/api/v1/orders/", bodies(schedule, REQUESTS), headers)
                codes = Counter(code for _, _, code in results)
                assert codes == {201: SLOTS, 409: REQUESTS - SLOTS}, codes
                schedule.refresh_from_db()
                his_remaining = SandboxSchedule.objects.get(work_id=schedule.work_id).remaining
                assert schedule.remaining == his_remaining == 0, (schedule.remaining, his_remaining)
                assert Order.objects.filter(schedule=schedule, status=Order.BOOKED).count() == SLOTS
                last_lock = max(at for at, _, code in results if code == 201)
                rush = {
                    **figures(wall, results),
                    "statuses": dict(codes),
                    "last_lock_at_s": round(last_lock, 3),
                    "locks": figures(wall, results, 201),
                    "refusals": figures(wall, results, 409),
                }
                # The pool is empty: refusals alone, the platform against the bare view.
                before = redis_commands(broker)
                wall, refused = fire(base, "/api/v1/orders/", bodies(schedule, REFUSALS), headers)
                redis_per_refusal = (redis_commands(broker) - before) / REFUSALS
                assert Counter(code for _, _, code in refused) == {409: REFUSALS}
                subject = figures(wall, refused)
                wall, bare = fire(base, "/bench/bare-lock-refusal", bodies(schedule, REFUSALS), headers)
                assert Counter(code for _, _, code in bare) == {409: REFUSALS}
                baseline = figures(wall, bare)
                rounds.append({
                    "rush": rush,
                    "refusals_after_empty": subject,
                    "bare_refusal_view": baseline,
                    "refusal_throughput_ratio": round(subject["per_second"] / baseline["per_second"], 2),
                    "redis_commands_per_refusal": round(redis_per_refusal, 2),
                })  # fmt: skip

            # Database queries of one refusal, in process (the same code path; this process's cache is local).
            client = Client(HTTP_AUTHORIZATION=f"Token {token}")
            body = json.dumps(bodies(schedule, 1)[0])
            client.post("/api/v1/orders/", body, content_type="application/json")  # token cached
            with CaptureQueriesContext(connection) as captured:
                response = client.post("/api/v1/orders/", body, content_type="application/json")
            assert response.status_code == 409, response.content
            if sys.argv[1:] == ["profile"]:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(500):
                    client.post("/api/v1/orders/", body, content_type="application/json")
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)
        finally:
            stop_gunicorn(proc)
            stop_gunicorn(his_proc)

        ratios = [r["refusal_throughput_ratio"] for r in rounds]
        print(
            json.dumps(
                {
                    "benchmark": f"rush: {REQUESTS} POST /api/v1/orders/ from {CLIENTS} clients for {SLOTS} numbers "
                    "(gunicorn, sandbox hospital over SOAP); refusals once empty vs a bare view",
                    "rounds": rounds,
                    "queries_per_refusal": [q["sql"][:200] for q in captured.captured_queries],
                    "goal": "exactly 50 × 201, 0 5xx; refusals ≥ 0.5 × the bare view's throughput",
                    "met": all(r >= 0.5 for r in ratios),
                },
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
