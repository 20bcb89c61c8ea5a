"""Issue 14 item 8, over HTTP against the live server: nobody unauthenticated fills the message log,
and an address over its limit is refused before its body is read."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from django.core.cache import cache
from django.db.models import Sum
from django.db.models.functions import Length

from regional.models import MessageLog
from tests.base import SERVLET, start_xml

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


class AnonymousFloodTests:
    def test_a_hundred_unauthenticated_posts_of_200_kb_leave_only_short_records(self, sender, public_url):
        body = start_xml(bszy="很" * 60_000).encode("utf-8")  # a well-formed referral of ~200 KB, no credentials
        assert len(body) > 180_000
        session = requests.Session()
        started = time.monotonic()
        for _ in range(100):
            answer = session.post(public_url + SERVLET, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
            assert answer.status_code == 200 and b"<result>false</result>" in answer.content
        elapsed = time.monotonic() - started
        stored = MessageLog.objects.aggregate(size=Sum(Length("request_text")) + Sum(Length("response_text")))["size"]
        assert MessageLog.objects.count() == 100 and stored < 100 * 2000, stored
        assert all("仅保留前512个字符" in t for t in MessageLog.objects.values_list("request_text", flat=True))
        assert elapsed < 60

    def test_garbage_from_nobody_is_kept_short_too(self, public_url):
        requests.post(public_url + SERVLET, data=b"<x>" + b"y" * 300_000, timeout=30)
        assert len(MessageLog.objects.get().request_text) < 1000

    def test_an_address_over_its_limit_is_refused_before_the_body_is_read(self, sender, public_url, settings):
        settings.RATE_LIMIT_ADDRESS_PER_MINUTE = 3
        for _ in range(3):
            requests.post(public_url + SERVLET, data=b"<referral/>", timeout=10)
        logged = MessageLog.objects.count()
        # Announce a 9.9 MB body and send none of it: the answer comes without the server waiting.
        url = urlsplit(public_url)
        with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
            conn.sendall(
                f"POST {SERVLET} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: text/xml\r\n"
                f"Content-Length: {9_900_000}\r\nConnection: close\r\n\r\n<referral>".encode()
            )
            started = time.monotonic()
            chunks = []
            while b"</referral>" not in b"".join(chunks) and time.monotonic() - started < 3:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            reply = b"".join(chunks).decode("utf-8", "replace")
            assert time.monotonic() - started < 3
        assert reply.startswith("HTTP/1.1 429") and "Retry-After" in reply and "请求过于频繁" in reply
        assert MessageLog.objects.count() == logged


class EncodingLieTests:
    """Issue 14 item 15 at the servlet: UTF-8 declared as GBK is refused, never stored as mojibake."""

    def test_utf8_declared_as_gbk_is_refused(self, sender, post):
        from referral.models import Referral

        body = '<?xml version="1.0" encoding="GBK"?>' + start_xml()
        for raw, content_type in (
            (body.encode("utf-8"), "text/xml"),
            (start_xml().encode("utf-8"), "text/xml; charset=gbk"),
        ):
            reply = post(raw, content_type=content_type)
            assert reply.result == "false" and "内容是UTF-8编码" in reply.message
        assert not Referral.objects.exists()
        assert post(body.encode("gbk"), content_type="text/xml").result == "true"
