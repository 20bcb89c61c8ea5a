"""The REST API's one request parser: JSON only, bounded before it is read.

DRF's stock parsers read any size, recurse without limit (a body nested 100k deep raised
RecursionError) and accept form bodies with any number of fields; channels send small JSON objects.
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import exceptions, parsers

MAX_DEPTH = 16


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = "请求体过大"


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.REST_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        try:
            announced = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            announced = 0
        if announced > limit:
            raise PayloadTooLarge(f"请求体过大：{announced}字节，上限为{limit}字节")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"请求体过大：上限为{limit}字节")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_no_constants)
        except RecursionError:
            raise exceptions.ParseError(f"JSON嵌套层数过多（上限{MAX_DEPTH}层）") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError("请求体不是有效的JSON") from exc
        _check(data)
        return data


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _check(data) -> None:
    """Depth within MAX_DEPTH and no NUL in any string (PostgreSQL text cannot hold one), iteratively."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise exceptions.ParseError(f"JSON嵌套层数过多（上限{MAX_DEPTH}层）")
        if isinstance(value, str):
            if "\x00" in value:
                raise exceptions.ParseError("请求内容不得包含NUL字符")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise exceptions.ParseError("请求内容不得包含NUL字符")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
