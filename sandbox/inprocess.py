"""A requests adapter that hands HTTP requests to this Django project in process.

`seed_demo` runs before the web server starts (`make run`), yet the demo hospitals must build the
center's data the way real hospitals do: with SOAP envelopes posted to `/ws/center`. Mounted on
a requests Session (and so under zeep), this adapter carries each request through Django's whole
request handling (middleware, authentication, the Spyne service) without a socket.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from django.test import Client
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

_SKIPPED = {"content-type", "content-length", "host"}


class DjangoInProcessAdapter(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.client = Client(raise_request_exception=False)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # noqa: ARG002
        url = urlsplit(request.url)
        path = url.path or "/"
        if url.query:
            path = f"{path}?{url.query}"
        extra = {
            "HTTP_" + key.upper().replace("-", "_"): value
            for key, value in request.headers.items()
            if key.lower() not in _SKIPPED
        }
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        answer = self.client.generic(
            request.method,
            path,
            data=body,
            content_type=request.headers.get("Content-Type", "application/octet-stream"),
            secure=url.scheme == "https",
            HTTP_HOST=url.netloc,
            **extra,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.reason_phrase
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response._content = b"".join(answer.streaming_content) if answer.streaming else answer.content
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass
