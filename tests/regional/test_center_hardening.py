"""Issue 14: attacks on /ws/center's envelope handling, each performed over HTTP against the live
server (items 4, 15 and the SOAP parts of 17)."""

from __future__ import annotations

import time

import pytest
import requests
from lxml import etree

from regional.models import Hospital, InboundTransaction
from tests.conftest import SECRET
from tests.regional.test_center_public import HOSPITAL_XML, envelope, inner_response, post


def fault(response) -> str:
    root = etree.fromstring(response.content)
    return root.findtext(".//faultstring") or ""


def with_attributes(count: int) -> bytes:
    attributes = " ".join(f'a{i}="x"' for i in range(count))
    message = HOSPITAL_XML.format(tx="attr-1", name="甲")
    return envelope("HospitalInfo", message).replace(b"<c:HospitalInfo>", f"<c:HospitalInfo {attributes}>".encode())


@pytest.mark.django_db(transaction=True)
class EnvelopeShapeTests:
    def test_a_hundred_thousand_attributes_are_refused_before_spyne_in_well_under_a_second(self, hospital, public_url):
        body = with_attributes(100_000)
        assert len(body) > 900_000
        started = time.monotonic()
        response = post(public_url, body)
        elapsed = time.monotonic() - started
        assert response.status_code == 400 and "属性超过64个" in fault(response)
        assert elapsed < 3, elapsed  # Spyne alone took over 60 s on this message
        assert inner_response(post(public_url, with_attributes(3)))["ResultCode"] == "0"

    def test_deep_nesting_and_a_flood_of_elements_are_refused(self, hospital, public_url):
        deep = envelope("HospitalInfo", "x").replace(b"<c:xml>x</c:xml>", b"<a>" * 200 + b"</a>" * 200)
        assert "嵌套层数超过64层" in fault(post(public_url, deep))
        flood = envelope("HospitalInfo", "x").replace(b"<c:xml>x</c:xml>", b"<c:xml>" + b"<b/>" * 500_000 + b"</c:xml>")
        response = post(public_url, flood)
        assert response.status_code == 400 and "元素超过400000个" in fault(response)

    def test_two_operations_in_one_body_are_refused_and_neither_runs(self, hospital, public_url):
        one = envelope("HospitalInfo", HOSPITAL_XML.format(tx="two-1", name="甲"))
        other = envelope("HospitalInfo", HOSPITAL_XML.format(tx="two-2", name="乙"))
        second_op = other.split(b"<soapenv:Body>")[1].split(b"</soapenv:Body>")[0]
        both = one.replace(b"</soapenv:Body>", second_op + b"</soapenv:Body>")
        response = post(public_url, both)
        assert response.status_code == 400 and "只能有一个操作元素，收到2个" in fault(response)
        assert not InboundTransaction.objects.filter(transaction_id__startswith="two-").exists()

    def test_an_oversized_body_gets_the_soap_413_fault_not_djangos_html_400(self, hospital, public_url, settings):
        from django.conf import settings as live

        big = b"x" * (live.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
        response = post(
            public_url, envelope("HospitalInfo", "").replace(b"<c:xml></c:xml>", b"<c:xml>" + big + b"</c:xml>")
        )
        assert response.status_code == 413 and response.headers["Content-Type"].startswith("text/xml")
        assert "报文过大" in fault(response)


@pytest.mark.django_db(transaction=True)
class EncodingTests:
    NAME = "密钥医院"

    def test_utf8_declared_as_gbk_in_the_envelope_is_refused_and_never_stored(self, hospital, public_url):
        body = envelope("HospitalInfo", HOSPITAL_XML.format(tx="enc-1", name=self.NAME)).replace(
            b'encoding="UTF-8"', b'encoding="GBK"'
        )
        response = post(public_url, body)
        assert response.status_code == 400 and "UTF-8编码，与声明的字符编码GBK不符" in fault(response)
        assert Hospital.objects.get(hospital_no="H0001").name == "测试第一医院"

    def test_utf8_sent_with_charset_gbk_is_refused(self, hospital, public_url):
        body = envelope("HospitalInfo", HOSPITAL_XML.format(tx="enc-2", name=self.NAME)).split(b"?>", 1)[1]
        response = post(public_url, body, content_type="text/xml; charset=gbk")
        assert response.status_code == 400 and "与声明的字符编码gbk不符" in fault(response)
        assert not Hospital.objects.filter(name__contains="瀵").exists()

    def test_real_gbk_still_applies(self, hospital, public_url):
        text = envelope("HospitalInfo", HOSPITAL_XML.format(tx="enc-3", name=self.NAME)).decode()
        body = text.replace('encoding="UTF-8"', 'encoding="GBK"').encode("gbk")
        assert inner_response(post(public_url, body))["ResultCode"] == "0"
        assert Hospital.objects.get(hospital_no="H0001").name == self.NAME

    def test_a_doctype_in_a_utf16_envelope_is_found(self, hospital, public_url):
        text = envelope("HospitalInfo", HOSPITAL_XML.format(tx="enc-4", name="甲")).decode()
        text = text.replace('encoding="UTF-8"?>', 'encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "boom">]>')
        for body in (text.encode("utf-16"), text.encode("utf-16-le")):
            response = post(public_url, body, content_type="text/xml")
            assert response.status_code == 400 and "DOCTYPE" in fault(response)
        clean = envelope("HospitalInfo", HOSPITAL_XML.format(tx="enc-5", name="甲")).decode()
        clean = clean.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
        assert inner_response(post(public_url, clean, content_type="text/xml"))["ResultCode"] == "0"


@pytest.mark.django_db(transaction=True)
class UsernameTokenTests:
    DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"

    def header(self, password: str, type_: str) -> str:
        return (
            '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
            f'<wsse:UsernameToken><wsse:Username>H0001</wsse:Username><wsse:Password Type="{type_}">{password}'
            "</wsse:Password><wsse:Nonce>bm9uY2U=</wsse:Nonce></wsse:UsernameToken></wsse:Security>"
        )

    def test_a_password_digest_token_is_refused_with_a_clear_fault_even_holding_the_plain_secret(
        self, hospital, public_url
    ):
        import base64
        import hashlib

        digest = base64.b64encode(hashlib.sha1(b"nonce" + b"2026-12-01T00:00:00Z" + SECRET.encode()).digest()).decode()
        for password in (SECRET, digest):
            body = envelope(
                "HospitalInfo", HOSPITAL_XML.format(tx="d1", name="甲"), header=self.header(password, self.DIGEST)
            )
            response = requests.post(f"{public_url}/ws/center", data=body, timeout=10)
            assert response.status_code == 401 and "不支持WS-Security PasswordDigest" in fault(response)
        assert not InboundTransaction.objects.filter(transaction_id="d1").exists()
        text = self.header(SECRET, self.DIGEST.replace("PasswordDigest", "PasswordText"))
        body = envelope("HospitalInfo", HOSPITAL_XML.format(tx="d2", name="甲"), header=text)
        assert inner_response(requests.post(f"{public_url}/ws/center", data=body, timeout=10))["ResultCode"] == "0"


@pytest.mark.django_db(transaction=True)
class DuplicateWorkIdTests:
    """Issue 14 item 17: a WorkId twice in one synchronizedWorkInfo batch is reported, not collapsed."""

    def test_a_repeated_work_id_is_named_with_both_places_and_nothing_is_applied(self, hospital, center_client):
        from booking.models import Schedule
        from tests.base import record, sync_message

        records = [record(1), record(2), record(1, WorkAddr="另一个诊室")]
        reply = center_client().service.synchronizedWorkInfo(sync_message(records, tx="dup-1"))
        root = etree.fromstring(reply.encode())
        assert root.findtext("ResultCode") == "1"
        assert "WorkId W00001在本批次中重复（与第1条相同）" in root.findtext(
            "ErrorMsg"
        ) and "Record[3]" in root.findtext("ErrorMsg")
        assert not Schedule.objects.exists()
