"""The one exception handler of the REST API: every error is JSON `{"code", "message"}` in Chinese.

DomainError (and its booking subclasses) keep their code and HTTP status; DRF's own errors get a
stable code and a Chinese message; anything else is a 500 with a reference, its details logged
(masked) and never shown.
"""

from __future__ import annotations

import logging
import uuid

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from regional.errors import DomainError, InvalidInput
from regional.messages import MessageInvalid
from regional.pii import mask_text

logger = logging.getLogger("booking.api")


class InvalidCursor(exceptions.APIException):
    status_code = 400
    default_detail = "分页游标cursor无效：请原样使用上一页应答中的next或previous"
    default_code = "invalid_cursor"


DRF_CODES = {
    InvalidCursor: ("invalid_cursor", None),
    exceptions.NotAuthenticated: ("not_authenticated", "未提供渠道令牌（Authorization: Token <令牌>）"),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", "资源不存在"),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.ParseError: ("parse_error", "请求体不是有效的JSON"),
}


def _body(code: str, message: str, **extra) -> dict:
    return {"code": code, "message": mask_text(message), **extra}


def exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, InvalidInput | MessageInvalid):  # one shape: the violations by path
        errors = {v.path or "non_field_errors": [v.message] for v in exc.violations}
        message = exc.message if isinstance(exc, InvalidInput) else exc.summary()
        return Response(_body(InvalidInput.code, message, errors=errors), status=400)
    if isinstance(exc, DomainError):
        return Response(_body(exc.code, exc.message), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 60)
        response = Response(_body("rate_limited", f"请求过于频繁，请{wait}秒后重试"), status=429)
        response["Retry-After"] = str(wait)
        return response
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first = next(iter(detail.items()), None)
        summary = "请求参数有误"
        if first:
            name, problems = first
            text = problems[0] if isinstance(problems, list) and problems else problems
            summary = f"请求参数有误：{name} {text}" if not isinstance(text, dict) else summary
        return Response(_body("invalid_request", summary, errors=detail), status=400)
    if isinstance(exc, exceptions.APIException):
        code, message = next(((c, m) for cls, (c, m) in DRF_CODES.items() if isinstance(exc, cls)), ("error", None))
        response = Response(_body(code, message or str(exc.detail)), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        return response
    reference = uuid.uuid4().hex[:12]
    logger.exception("REST API error, reference %s", reference)
    return Response(_body("internal_error", f"平台内部错误，请稍后重试（参考号{reference}）"), status=500)
