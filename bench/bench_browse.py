"""Channel browse: `GET /api/v1/schedules/?hospital=…&department=…&date=…` with 340,000 schedules in
the region, against a bare view running the same query (bench/urls.py, `/bench/bare-schedules`).

1. One client: both go through the same Django handler and middleware in this process
   (django.test.Client), one request after another, so the ratio is what the REST path costs beyond
   the query and the JSON it cannot avoid: token look-up, rate limit, queryset building, serializer,
   cursor page. Figures: p50/p95 latency of REQUESTS requests each, after a warm-up, and requests/s.
2. CLIENTS clients over HTTP against the production web tier (deploy/gunicorn.conf.py, 2 gthread
   workers, Redis for the token cache), each asking for a random hospital and day of the region,
   subject and bare view in turn, twice: requests/s and p50/p95/p99.

    .venv/bin/python -m bench.bench_browse
    .venv/bin/python -m bench.bench_browse profile   # the top frames of the REST path (cProfile)
    .venv/bin/python -m bench.bench_browse explain   # EXPLAIN ANALYZE of each query the REST path makes
"""

from __future__ import annotations

import cProfile
import datetime as dt
import json
import os
import pstats
import sys
import time

REQUESTS = 300
REGION = 340_000
CLIENTS = 8
SECONDS = 10


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def timed(get, path: str, n: int) -> dict:
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        response = get(path)
        latencies.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.content[:300]
    wall = time.perf_counter() - started
    return {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "per_second": round(n / wall, 1),
    }


def concurrent(base: str, token: str, path: str, days: list[str], seconds: float) -> dict:
    """CLIENTS threads, each with its own connection, for `seconds`: random hospital and day."""
    import random
    import threading

    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        rnd = random.Random(n)
        session = requests.Session()
        headers = {"Authorization": f"Token {token}"}
        while time.monotonic() < stop_at:
            query = f"hospital=R{rnd.randrange(REGION // 10_000):04d}&department=K01&date={rnd.choice(days)}"
            t = time.perf_counter()
            response = session.get(f"{base}{path}?{query}", headers=headers, timeout=30)
            ms = (time.perf_counter() - t) * 1000
            assert response.status_code == 200, response.text[:300]
            with lock:
                latencies.append(ms)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {
        "per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    if sys.argv[1:] in (["profile"], ["explain"]):
        from bench.common import postgres_django

        with postgres_django():
            return measure()
    from bench.stack import Stack

    stack = Stack()
    stack.start_services()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        measure(stack)
    finally:
        stack.stop_all()


def measure(stack=None) -> None:
    from django.db import connection
    from django.test import Client

    from bench.bench_schedules import _fill_region
    from booking.services.channels import channel_issue_token

    _fill_region(connection, REGION)
    _, token = channel_issue_token(code="BENCH", name="基准渠道")
    day = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    query = f"hospital=R0017&department=K01&date={day}"
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    subject_path, bare_path = f"/api/v1/schedules/?{query}", f"/bench/bare-schedules?{query}"
    subject_rows = json.loads(client.get(subject_path).content)["results"]
    bare_rows = json.loads(client.get(bare_path).content)["results"]
    assert len(subject_rows) == len(bare_rows) == 50, (len(subject_rows), len(bare_rows))
    assert [r["id"] for r in subject_rows] == [r["id"] for r in bare_rows]

    if sys.argv[1:] == ["explain"]:
        from django.db import connection as conn
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(conn) as captured:
            client.get(subject_path)
        with conn.cursor() as cursor:
            for q in captured.captured_queries:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
                print(q["sql"][:400], *(r[0] for r in cursor.fetchall()), sep="\n  ")
        return
    if sys.argv[1:] == ["profile"]:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(REQUESTS):
            client.get(subject_path)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return

    for path in (subject_path, bare_path):  # warm-up
        timed(client.get, path, 30)
    rounds = []
    for _ in range(2):  # interleaved, so both see the same machine
        rounds.append((timed(client.get, subject_path, REQUESTS), timed(client.get, bare_path, REQUESTS)))
    subject = min((s for s, _ in rounds), key=lambda r: r["p95_ms"])
    bare = min((b for _, b in rounds), key=lambda r: r["p95_ms"])
    goal = 3 * bare["p95_ms"] + 10
    one_client_met = subject["p95_ms"] <= goal and subject["per_second"] >= 0.5 * bare["per_second"]

    connection.close()  # the web tier's workers, not this process, answer from here on
    stack.start("web")
    base = f"http://127.0.0.1:{stack.web_port}"
    days = [(dt.date.today() + dt.timedelta(days=n)).isoformat() for n in range(1, 20)]
    concurrent(base, token, "/api/v1/schedules/", days, 2)  # warm-up: connections, the token cache
    concurrent(base, token, "/bench/bare-schedules", days, 2)
    loaded = []
    for _ in range(2):
        rest = concurrent(base, token, "/api/v1/schedules/", days, SECONDS)
        raw = concurrent(base, token, "/bench/bare-schedules", days, SECONDS)
        loaded.append(
            {"subject": rest, "baseline": raw, "throughput_ratio": round(rest["per_second"] / raw["per_second"], 2)}
        )
    print(
        json.dumps(
            {
                "benchmark": f"GET /api/v1/schedules/ ({REGION:,} schedules) vs a bare view",
                "one_client": {
                    "subject": subject,
                    "baseline": bare,
                    "p95_ratio": round(subject["p95_ms"] / bare["p95_ms"], 2),
                    "throughput_ratio": round(subject["per_second"] / bare["per_second"], 2),
                    "goal": f"p95 ≤ 3 × baseline + 10 ms = {goal:.1f} ms; throughput ≥ 0.5 × baseline",
                },
                f"{CLIENTS}_clients_over_http": {"rounds": loaded, "goal": "throughput ≥ 0.5 × baseline"},
                "met": one_client_met and all(r["throughput_ratio"] >= 0.5 for r in loaded),
            },
            ensure_ascii=False,
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
