"""Operability: metrics, JSON logs with correlation, rate limits, login lock-out, proxies."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core.cache import cache
from django.test import Client

from tests.base import SECRET


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True)
class MetricsTests:
    def test_interface_calls_are_counted_per_interface_and_hospital(self, hospital, center_client, public_url):
        import requests

        xml = "<Request><TransactionId>m-1</TransactionId><HospitalNo>H0001</HospitalNo><HospitalName>甲</HospitalName></Request>"
        center_client().service.HospitalInfo(xml)
        text = requests.get(f"{public_url}/metrics", timeout=10).text
        assert (
            'regional_interface_calls_total{direction="in",hospital="H0001",interface="HospitalInfo",result="ok",side="center"}'
            in text
        )
        assert "regional_interface_duration_seconds_bucket" in text
        assert 'regional_http_requests_total{route="ws/center",status="2xx"}' in text

    def test_metrics_are_refused_to_addresses_not_configured(self, client, settings):
        settings.METRICS_ALLOWED_NETWORKS = ["10.9.9.0/24"]
        assert client.get("/metrics").status_code == 403


class JsonLogTests:
    def test_a_log_line_is_json_with_the_request_and_transaction_ids_and_masked_numbers(self):
        from regional.logging import MaskPersonalDataFilter
        from regional.observability import ContextFilter, JsonFormatter, request_id_var, transaction_id_var

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(MaskPersonalDataFilter())
        handler.addFilter(ContextFilter())
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("test.json")
        logger.addHandler(handler)
        request_id_var.set("req-1")
        transaction_id_var.set("tx-9")
        try:
            logger.warning("lock failed for %s", "13400001234")
        finally:
            logger.removeHandler(handler)
        entry = json.loads(stream.getvalue())
        assert entry["request_id"] == "req-1" and entry["transaction_id"] == "tx-9"
        assert "13400001234" not in entry["message"] and entry["level"] == "WARNING"

    @pytest.mark.django_db
    def test_every_response_carries_its_request_id(self, client):
        assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
        assert len(client.get("/healthz")["X-Request-ID"]) == 32


@pytest.mark.django_db(transaction=True)
class RateLimitTests:
    def test_a_hospital_over_its_limit_gets_429_with_retry_after(self, hospital, public_url, settings):
        import requests

        settings.RATE_LIMIT_HOSPITAL_PER_MINUTE = 3
        codes = [
            requests.post(f"{public_url}/ws/center", data=b"<x/>", auth=("H0001", SECRET), timeout=10).status_code
            for _ in range(5)
        ]
        assert codes[:3] != [429] * 3 and codes[3:] == [429, 429]
        last = requests.post(f"{public_url}/ws/center", data=b"<x/>", auth=("H0001", SECRET), timeout=10)
        assert "请求过于频繁" in last.text and int(last.headers["Retry-After"]) <= 60

    def test_admin_logins_lock_out_after_repeated_failures(self, django_user_model, settings):
        settings.LOGIN_MAX_FAILURES = 3
        django_user_model.objects.create_superuser("staff", password="right-password-2026")
        c = Client()
        for _ in range(3):
            assert c.post("/admin/login/", {"username": "staff", "password": "wrong"}).status_code == 200
        locked = c.post("/admin/login/", {"username": "staff", "password": "right-password-2026"})
        assert locked.status_code == 429 and "登录失败次数过多" in locked.content.decode()


@pytest.mark.django_db
class LoginLockoutTests:
    """Issue 14 item 3: the lock-out holds for every spelling Django logs in with, across names from
    one address, and while Redis is down."""

    @pytest.fixture
    def victim(self, django_user_model, settings):
        settings.LOGIN_MAX_FAILURES = 3
        return django_user_model.objects.create_superuser("victim3", password="right-password-2026")

    def lock(self, c: Client) -> None:
        for _ in range(3):
            assert c.post("/admin/login/", {"username": "victim3", "password": "wrong"}).status_code == 200

    def test_spellings_that_django_normalises_to_the_locked_name_are_locked_too(self, victim, settings, redis_url):
        settings.CACHES = {"default": {"BACKEND": "regional.cache.ResilientRedisCache", "LOCATION": redis_url}}
        cache.clear()
        c = Client()
        self.lock(c)
        for spelling in ("victim3 ", " victim3", "ｖｉｃｔｉｍ3", "VICTIM3"):
            page = c.post("/admin/login/", {"username": spelling, "password": "right-password-2026"})
            assert page.status_code == 429, spelling
            text = page.content.decode()
            assert "登录失败次数过多" in text and "秒后再试" in text and "<html" in text
            assert 0 < int(page["Retry-After"]) <= 15 * 60
        assert "_auth_user_id" not in c.session
        cache.clear()

    def test_one_address_cannot_spread_guesses_over_many_names(self, victim):
        c = Client()
        refused = [
            c.post("/admin/login/", {"username": f"guess{i}", "password": "wrong"}).status_code for i in range(13)
        ]
        assert refused[:12] == [200] * 12 and refused[12] == 429
        assert c.post("/admin/login/", {"username": "victim3", "password": "right-password-2026"}).status_code == 429
        other = Client(REMOTE_ADDR="192.0.2.44")
        assert (
            other.post("/admin/login/", {"username": "victim3", "password": "right-password-2026"}).status_code == 302
        )

    def test_with_redis_down_a_password_login_is_refused_not_unlimited(self, victim, settings):
        settings.CACHES = {
            "default": {
                "BACKEND": "regional.cache.ResilientRedisCache",
                "LOCATION": "redis://127.0.0.1:1/0",
                "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
            }
        }
        c = Client()
        for password in ("wrong", "right-password-2026"):
            page = c.post("/admin/login/", {"username": "victim3", "password": password})
            assert page.status_code == 503 and "登录保护服务暂时不可用" in page.content.decode()
        assert c.get("/admin/login/").status_code == 200  # the form itself still shows


class TrustedProxyTests:
    def test_x_real_ip_is_believed_only_from_a_trusted_proxy(self, rf, settings):
        from regional.auth import client_address

        settings.TRUSTED_PROXIES = ["127.0.0.1"]
        assert client_address(rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="10.1.2.3")) == "10.1.2.3"
        assert client_address(rf.get("/", REMOTE_ADDR="192.0.2.9", HTTP_X_REAL_IP="10.1.2.3")) == "192.0.2.9"


class RedisDownTests:
    def test_rate_limits_and_breakers_fail_open_when_redis_is_down(self):
        from regional import ratelimit
        from regional.cache import ResilientRedisCache

        dead = ResilientRedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})
        assert dead.get("k") is None and dead.get("k", 5) == 5 and dead.add("k", 1) is True
        with pytest.raises(ValueError):
            dead.incr("k")
        from unittest import mock

        with mock.patch("regional.ratelimit.cache", dead):
            assert ratelimit.allow("hospital:H0001", limit=1) and ratelimit.allow("hospital:H0001", limit=1)
