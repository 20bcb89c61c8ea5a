"""A single-record SOAP push (`HospitalInfo`) against a bare view that reads the same envelope with
lxml and updates the one row in a transaction (bench/urls.py, `/bench/bare-upsert`), in the same run
on the same gunicorn (deploy/gunicorn.conf.py, 2 workers × GUNICORN_THREADS threads).

Figures: requests/s and p50/p99 with CLIENTS concurrent clients for SECONDS each, and the latency of
one call alone (sequential, p50), for both; the ratio is subject / baseline. Beside them, a browse
request (`GET /api/v1/schedules/…` with a channel token against the bare view running its query,
`/bench/bare-schedules`) under the same server, for choosing the worker model (deploy/WORKERS.md).

    .venv/bin/python -m bench.bench_soap [seconds]
    .venv/bin/python -m bench.bench_soap profile   # one call's queries, then the top frames of 300 calls (cProfile)

The server is deploy/gunicorn.conf.py; GUNICORN_WORKER_CLASS (gthread, sync, or
uvicorn.workers.UvicornWorker, which serves config.asgi), GUNICORN_THREADS and BENCH_WEB_WORKERS
change its worker model. Redis runs as in production (rate limits, the credential cache).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import threading
import time

from bench.bench_load import percentile, soap_envelope

CLIENTS = 8
HOSPITAL_NO = "SOAP001"
SECRET = "bench-soap-secret-0123456789"


def message(n: int, i: int) -> bytes:
    xml = (
        f"<Request><TransactionId>s-{n}-{i}-{time.time_ns()}</TransactionId><HospitalNo>{HOSPITAL_NO}</HospitalNo>"
        "<HospitalName>压测医院</HospitalName></Request>"
    )
    return soap_envelope("HospitalInfo", xml)


def load(url: str, auth, clients: int, seconds: float, *, get: dict | None = None) -> dict:
    """POST a fresh HospitalInfo per request, or with `get` (headers) GET the url."""
    import requests

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(n: int) -> None:
        session = requests.Session()
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            started = time.perf_counter()
            if get is not None:
                r = session.get(url, headers=get)
                assert r.status_code == 200, r.text[:300]
            else:
                r = session.post(
                    url, data=message(n, i), auth=auth, headers={"Content-Type": "text/xml; charset=utf-8"}
                )
                assert b"<ResultCode>0</ResultCode>" in r.content.replace(b"&lt;", b"<").replace(b"&gt;", b">"), r.text[
                    :300
                ]
            ms = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(ms)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {
        "per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "statuses": statuses,
    }


def alone(url: str, auth, n: int = 100) -> float:
    import requests

    session = requests.Session()
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        session.post(url, data=message(999, i), auth=auth, headers={"Content-Type": "text/xml; charset=utf-8"})
        latencies.append((time.perf_counter() - started) * 1000)
    return round(percentile(latencies, 50), 2)


def profile() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ.setdefault("RATE_LIMIT_HOSPITAL_PER_MINUTE", "0")
    from bench.common import postgres_django
    from tests import services

    os.environ.setdefault("REDIS_URL", services.start_redis() or "")  # as in production: the credential cache
    if not os.environ["REDIS_URL"]:
        del os.environ["REDIS_URL"]

    with postgres_django():
        import base64

        from django.test import Client

        from regional.services import hospital_onboard

        hospital_onboard(hospital_no=HOSPITAL_NO, name="压测医院", secret=SECRET)
        auth = "Basic " + base64.b64encode(f"{HOSPITAL_NO}:{SECRET}".encode()).decode()
        client = Client(HTTP_AUTHORIZATION=auth)
        for i in range(30):
            client.post("/ws/center", data=message(0, i), content_type="text/xml; charset=utf-8")
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:  # the round trips of one call
            client.post("/ws/center", data=message(2, 0), content_type="text/xml; charset=utf-8")
        for q in captured.captured_queries:
            print(f"{q['time']}s  {q['sql'][:160]}")
        # regional.inbound writes the replay record and the log entry in the COMMIT's round trip, on
        # psycopg's pipeline, which Django's query log does not see.
        print("+ INSERT replay record + message log entry, with COMMIT (one round trip, pipeline mode)")
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(300):
            client.post("/ws/center", data=message(1, i), content_type="text/xml; charset=utf-8")
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        dump = os.path.join(os.environ["REGIONAL_VAR_DIR"], "soap.prof")
        profiler.dump_stats(dump)
        print(f"# the whole profile: {dump} (python -m pstats)")


def main() -> None:
    if sys.argv[1:] == ["profile"]:
        return profile()
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    from bench.stack import Stack

    class SoapStack(Stack):
        def command(self, name: str) -> list[str]:
            command = super().command(name)
            if name == "web" and "uvicorn" in os.environ.get("GUNICORN_WORKER_CLASS", ""):
                command[-1] = "config.asgi"
            return command

    stack = SoapStack(web_workers=int(os.environ.get("BENCH_WEB_WORKERS", 2)))
    stack.start_services()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from booking.services.channels import channel_issue_token
    from regional.services import hospital_onboard

    hospital_onboard(hospital_no=HOSPITAL_NO, name="压测医院", secret=SECRET)
    _, token = channel_issue_token(code="BENCHCH")
    stack.start("web")
    base = f"http://127.0.0.1:{stack.web_port}"
    subject = (f"{base}/ws/center", (HOSPITAL_NO, SECRET))
    bare = (f"{base}/bench/bare-upsert", None)
    query = f"hospital={HOSPITAL_NO}&department=D1&date=2026-12-02"
    browse = f"{base}/api/v1/schedules/?{query}"
    bare_browse = f"{base}/bench/bare-schedules?{query}"
    channel = {"Authorization": f"Token {token}"}
    for url, auth in (subject, bare):  # warm-up
        load(url, auth, CLIENTS, 2)
    results = {}
    for name, (url, auth) in (("subject", subject), ("baseline", bare)):
        results[name] = {**load(url, auth, CLIENTS, seconds), "alone_p50_ms": alone(url, auth)}
    load(browse, None, CLIENTS, 1, get=channel)
    browsing = {
        "subject": load(browse, None, CLIENTS, seconds / 2, get=channel),
        "baseline": load(bare_browse, None, CLIENTS, seconds / 2, get={}),
    }
    browsing["throughput_ratio"] = round(browsing["subject"]["per_second"] / browsing["baseline"]["per_second"], 2)
    print(
        json.dumps(
            {
                "benchmark": f"HospitalInfo over SOAP vs a bare lxml + one-row update view, {CLIENTS} clients",
                "worker_class": os.environ.get("GUNICORN_WORKER_CLASS", "gthread"),
                "workers": stack.web_workers,
                "threads_per_worker": os.environ.get("GUNICORN_THREADS", 4),
                **results,
                "throughput_ratio": round(results["subject"]["per_second"] / results["baseline"]["per_second"], 2),
                "goal": "≥ 0.5",
                "browse (empty page, same server)": browsing,
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    stack.stop_all()


if __name__ == "__main__":
    main()
