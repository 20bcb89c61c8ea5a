"""Issue 16, the SOAP path: credentials cached per process and invalidated at once on rotation,
revocation and staff changes of the hospital (in one process and across two gunicorn workers); the
rate limit and the cache's generation in one Redis round trip; the replay record and the message log
written with the call's work, in the same round trip as its commit."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.cache import caches
from django.test import Client

from regional import auth, ratelimit
from regional.models import HospitalCredential, InboundTransaction, MessageLog
from tests.base import SECRET, basic
from tests.services import start_gunicorn, stop_gunicorn

NEW_SECRET = "test-secret-not-for-production-0002"


def envelope(xml: str, operation: str = "HospitalInfo") -> bytes:
    from xml.sax.saxutils import escape

    return (
        '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        f'<c:{operation} xmlns:c="http://regional.health/ws/center"><c:xml>{escape(xml)}</c:xml></c:{operation}>'
        "</e:Body></e:Envelope>"
    ).encode()


def hospital_info(tx: str, name: str = "测试第一医院") -> bytes:
    return envelope(
        f"<Request><TransactionId>{tx}</TransactionId><HospitalNo>H0001</HospitalNo>"
        f"<HospitalName>{name}</HospitalName></Request>"
    )


def answer(response) -> str:
    return response.content.decode().replace("&lt;", "<").replace("&gt;", ">")


@pytest.fixture
def shared_cache(settings, redis_url):
    """The production cache: Redis, shared by every process (the credential cache is off without it)."""
    settings.CACHES = {"default": {"BACKEND": "regional.cache.ResilientRedisCache", "LOCATION": redis_url}}
    caches["default"].clear()
    auth.bump_generation()
    yield redis_url
    caches["default"].clear()
    auth.bump_generation()


def rotate(hospital_no: str, secret: str) -> None:
    credential = HospitalCredential.objects.get(hospital__hospital_no=hospital_no)
    credential.set_secret(secret)
    credential.save()


@pytest.mark.django_db(transaction=True)
class CredentialCacheTests:
    def test_a_known_credential_is_checked_without_the_database(
        self, hospital, shared_cache, django_assert_num_queries
    ):
        generation = auth.read_generation()
        assert auth.check_secret("H0001", SECRET, generation=generation) is not None  # loads it
        with django_assert_num_queries(0):
            assert auth.check_secret("H0001", SECRET, generation=generation).hospital_no == "H0001"
            assert auth.check_secret("H0001", "wrong", generation=generation) is None

    def test_a_rotated_secret_is_refused_at_the_next_call(self, hospital, shared_cache):
        client = Client()
        assert (
            b"&lt;ResultCode&gt;0"
            in client.post(
                "/ws/center", hospital_info("c-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
            ).content
        )
        rotate("H0001", NEW_SECRET)
        old = client.post(
            "/ws/center", hospital_info("c-2"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        assert old.status_code == 401
        new = client.post(
            "/ws/center", hospital_info("c-3"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001", NEW_SECRET)
        )
        assert "<ResultCode>0</ResultCode>" in answer(new)

    def test_a_revoked_credential_is_refused_at_the_next_call(self, hospital, shared_cache):
        generation = auth.read_generation()
        assert auth.check_secret("H0001", SECRET, generation=generation) is not None
        HospitalCredential.objects.filter(hospital=hospital).get().delete()
        assert auth.check_secret("H0001", SECRET) is None

    def test_a_staff_change_of_the_hospital_invalidates_but_its_own_hospital_info_does_not(
        self, hospital, shared_cache
    ):
        client = Client()
        client.post("/ws/center", hospital_info("s-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        before = auth.read_generation()
        client.post(
            "/ws/center", hospital_info("s-2", "改名医院"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        assert auth.read_generation() == before
        cached = auth.check_secret("H0001", SECRET, generation=before)
        assert cached.name == "改名医院"  # this process's copy took on the committed master data
        hospital.refresh_from_db()
        hospital.endpoint_url = "http://127.0.0.1:9/his"
        hospital.save()
        assert auth.read_generation() != before
        assert auth.check_secret("H0001", SECRET).endpoint_url == "http://127.0.0.1:9/his"

    def test_hospital_info_writes_only_its_own_columns_over_a_stale_cached_copy(self, hospital, shared_cache):
        client = Client()
        client.post("/ws/center", hospital_info("o-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        # Another worker's staff change that this process's cache has not seen yet (no signal here).
        type(hospital).objects.filter(pk=hospital.pk).update(
            endpoint_url="http://127.0.0.1:9/his", soap_encoding="GBK", interface_version="2.0"
        )
        response = client.post(
            "/ws/center", hospital_info("o-2", "又改名医院"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        assert "<ResultCode>0</ResultCode>" in answer(response)
        hospital.refresh_from_db()
        assert hospital.name == "又改名医院"
        assert (hospital.endpoint_url, hospital.soap_encoding, hospital.interface_version) == (
            "http://127.0.0.1:9/his",
            "GBK",
            "2.0",
        )

    def test_a_hospital_deleting_itself_invalidates_the_cache(self, hospital, shared_cache):
        client = Client()
        client.post("/ws/center", hospital_info("d-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        before = auth.read_generation()
        deleted = envelope(
            "<Request><TransactionId>d-2</TransactionId><HospitalNo>H0001</HospitalNo>"
            "<HospitalName>测试第一医院</HospitalName><IsDelete>1</IsDelete></Request>"
        )
        response = client.post("/ws/center", deleted, content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        assert "<ResultCode>0</ResultCode>" in answer(response)
        hospital.refresh_from_db()
        assert hospital.is_deleted
        assert auth.read_generation() != before

    def test_the_cached_hospital_is_a_copy_that_a_rolled_back_handler_cannot_change(self, hospital, shared_cache):
        generation = auth.read_generation()
        first = auth.check_secret("H0001", SECRET, generation=generation)
        first.endpoint_url = "http://changed.invalid/"
        assert auth.check_secret("H0001", SECRET, generation=generation).endpoint_url != first.endpoint_url


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class TwoWorkerInvalidationTests:
    def test_a_secret_rotated_in_one_process_is_refused_by_every_worker_at_once(self, hospital, shared_cache, tmp_path):
        from django.db import connection

        database = connection.settings_dict
        url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        proc, base = start_gunicorn(
            database_url=url, log_path=os.path.join(tmp_path, "gunicorn.log"), workers=2, threads=4,
            env={"REDIS_URL": shared_cache, "CELERY_EAGER": "1"},
        )  # fmt: skip
        try:

            def call(n: int, secret: str) -> int:
                # A new connection per call: gunicorn hands them to both workers.
                response = requests.post(
                    f"{base}/ws/center", data=hospital_info(f"w-{secret[-1]}-{n}"), auth=("H0001", secret),
                    headers={"Content-Type": "text/xml; charset=utf-8", "Connection": "close"}, timeout=30,
                )  # fmt: skip
                return response.status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(lambda n: call(n, SECRET), range(40))) == {200}  # every worker has it cached
                rotate("H0001", NEW_SECRET)
                assert set(pool.map(lambda n: call(n, SECRET), range(40))) == {401}
                assert set(pool.map(lambda n: call(n, NEW_SECRET), range(40))) == {200}
        finally:
            stop_gunicorn(proc)


@pytest.mark.django_db(transaction=True)
class RateLimitRoundTripTests:
    def test_the_hit_and_the_generation_come_back_from_one_pipeline(self, shared_cache):
        auth.bump_generation()
        allowed, raw = ratelimit.allow_reading("hospital:H0009", limit=2, read=auth.GENERATION_KEY)
        assert allowed and auth.decode_generation(raw) == auth.read_generation()
        assert ratelimit.hits("hospital:H0009") == 1
        assert ratelimit.allow_reading("hospital:H0009", limit=2, read=auth.GENERATION_KEY)[0]
        assert not ratelimit.allow_reading("hospital:H0009", limit=2, read=auth.GENERATION_KEY)[0]
        ratelimit.forgive("hospital:H0009")
        assert ratelimit.hits("hospital:H0009") == 2

    def test_callers_with_a_wrong_secret_do_not_use_up_the_hospitals_limit(self, hospital, shared_cache, settings):
        settings.RATE_LIMIT_HOSPITAL_PER_MINUTE = 2
        client = Client()
        for n in range(5):
            wrong = client.post(
                "/ws/center", hospital_info(f"r-x{n}"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001", "x")
            )
            assert wrong.status_code == 401
        statuses = [
            client.post(
                "/ws/center", hospital_info(f"r-{n}"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
            ).status_code
            for n in range(3)
        ]
        assert statuses == [200, 200, 429]


@pytest.mark.django_db(transaction=True)
class ReplayInOneRoundTripTests:
    def test_a_repeat_is_answered_with_the_first_answer_and_each_call_is_logged_once(self, hospital, shared_cache):
        client = Client()
        first = client.post(
            "/ws/center", hospital_info("p-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        again = client.post(
            "/ws/center", hospital_info("p-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        assert "<ResultCode>0</ResultCode>" in answer(first) and answer(again) == answer(first)
        assert InboundTransaction.objects.filter(transaction_id="p-1").count() == 1
        assert MessageLog.objects.filter(transaction_id="p-1", ok=True).count() == 2

    def test_the_same_transaction_id_for_another_message_is_refused(self, hospital, shared_cache):
        client = Client()
        client.post("/ws/center", hospital_info("p-2"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        other = client.post(
            "/ws/center", hospital_info("p-2", "另一名称"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        assert "访问流水号p-2已用于另一报文" in answer(other)
        hospital.refresh_from_db()
        assert hospital.name == "测试第一医院"  # the refused repeat's work was rolled back

    def test_concurrent_first_attempts_of_one_transaction_id_apply_it_once(self, hospital, shared_cache, live_server):
        barrier = threading.Barrier(6)

        def attempt(_):
            barrier.wait()
            return answer(
                requests.post(
                    f"{live_server.url}/ws/center",
                    data=hospital_info("p-3"),
                    auth=("H0001", SECRET),
                    headers={"Content-Type": "text/xml; charset=utf-8"},
                    timeout=30,
                )  # fmt: skip
            )

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(attempt, range(6)))
        assert len(set(answers)) == 1 and "<ResultCode>0</ResultCode>" in answers[0]
        assert InboundTransaction.objects.filter(transaction_id="p-3").count() == 1
        assert MessageLog.objects.filter(transaction_id="p-3").count() == 6


@pytest.mark.django_db(transaction=True)
class DirectCallTests:
    def test_the_plain_envelope_is_answered_byte_for_byte_as_spyne_answers_it(self, hospital):
        client = Client()
        direct = client.post(
            "/ws/center", hospital_info("d-1"), content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001")
        )
        # An (empty) header sends the same call through Spyne.
        through_spyne = hospital_info("d-2").replace(b"<e:Body>", b"<e:Header/><e:Body>")
        spyne = client.post("/ws/center", through_spyne, content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        assert direct.status_code == spyne.status_code == 200
        assert direct.content == spyne.content and direct["Content-Type"] == spyne["Content-Type"]
        assert "<ResultCode>0</ResultCode>" in answer(direct)
        assert MessageLog.objects.filter(transaction_id__in=["d-1", "d-2"], ok=True).count() == 2

    def test_a_refused_message_is_answered_alike_on_both_paths(self, hospital):
        client = Client()
        wrong = envelope("<Request><TransactionId>d-3</TransactionId><HospitalNo>H0002</HospitalNo></Request>")
        direct = client.post("/ws/center", wrong, content_type="text/xml", HTTP_AUTHORIZATION=basic("H0001"))
        spyne = client.post(
            "/ws/center", wrong.replace(b"<e:Body>", b"<e:Header/><e:Body>"), content_type="text/xml",
            HTTP_AUTHORIZATION=basic("H0001"),
        )  # fmt: skip
        assert direct.content == spyne.content and "<ResultCode>1</ResultCode>" in answer(direct)
