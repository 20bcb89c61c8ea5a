"""Request correlation, JSON logs and Prometheus metrics.

Every log line carries the request id (X-Request-ID or generated) and, inside an interface call,
the TransactionId; personal data is masked by regional.logging.MaskPersonalDataFilter before any
formatter sees it. Metrics are counted at the two chokepoints every call passes (the message log
write and the REST middleware), and database-derived gauges (outbox depth…) are read at scrape
time from collectors the apps register.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import os
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
transaction_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("transaction_id", default="")

INTERFACE_CALLS = Counter(
    "regional_interface_calls_total",
    "Interface calls by side, interface, hospital, direction and result",
    ["side", "interface", "hospital", "direction", "result"],
)
INTERFACE_LATENCY = Histogram(
    "regional_interface_duration_seconds",
    "Interface call duration",
    ["side", "interface", "direction"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_REQUESTS = Counter("regional_http_requests_total", "HTTP requests by route and status class", ["route", "status"])
HTTP_LATENCY = Histogram(
    "regional_http_request_duration_seconds",
    "HTTP request duration by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOCK_EXPIRIES = Counter("regional_lock_expiries_total", "Unpaid hospital locks released after the lock time")

# name -> callable returning [(labels dict, value)], read at scrape time (outbox depth and the like).
GAUGES: dict[str, tuple[str, Callable[[], list[tuple[dict, float]]]]] = {}


def register_gauge(name: str, documentation: str, read: Callable[[], list[tuple[dict, float]]]) -> None:
    GAUGES[name] = (documentation, read)


def record_interface_call(
    *, side: str, interface: str, hospital: str, direction: str, ok: bool, seconds: float
) -> None:
    INTERFACE_CALLS.labels(side, interface, hospital or "-", direction, "ok" if ok else "error").inc()
    INTERFACE_LATENCY.labels(side, interface, direction).observe(seconds)


class _DatabaseGauges:
    def collect(self):
        for name, (documentation, read) in GAUGES.items():
            try:
                samples = read()
            except Exception:  # noqa: BLE001 - a broken gauge must not break the scrape
                continue
            labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for sample_labels, value in samples:
                family.add_metric([str(sample_labels.get(k, "")) for k in labels], value)
            yield family


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for the addresses in METRICS_ALLOWED_NETWORKS only."""
    from regional.auth import client_address

    address = client_address(request)
    try:
        ip = ipaddress.ip_address(address)
        allowed = any(ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)
    except ValueError:
        allowed = False
    if not allowed:
        return HttpResponse("禁止访问", status=403, content_type="text/plain; charset=utf-8")
    registry = _registry()
    db = CollectorRegistry()
    db.register(_DatabaseGauges())
    body = generate_latest(registry) + generate_latest(db)
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")


class RequestContextMiddleware:
    """Request id for log correlation, and request metrics by route."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")[:64]
        rid = incoming if incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        # Set, not reset afterwards: Django logs the response (django.request) after this returns,
        # and a worker thread serves the next request with fresh values anyway.
        request_id_var.set(rid)
        transaction_id_var.set("")
        started = time.monotonic()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match and match.route else "unmatched"
        HTTP_REQUESTS.labels(route, f"{response.status_code // 100}xx").inc()
        HTTP_LATENCY.labels(route).observe(time.monotonic() - started)
        response["X-Request-ID"] = rid
        return response


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.transaction_id = transaction_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request and transaction ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", ""),
            "transaction_id": getattr(record, "transaction_id", ""),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
