"""gunicorn for the web tier: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`.

Worker model: gthread (threads in each of a few processes), chosen with the figures of
deploy/WORKERS.md: sync workers need one process per concurrent request (a hospital call holds one
for up to HOSPITAL_CALL_TIMEOUT), and an ASGI server runs Django's sync views (Spyne's among them) on
one thread per worker. GUNICORN_WORKER_CLASS switches it for measuring (bench/bench_soap.py).
"""

import gc
import multiprocessing
import os
import pathlib
import shutil

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
# Hospital calls have their own timeout (HOSPITAL_CALL_TIMEOUT); this only stops a stuck worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = 30
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
access_log_format = '{"time":"%(t)s","remote":"%(h)s","request":"%(m)s %(U)s","status":%(s)s,"bytes":%(B)s,"ms":%(M)s,"request_id":"%({x-request-id}o)s"}'

# Prometheus counters of all workers are merged from files in this directory.
_metrics = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/run/regional/metrics")


def on_starting(server):
    shutil.rmtree(_metrics, ignore_errors=True)
    pathlib.Path(_metrics).mkdir(parents=True, exist_ok=True)


def post_worker_init(worker):
    """Load the URLconf (and with it every view and the SOAP applications) and freeze what is loaded:
    the collector then never scans the few hundred thousand objects that live as long as the worker
    (a full collection of them was 0.6 s in a warm process on this machine; the figures in WORKERS.md)."""
    if os.environ.get("GUNICORN_GC_FREEZE", "1") != "1":
        return
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the views
    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
