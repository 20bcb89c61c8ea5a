"""What /healthz reports: the database, the broker, the workers and beat, each with the age of what
it says.

- database: a `SELECT 1` now;
- broker: Redis answers a PING, or (embedded) the broker's folder under var/ is writable;
- workers: a broadcast ping, at most once per HEALTHZ_WORKERS_CACHE_SECONDS per process (a ping
  waits for replies: not on every call of a page monitors poll);
- beat: its last tick, read from django-celery-beat's 周期任务 table (beat writes each sent task's
  `last_run_at` there at once: CELERY_BEAT_SYNC_EVERY = 1). Beat is late when it has not sent
  anything for two of its shortest intervals of the one schedule (CELERY_BEAT_SCHEDULE).

`status` is `ok`, `degraded` (bookings work but workers or beat are missing: deliveries and periodic
work wait) or `down` (database or broker unreachable).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

_workers_lock = threading.Lock()
_workers_cache: dict = {"at": float("-inf"), "names": [], "key": None}


def _mode() -> str:
    """How this process hands tasks on: Redis, the embedded broker folder, or in process (eager)."""
    from celery import current_app as app  # the project's app; the ground floor names no package above it

    if settings.REDIS_URL:
        return "redis"
    return "in-process" if app.conf.task_always_eager else "filesystem"


def health_report() -> dict:
    """The health of the platform's parts (see the module's docstring)."""
    started = time.monotonic()
    mode = _mode()
    report: dict = {"database": _database(), "broker": _broker(mode)}
    report["workers"] = _workers(mode, report["broker"]["ok"])
    report["beat"] = _beat(report["database"]["ok"])
    healthy = report["database"]["ok"] and report["broker"]["ok"]
    complete = report["workers"]["ok"] and report["beat"]["ok"]
    report["status"] = ("ok" if complete else "degraded") if healthy else "down"
    report["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return report


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor, "checked_seconds_ago": 0}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return {"ok": False, "vendor": connection.vendor, "error": type(exc).__name__, "checked_seconds_ago": 0}


def _broker(mode: str) -> dict:
    if mode == "in-process":
        return {"ok": True, "kind": "in-process", "checked_seconds_ago": 0}
    if mode == "redis":
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
            return {"ok": True, "kind": "redis", "checked_seconds_ago": 0}
        except Exception as exc:  # noqa: BLE001
            return {"ok": False, "kind": "redis", "error": type(exc).__name__, "checked_seconds_ago": 0}
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
    ok = os.path.isdir(folder) and os.access(folder, os.W_OK)
    answer = {"ok": ok, "kind": "filesystem", "checked_seconds_ago": 0}
    if ok:
        answer["queued"] = sum(1 for name in os.listdir(folder) if name.endswith(".msg"))
    else:
        answer["error"] = "代理目录不存在或不可写"
    return answer


def _workers(mode: str, broker_ok: bool) -> dict:
    if mode == "in-process":
        return {"ok": True, "kind": "in-process", "count": 0, "checked_seconds_ago": 0}
    ttl = float(settings.HEALTHZ_WORKERS_CACHE_SECONDS)
    key = (mode, settings.REDIS_URL)
    now = time.monotonic()
    if broker_ok and (_workers_cache["key"] != key or now - _workers_cache["at"] > ttl):
        # One thread pings; the others answer from the previous result meanwhile.
        if _workers_lock.acquire(blocking=False):
            try:
                _workers_cache.update(names=_ping(), at=time.monotonic(), key=key)
            finally:
                _workers_lock.release()
    names = _workers_cache["names"] if broker_ok and _workers_cache["key"] == key else []
    age = time.monotonic() - _workers_cache["at"] if _workers_cache["key"] == key else None
    return {
        "ok": bool(names),
        "count": len(names),
        "names": names,
        "checked_seconds_ago": round(age, 1) if age is not None else None,
    }


def _ping() -> list[str]:
    from celery import current_app as app  # the project's app; the ground floor names no package above it

    # The embedded broker is a polled folder (twice a second): give replies time to arrive.
    timeout = 0.5 if settings.REDIS_URL else 1.0
    try:
        return sorted(name for reply in app.control.ping(timeout=timeout) for name in reply)
    except Exception:  # noqa: BLE001 - no answer is the answer
        return []


def beat_interval() -> float:
    """Seconds between beat's most frequent sends: the shortest interval of the one schedule."""
    intervals = [
        entry["schedule"].total_seconds()
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if isinstance(entry["schedule"], dt.timedelta)
    ]
    return min(intervals) if intervals else 3600.0


def _beat(database_ok: bool) -> dict:
    interval = beat_interval()
    if not database_ok:
        return {"ok": False, "interval_seconds": interval, "error": "数据库不可用"}
    from django.db.models import Max
    from django_celery_beat.models import PeriodicTask

    try:
        last = PeriodicTask.objects.filter(enabled=True).aggregate(last=Max("last_run_at"))["last"]
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "interval_seconds": interval, "error": type(exc).__name__}
    if last is None:
        return {"ok": False, "interval_seconds": interval, "last_tick": None, "error": "定时调度（beat）尚未运行"}
    age = max((timezone.now() - last).total_seconds(), 0.0)
    answer = {
        "ok": age <= 2 * interval,
        "interval_seconds": interval,
        "last_tick": timezone.localtime(last).isoformat(timespec="seconds"),
        "last_tick_seconds_ago": round(age, 1),
    }
    if not answer["ok"]:
        answer["error"] = f"定时调度（beat）已{int(age)}秒未运行（超过两个周期）"
    return answer
