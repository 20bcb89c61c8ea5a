"""Real services for the test suite, started once per run (loaded early with `-p tests.services`).

- PostgreSQL: a throwaway cluster (initdb/pg_ctl on a free port in a temp dir); the whole suite
  runs on it whenever the binaries exist, because DATABASE_URL is set before Django loads.
- Redis: a `redis-server` on a free port, handed to the tests that need it (`redis_url`).
- gunicorn: the platform under a real application server, for load (`start_gunicorn`, below).

When a binary is missing, the tests that need it are skipped with a reason that starts with
SERVICE-MISSING; with REQUIRE_SERVICES=1 (as in .ci/run) a missing service fails the run instead.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

MISSING = "SERVICE-MISSING"
STATE: dict[str, str | None] = {"postgres": None, "redis": None, "postgres_error": "", "redis_error": ""}
_cleanups: list = []
_POSTGRES: dict = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    return None


def _as_service_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; CI runs as root.
    if os.geteuid() != 0:
        return cmd
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--", *cmd]
    return cmd


def _service_owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    return None


def start_postgres() -> str | None:
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if not initdb or not pg_ctl:
        STATE["postgres_error"] = "initdb/pg_ctl 不在 PATH 中（请安装 postgresql）"
        return None
    base = tempfile.mkdtemp(prefix="regional-pg-")
    owner = _service_owner()
    if owner:
        os.chown(base, *owner)
    data = os.path.join(base, "data")
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        _as_service_user([initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    subprocess.run(
        _as_service_user([pg_ctl, "-D", data, "-o", options, "-l", os.path.join(base, "log"), "-w", "start"]),
        check=True, capture_output=True, env=env,
    )  # fmt: skip

    _POSTGRES.update(pg_ctl=pg_ctl, data=data, options=options, log=os.path.join(base, "log"), env=env)

    def stop() -> None:
        subprocess.run(_as_service_user([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    _cleanups.append(stop)
    return f"postgres://postgres@127.0.0.1:{port}/regional"


def start_redis() -> str | None:
    binary = shutil.which("redis-server")
    if not binary:
        STATE["redis_error"] = "redis-server 不在 PATH 中（请安装 redis-server）"
        return None
    base = tempfile.mkdtemp(prefix="regional-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", base],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)

    _cleanups.append(stop)
    return f"redis://127.0.0.1:{port}/0"


def _cleanup() -> None:
    while _cleanups:
        _cleanups.pop()()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    os.environ.setdefault("REGIONAL_VAR_DIR", tempfile.mkdtemp(prefix="regional-var-"))
    # The suite talks to the simulated partners (gunicorn, bench and worker children inherit it).
    os.environ.setdefault("SANDBOX_ENABLED", "1")
    os.environ.pop("REDIS_URL", None)  # tests opt into Redis through the fixture
    # Tasks run in process unless a test starts a worker (the celery_worker fixture, the served stack).
    os.environ.setdefault("CELERY_EAGER", "1")
    atexit.register(_cleanup)
    if os.environ.get("DATABASE_URL"):
        STATE["postgres"] = os.environ["DATABASE_URL"] if os.environ["DATABASE_URL"].startswith("postgres") else None
    else:
        try:
            STATE["postgres"] = start_postgres()
        except subprocess.CalledProcessError as exc:
            STATE["postgres_error"] = f"PostgreSQL 启动失败：{exc.stderr.decode(errors='replace')[-300:]}"
        if STATE["postgres"]:
            os.environ["DATABASE_URL"] = STATE["postgres"]
    try:
        STATE["redis"] = start_redis()
    except OSError as exc:
        STATE["redis_error"] = f"redis-server 启动失败：{exc}"


def require(service: str) -> str:
    """The URL of a running service, or skip (fail with REQUIRE_SERVICES=1) with a clear reason."""
    url = STATE.get(service)
    if url:
        return url
    reason = f"{MISSING}: {service}: {STATE.get(service + '_error') or '未启动'}"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def pytest_sessionfinish(session, exitstatus):
    _cleanup()


def require_binary(name: str, package: str) -> str:
    """The path of a program the test needs, or skip (fail with REQUIRE_SERVICES=1) naming its package."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{MISSING}: {name}: 未安装（Debian 软件包 {package}）"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def postgres_stop() -> None:
    """Stop the suite's own PostgreSQL (fast: sessions are cut), for tests of an outage."""
    if not _POSTGRES:
        pytest.skip(f"{MISSING}: postgres: the suite's own cluster is not running (DATABASE_URL given)")
    pg = _POSTGRES
    subprocess.run(_as_service_user([pg["pg_ctl"], "-D", pg["data"], "-m", "fast", "-w", "stop"]),
                   check=True, capture_output=True, env=pg["env"])  # fmt: skip


def postgres_start() -> None:
    pg = _POSTGRES
    subprocess.run(
        _as_service_user([pg["pg_ctl"], "-D", pg["data"], "-o", pg["options"], "-l", pg["log"], "-w", "start"]),
        check=True, capture_output=True, env=pg["env"],
    )  # fmt: skip


# -- a real application server for load ------------------------------------------------------------
#
# A real application server for load: gunicorn (gthread) serving this project on a free port.
#
# Django's live_server listens with a backlog of 10 connections; 200 clients connecting at once get
# some connections reset before the application sees them. The rush test and the booking benchmark
# therefore run the platform (and the sandbox hospital it calls) under gunicorn, as in production
# (deploy/), against the same database.
#
# Keep-alive is 75 s (nginx's default, not gunicorn's 2 s): the platform's hospital client keeps
# connections in a pool, and a server closing them after 2 s idle races with their reuse, which
# shows up as a connection aborted mid-lock (an answer the platform must treat as unknown).

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_gunicorn(
    *, database_url: str, log_path: str, workers: int = 2, threads: int = 32, env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start gunicorn on a free port; returns (process, base URL) once /healthz answers."""
    from django.conf import settings  # configured by now: this runs inside a test

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    wsgi = ":".join(settings.WSGI_APPLICATION.rsplit(".", 1))  # "pkg.wsgi.application" -> "pkg.wsgi:application"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": base,
        # Inside override_settings (the `settings` fixture) SETTINGS_MODULE reads None.
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE or os.environ["DJANGO_SETTINGS_MODULE"],
    }
    environment.pop("REDIS_URL", None)  # tasks in process, unless the caller names a broker
    environment.update(env or {})
    log = open(log_path, "w")  # noqa: SIM115 - closed by stop_gunicorn through the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", wsgi, "--chdir", ROOT, "--bind", f"127.0.0.1:{port}",
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
