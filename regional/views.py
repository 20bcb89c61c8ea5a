"""Small platform pages: health, the interface catalogue generated from the message descriptions."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from regional.health import health_report
from regional.messages.catalog import ALL_INTERFACES, CENTER, HOSPITAL, REFERRAL
from regional.messages.schema import KIND_LABELS, Field, RecordList

# /healthz is public and polled: each process checks at most once per HEALTHZ_CACHE_SECONDS and
# answers every other call from that result (a full check pings the workers, ~0.5 s). In process,
# not in Redis: the answer must not depend on the thing it reports on.
_health_lock = threading.Lock()
_health_cache: dict[str, object] = {"at": float("-inf"), "report": None, "key": None}


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker, workers and beat, each with its age; 503 when the platform cannot take bookings."""
    ttl = settings.HEALTHZ_CACHE_SECONDS
    key = (settings.REDIS_URL, connection.settings_dict.get("NAME"))  # what the report is about

    def stale() -> bool:
        return _health_cache["key"] != key or time.monotonic() - _health_cache["at"] > ttl

    if stale():
        # One thread checks; the others answer from the previous result meanwhile (or wait for the first).
        if _health_lock.acquire(blocking=_health_cache["key"] != key):
            try:
                if stale():
                    _health_cache.update(report=health_report(), at=time.monotonic(), key=key)
            finally:
                _health_lock.release()
    report = _health_cache["report"]
    answer = {**report, "checked_seconds_ago": round(time.monotonic() - _health_cache["at"], 1)}
    status = 200 if report["status"] != "down" else 503
    return JsonResponse(answer, status=status, json_dumps_params={"ensure_ascii": False})


def _rows(nodes, depth=0):
    for node in nodes:
        if isinstance(node, Field):
            # The wire format and the codes are shown as code, apart from the Chinese words.
            kind, _, kind_format = KIND_LABELS[node.kind].partition(" ")
            yield {
                "depth": depth,
                "name": node.name,
                "label": node.label,
                "kind": kind,
                "kind_format": kind_format,
                "choices": list(node.choices or ()),
                "required": node.required,
                "max_length": node.max_length or "",
                "sensitive": bool(node.sensitive),
                "since": node.since or "",
            }
        else:
            suffix = f"/{node.item}（可重复）" if isinstance(node, RecordList) else ""
            yield {
                "depth": depth,
                "name": node.name + suffix,
                "label": node.label,
                "kind": "列表" if isinstance(node, RecordList) else "节点",
                "required": node.required,
                "max_length": "",
                "group": True,
            }
            yield from _rows(node.fields, depth + 1)


def interface_docs(request: HttpRequest) -> HttpResponse:
    """Every interface of the specification, generated from the same descriptions the code uses."""
    sides = {
        CENTER: "中心端接口（/ws/center）",
        HOSPITAL: "医院端接口（各医院提供，沙箱医院实现）",
        REFERRAL: "双向转诊接口（/referral/api/SxzzAppServlet）",
    }
    groups = []
    for side, title in sides.items():
        items = []
        for iface in ALL_INTERFACES:
            if iface.side != side:
                continue
            items.append(
                {
                    "interface": iface,
                    "anchor": f"{iface.side}-{iface.name}",
                    "request_rows": list(_rows(iface.request.fields)),
                    "response_rows": list(_rows(iface.response.fields)),
                    "request_example": iface.request.render(iface.request.example(records=1)),
                }
            )
        groups.append({"side": side, "title": title, "items": items})
    return render(request, "regional/interfaces.html", {"groups": groups})


def index(request: HttpRequest) -> HttpResponse:
    """The platform's front page: where each kind of user goes."""
    from regional.models import Hospital

    return render(
        request,
        "regional/index.html",
        {"hospitals": Hospital.objects.filter(is_deleted=False).order_by("seq_no", "hospital_no")[:50]},
    )
