"""Content-Security-Policy for every response, and the answer while the database is away.

Scripts run only from the platform itself or, inline, with this response's nonce
(`<script nonce="{{ request.csp_nonce }}">`): an injected `<script>` or `onclick` never runs, even if
escaping were missed somewhere. Styles may be inline (the admin and the referral pages use style
attributes); nothing is framed, no plugin loads, forms post only to the platform.
"""

from __future__ import annotations

import logging
import secrets

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("regional.security")
DATABASE_AWAY = "平台数据库暂时不可用，请稍后重试"

POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", POLICY.format(nonce=request.csp_nonce))
        return response


class DatabaseUnavailableMiddleware:
    """While PostgreSQL is away (restart, failover), answer 503 in each interface's own format
    instead of Django's HTML 500 page: a SOAP fault on the SOAP endpoints, the referral answer on the
    servlet, the API's JSON on /api/, a short Chinese page elsewhere."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError) and not _connection_lost(exception):
            return None
        logger.warning("database unavailable for %s: %s", request.path, type(exception).__name__)
        response = database_unavailable_response(request.path)
        response["Retry-After"] = "5"
        return response


def _connection_lost(exception: Exception) -> bool:
    return isinstance(exception, DatabaseError) and "connection" in str(exception).lower()


def database_unavailable_response(path: str) -> HttpResponse:
    if path.startswith("/api/"):
        return JsonResponse({"code": "database_unavailable", "message": DATABASE_AWAY}, status=503)
    if path.startswith(("/ws/", "/sandbox/his/")):
        from regional.soap.mount import soap_fault

        return soap_fault(DATABASE_AWAY, 503)
    if path.startswith("/referral/api/"):
        from xml.sax.saxutils import escape

        text = f"<referral><result>false</result><message>{escape(DATABASE_AWAY)}</message><parm></parm></referral>"
        return HttpResponse(text, status=503, content_type="text/xml; charset=UTF-8")
    return HttpResponse(DATABASE_AWAY, status=503, content_type="text/plain; charset=utf-8")
