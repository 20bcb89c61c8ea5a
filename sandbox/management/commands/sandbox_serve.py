"""Run the sandbox hospitals as their own server process (load tests, integration drills).

Only `/sandbox/his/<HospitalNo>/ws` is served (URLconf sandbox/serve_urls.py), by
gunicorn with threaded workers, so a slow or "timing out" hospital does not block the others.
WSDL addresses name this server. The sandbox reads its data from the configured database.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django.urls import clear_url_caches

SANDBOX_URLCONF = "sandbox.serve_urls"


class Command(BaseCommand):
    help = "单独运行沙箱医院服务（只提供 /sandbox/his/<医院编号>/ws），用于压测和联调"

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True, help="监听端口")
        parser.add_argument("--host", default="127.0.0.1", help="监听地址（默认127.0.0.1）")
        parser.add_argument("--workers", type=int, default=2, help="进程数（默认2）")
        parser.add_argument("--threads", type=int, default=8, help="每个进程的线程数（默认8）")
        parser.add_argument("--public-url", help="WSDL中公布的地址（默认 http://HOST:PORT）")

    def handle(self, *args, port: int, host: str, workers: int, threads: int, public_url: str | None, **options):
        from django.core.wsgi import get_wsgi_application
        from gunicorn.app.base import BaseApplication

        application = get_wsgi_application()

        settings.ROOT_URLCONF = SANDBOX_URLCONF
        settings.SANDBOX_ENABLED = True  # running the sandbox on its own is switching it on
        settings.PUBLIC_BASE_URL = (public_url or f"http://{host}:{port}").rstrip("/")
        clear_url_caches()
        connections.close_all()  # never share the parent's connections with forked workers

        class SandboxServer(BaseApplication):
            def load_config(self):
                for key, value in {
                    "bind": f"{host}:{port}",
                    "workers": workers,
                    "threads": threads,
                    "worker_class": "gthread",
                    "timeout": 300,
                    "graceful_timeout": 5,
                    "proc_name": "regional-sandbox",
                }.items():
                    self.cfg.set(key, value)

            def load(self):
                return application

        self.stdout.write(f"沙箱医院服务：{settings.PUBLIC_BASE_URL}/sandbox/his/<医院编号>/ws")
        SandboxServer().run()
