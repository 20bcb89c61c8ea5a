"""A real application server for load: gunicorn (gthread) serving this project on a free port.

Django's live_server listens with a backlog of 10 connections; 200 clients connecting at once get
some connections reset before the application sees them. The rush test and the booking benchmark
therefore run the platform (and the sandbox hospital it calls) under gunicorn, as in production
(deploy/), against the same database.

Keep-alive is 75 s (nginx's default, not gunicorn's 2 s): the platform's hospital client keeps
connections in a pool, and a server closing them after 2 s idle races with their reuse, which
shows up as a connection aborted mid-lock (an answer the platform must treat as unknown).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from tests.services import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_gunicorn(
    *, database_url: str, log_path: str, workers: int = 2, threads: int = 32, env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start gunicorn on a free port; returns (process, base URL) once /healthz answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": base,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    environment.pop("REDIS_URL", None)  # tasks in process, unless the caller names a broker
    environment.update(env or {})
    log = open(log_path, "w")  # noqa: SIM115 - closed by stop_gunicorn through the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--chdir", ROOT, "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads), "--backlog", "2048",
         "--timeout", "120", "--keep-alive", "75", "--log-level", "warning"],
        env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    proc.log_file = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log_path}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code in (200, 503):
                return proc, base
        except requests.RequestException:
            time.sleep(0.2)
    stop_gunicorn(proc)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log = getattr(proc, "log_file", None)
    if log is not None:
        log.close()
