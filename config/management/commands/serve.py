"""`manage.py serve` (`make run`): what production runs, in one command, under one supervisor.

Starts three children and stops them together:

- the web server: gunicorn (gthread) serving config.wsgi, as in production (deploy/);
- a Celery worker on the queue `regional`;
- Celery beat with django-celery-beat's DatabaseScheduler: the one schedule of the settings
  (CELERY_BEAT_SCHEDULE), the same tasks at the same times as in production.

Without REDIS_URL they share the embedded broker, a folder under var/ (kombu's filesystem
transport: no server to install); with REDIS_URL they use Redis. Ctrl-C or SIGTERM stops all three
(each gets SIGTERM, then SIGKILL after a grace period); if one child exits on its own, the others are
stopped and `serve` exits with an error, so a half-running platform never looks like a running one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

GRACE_SECONDS = 20


def _die_with_parent() -> None:
    # A child must not outlive a supervisor that was killed outright (Linux: PR_SET_PDEATHSIG).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Command(BaseCommand):
    help = "启动平台：Web服务（gunicorn）、Celery任务进程和定时调度（beat），Ctrl-C 一并停止"

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        # Without Redis the cache (rate limits, circuit breakers, log-in lock-outs) lives in each
        # process's memory: one web process keeps them whole, as runserver did.
        parser.add_argument(
            "--web-workers",
            type=int,
            default=2 if settings.REDIS_URL else 1,
            help="gunicorn 进程数（默认1，有Redis时2）",
        )
        parser.add_argument("--web-threads", type=int, default=24, help="每个 gunicorn 进程的线程数（默认24）")
        parser.add_argument("--concurrency", type=int, default=4, help="Celery 任务并发数（默认4）")

    def handle(self, *args, host: str, port: int, web_workers: int, web_threads: int, concurrency: int, **options):
        python = sys.executable
        var = str(settings.VAR_DIR)
        wsgi = ":".join(settings.WSGI_APPLICATION.rsplit(".", 1))
        children = {
            "web": [python, "-m", "gunicorn", wsgi, "--chdir", str(settings.BASE_DIR), "--bind", f"{host}:{port}",
                    "--worker-class", "gthread", "--workers", str(web_workers), "--threads", str(web_threads),
                    "--backlog", "2048", "--timeout", "120", "--keep-alive", "75",
                    "--control-socket", os.path.join(var, "gunicorn.ctl"), "--access-logfile", "-"],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE,
                       "--pool", "threads", "-c", str(concurrency), "-n", f"regional-{port}@%h",
                       "--without-gossip", "--without-mingle", "-l", "info"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info"],
        }  # fmt: skip
        broker = "Redis" if settings.REDIS_URL else f"内置代理（目录 {var}/broker）"
        self.stdout.write(f"启动 Web 服务 http://{host}:{port}/、Celery 任务进程和定时调度（{broker}）；Ctrl-C 停止")
        self.stdout.flush()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
        env.pop("CELERY_EAGER", None)  # the worker runs the tasks, not the process that queues them
        stopping: list[int] = []

        def stop(signum, frame) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        procs: dict[str, subprocess.Popen] = {}
        for name, cmd in children.items():
            # Each child in its own process group: Ctrl-C reaches only this supervisor, which then
            # stops the children once and in order (a second SIGINT would cold-stop the worker).
            procs[name] = subprocess.Popen(cmd, env=env, process_group=0, preexec_fn=_die_with_parent)
            self.stdout.write(f"  {name}: 进程号 {procs[name].pid}")
        self.stdout.flush()
        failed = ""
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    failed = f"{name} 已退出（退出码 {proc.returncode}）"
                    break
            if failed:
                break
            time.sleep(0.5)
        self._stop(procs)
        if failed:
            raise CommandError(f"{failed}，其余进程已停止")
        self.stdout.write("已停止")

    def _stop(self, procs: dict[str, subprocess.Popen]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, proc in procs.items():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} 未在{GRACE_SECONDS}秒内退出，强制结束")
                proc.kill()
                proc.wait(5)
