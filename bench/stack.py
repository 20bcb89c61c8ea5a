"""The production stack on loopback, for load and fault runs: PostgreSQL, Redis, gunicorn (the
platform), the standalone sandbox hospital, a Celery worker. Each part can be killed and started
again while load runs; everything is stopped at exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from tests import services

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@dataclass
class Stack:
    web_workers: int = 2
    worker_concurrency: int = 4
    env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)
    logs: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="regional-load-logs-"))

    def start_services(self) -> None:
        pg = os.environ.get("DATABASE_URL") or services.start_postgres()
        if not pg:
            sys.exit(f"PostgreSQL is needed: {services.STATE['postgres_error']}")
        base = pg.rpartition("/")[0]
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS regional_load")
            conn.execute("CREATE DATABASE regional_load")
        self.redis_port = services.free_port()
        self.web_port = services.free_port()
        self.sandbox_port = services.free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{base}/regional_load",
            "DATABASE_CONN_MAX_AGE": "60",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "REGIONAL_VAR_DIR": os.environ.setdefault("REGIONAL_VAR_DIR", tempfile.mkdtemp(prefix="regional-load-")),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.web_port}",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "RATE_LIMIT_HOSPITAL_PER_MINUTE": "0",
            "RATE_LIMIT_CHANNEL_PER_MINUTE": "0",
            "HOSPITAL_CALL_TIMEOUT": "10",
            "HOSPITAL_CIRCUIT_RESET_SECONDS": "5",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="regional-load-metrics-"),
        }
        os.environ.update({k: v for k, v in self.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
        self.start("redis")
        atexit.register(self.stop_all)

    def command(self, name: str) -> list[str]:
        py = sys.executable
        return {
            "redis": ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", self.logs],
            "web": [py, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"],
            "sandbox": [py, "manage.py", "sandbox_serve", "--port", str(self.sandbox_port), "--workers", "1",
                        "--threads", "16"],
            "worker": [py, "-m", "celery", "-A", "config", "worker", "-Q", "regional", "--pool", "threads",
                       "-c", str(self.worker_concurrency), "--without-gossip", "--without-mingle", "-l", "warning"],
            "beat": [py, "-m", "celery", "-A", "config", "beat", "-l", "warning", "-s",
                     os.path.join(self.logs, "beat-schedule")],
        }[name]  # fmt: skip

    def start(self, name: str) -> None:
        env = dict(self.env)
        if name == "web":
            env.update(GUNICORN_BIND=f"127.0.0.1:{self.web_port}", GUNICORN_WORKERS=str(self.web_workers))
        log = open(os.path.join(self.logs, f"{name}.log"), "a")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            self.command(name), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        port = {"redis": self.redis_port, "web": self.web_port, "sandbox": self.sandbox_port}.get(name)
        if port:
            wait_port(port)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(30)

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)
        services._cleanup()
