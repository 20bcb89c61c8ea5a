"""What every benchmark needs: a throwaway PostgreSQL with the schema, and a measurement."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass


@contextlib.contextmanager
def postgres_django() -> Iterator[None]:
    """Start a throwaway PostgreSQL cluster (as the tests do), point Django at it and migrate."""
    from tests import services

    os.environ.setdefault("REGIONAL_VAR_DIR", __import__("tempfile").mkdtemp(prefix="regional-bench-"))
    url = os.environ.get("DATABASE_URL") or services.start_postgres()
    if not url:
        sys.exit(f"PostgreSQL is needed for this benchmark: {services.STATE['postgres_error']}")
    base, _, _ = url.rpartition("/")
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS regional_bench")
        conn.execute("CREATE DATABASE regional_bench")
    os.environ["DATABASE_URL"] = f"{base}/regional_bench"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CELERY_EAGER", "1")  # tasks in process, as the tests run them (no worker here)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        yield
    finally:
        from django.db import connections

        connections.close_all()
        services._cleanup()


@dataclass
class Measurement:
    name: str
    seconds: float
    peak_mib: float


def measure(
    name: str, fn: Callable[[], object], *, repeat: int = 3, setup: Callable[[], object] | None = None
) -> Measurement:
    """Best wall time of `repeat` runs, and the peak Python memory of one run (tracemalloc)."""
    best = float("inf")
    for _ in range(repeat):
        if setup:
            setup()
        gc.collect()
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    if setup:
        setup()
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Measurement(name, best, peak / 1024 / 1024)


def report(title: str, subject: Measurement, baseline: Measurement, extra: dict | None = None) -> dict:
    result = {
        "benchmark": title,
        "subject": asdict(subject),
        "baseline": asdict(baseline),
        "time_ratio": round(subject.seconds / baseline.seconds, 2) if baseline.seconds else None,
        "memory_ratio": round(subject.peak_mib / baseline.peak_mib, 2) if baseline.peak_mib else None,
        **(extra or {}),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return result


def fake_id(n: int) -> str:
    """A fictitious ID number the platform accepts (GB 11643 check digit; region 999999, which no
    region has): birth date from 1900-01-01 and a 3-digit sequence, both from `n`."""
    import datetime as dt

    from regional.idnumber import check_digit

    n %= 43_000_000  # birth dates stay before 2018
    first17 = f"999999{dt.date(1900, 1, 1) + dt.timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return first17 + check_digit(first17)
