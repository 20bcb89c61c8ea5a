"""Issue 14 items 5 and 6: a real Celery worker process keeps the project's logging (JSON lines,
personal data masked), and it survives Redis going away and coming back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.services import free_port, require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ID_NO, PHONE = "330600199001011234", "13400001234"


def start_redis(port: int) -> subprocess.Popen:
    import shutil
    import socket

    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def send(redis: str, marker: str) -> None:
    code = (
        f"from celery import Celery; app = Celery(broker={redis!r}); "
        f"app.send_task('tests.celery_probe.log_patient', args=[{marker!r}], queue='regional')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, cwd=ROOT)


def wait_for(path: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = open(path, encoding="utf-8", errors="replace").read()
        if text in content:
            return content
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the worker's output:\n{content[-3000:]}")


@pytest.mark.slow
class WorkerLoggingTests:
    def test_a_worker_logs_json_lines_with_personal_data_masked_and_survives_a_redis_restart(self, tmp_path):
        require("redis")
        port = free_port()
        redis = f"redis://127.0.0.1:{port}/0"
        server = start_redis(port)
        out = tmp_path / "worker.log"
        env = {**os.environ, "REDIS_URL": redis, "LOG_FORMAT": "json", "DJANGO_DEBUG": "0",
               "REGIONAL_VAR_DIR": os.environ["REGIONAL_VAR_DIR"],
               # CI runs as root; Celery warns about that on stderr before any logging is set up.
               "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges"}  # fmt: skip
        with open(out, "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "--quiet", "worker",
                 "-Q", "regional", "-c", "1", "--pool", "solo", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-n", f"logprobe{port}@%h", "-l", "info", "--include", "tests.celery_probe"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            send(redis, "first-call")
            text = wait_for(str(out), "first-call")
            server.terminate()
            server.wait(10)
            time.sleep(3)  # the worker sees the broker gone
            server = start_redis(port)
            send(redis, "after-restart")
            text = wait_for(str(out), "after-restart", timeout=90)
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
            server.terminate()
        assert ID_NO not in text and PHONE not in text
        lines = [line for line in text.splitlines() if line.strip()]
        assert [line for line in lines if not line.startswith("{")] == []  # every line is a JSON object
        entries = [json.loads(line) for line in lines]
        probes = [e for e in entries if e.get("logger") == "tests.celery_probe"]
        assert len(probes) == 2 and all(e["level"] == "WARNING" for e in probes)
        assert any(e.get("logger", "").startswith("celery") for e in entries)
