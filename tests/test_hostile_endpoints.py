"""Property-based hostile input at the referral servlet and the sandbox hospital's SOAP operations:
any input gives a well-formed answer in the interface's own format, never a 500, never a partial write."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from regional.messages.catalog import HOSPITAL_INTERFACES, REFERRAL_INTERFACES
from tests.base import SECRET, message_fields_replace, message_fill, spec_example

XML_SAFE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
HOSTILE = st.one_of(
    XML_SAFE, st.sampled_from(["", "<", "&amp;", "]]>", "9" * 50, "-1", "2026-02-30", "MZ", "zy", "１"])
)


def mutate(interface, draw, overrides: dict) -> str:
    data = interface.request.example()

    message_fields_replace(
        interface.request.fields, data, lambda: draw(HOSTILE) if draw(st.integers(0, 3)) == 0 else None
    )
    data.update({k: v for k, v in overrides.items() if k in data})
    root = etree.Element(interface.request.root)

    message_fill(root, interface.request.fields, data)
    return etree.tostring(root, encoding="unicode")


@pytest.mark.django_db
class ReferralServletPropertyTests:
    @pytest.fixture(autouse=True)
    def hospital_with_token(self, make_hospital):
        make_hospital("PDY1234567890", name="测试社区卫生服务中心", secret=SECRET)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def test_any_referral_message_gets_a_well_formed_answer_and_a_refusal_writes_nothing(self, client, data):
        from referral.models import Referral

        interface = data.draw(st.sampled_from(REFERRAL_INTERFACES))
        body = mutate(interface, data.draw, {"fqyydm": "PDY1234567890", "yydm": "PDY1234567890", "token": SECRET})
        encoding = data.draw(st.sampled_from(["utf-8", "gb18030"]))
        raw = body.encode(encoding, "replace")
        before = Referral.objects.count()
        response = client.generic(
            "POST", "/referral/api/SxzzAppServlet", raw, content_type=f"text/xml; charset={encoding}"
        )
        assert response.status_code < 500
        answer = etree.fromstring(response.content)
        assert answer.findtext("result") in {"true", "false", "error"}
        if answer.findtext("result") != "true":
            assert answer.findtext("message") and Referral.objects.count() == before

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_get_a_well_formed_answer(self, client, raw):
        response = client.generic("POST", "/referral/api/SxzzAppServlet", raw, content_type="text/xml")
        assert response.status_code < 500
        assert etree.fromstring(response.content).findtext("result") in {"false", "error"}

    def test_the_specifications_examples_get_answers_naming_their_placeholder_values(self, client):
        for name in ("referral.xml", "referral-apply.xml"):
            body = spec_example(name).replace("<token>T12302234</token>", f"<token>{SECRET}</token>")
            answer = etree.fromstring(
                client.generic("POST", "/referral/api/SxzzAppServlet", body.encode(), content_type="text/xml").content
            )
            assert answer.findtext("result") == "false" and "jjcd" in answer.findtext("message")


@pytest.mark.django_db
class SandboxOperationPropertyTests:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def test_any_message_to_any_hospital_side_operation_gets_a_result_code_never_a_fault(self, client, data):
        from sandbox.models import SandboxHospital

        SandboxHospital.objects.get_or_create(hospital_no="S0001", defaults={"name": "测试沙箱医院"})
        interface = data.draw(st.sampled_from(HOSPITAL_INTERFACES))
        message = mutate(interface, data.draw, {"HospitalNo": "S0001"})
        envelope = (
            '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            f'<h:{interface.name} xmlns:h="http://regional.health/ws/his"><h:xml>{escape(message)}</h:xml></h:{interface.name}>'
            "</e:Body></e:Envelope>"
        )
        response = client.generic("POST", "/sandbox/his/S0001/ws", envelope.encode(), content_type="text/xml")
        assert response.status_code == 200, response.content[:300]
        body = etree.fromstring(response.content)
        result = next(e for e in body.iter() if isinstance(e.tag, str) and e.tag.endswith("Result"))
        answer = etree.fromstring(result.text.encode())
        assert answer.tag == "Response" and answer.findtext("ResultCode") not in (None, "")


# -- the REST API ------------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=30),
    st.sampled_from(["", "\x00", "3306XXXXXXXXXX0001", "H0001", "2026-02-30", "-1", "9" * 40, "１２"]),
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=20,
)
ORDER_FIELDS = (
    "hospital_no",
    "work_id",
    "num_source_id",
    "patient",
    "card_no",
    "id_card",
    "name",
    "reason",
    "pay_trade_no",
)
REST_POSTS = ["/api/v1/orders/", "/api/v1/orders/search/", "/api/v1/cards/check/", "/api/v1/cards/",
              "/api/v1/orders/NOPE123/pay/", "/api/v1/orders/NOPE123/cancel/", "/api/v1/schedules/1/waitlist/"]  # fmt: skip
REST_GETS = ["/api/v1/hospitals/", "/api/v1/doctors/", "/api/v1/schedules/", "/api/v1/hospitals/H0001/departments/",
             "/api/v1/orders/", "/api/v1/schedules/1/", "/api/v1/nothing/"]  # fmt: skip
QUERY_NAMES = st.sampled_from(
    ["q", "hospital", "department", "doctor", "date", "cursor", "page", "page_size", "id_card"]
)


def assert_api_answer(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    if response.status_code >= 400:
        assert body["code"] and body["message"], body


@pytest.mark.django_db
class RestApiPropertyTests:
    """Issue 14: any JSON body or query string a channel sends gets a JSON answer, never a 500."""

    @pytest.fixture
    def auth(self, db):
        from booking.services.channels import channel_issue_token

        return {"HTTP_AUTHORIZATION": f"Token {channel_issue_token(code='JKMZWX', name='微信')[1]}"}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def test_any_json_body_gets_a_json_answer(self, client, auth, data):
        import json

        path = data.draw(st.sampled_from(REST_POSTS))
        shape = data.draw(
            st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={k: JSON_VALUES for k in ORDER_FIELDS}))
        )
        body = json.dumps(shape)
        if data.draw(st.booleans()):  # and raw bytes that are not JSON at all
            body = data.draw(st.binary(max_size=80))
        response = client.generic("POST", path, body, content_type="application/json", **auth)
        assert_api_answer(response)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        path=st.sampled_from(REST_GETS),
        query=st.dictionaries(QUERY_NAMES, st.one_of(JSON_SCALARS.map(str), st.text()), max_size=4),
    )
    def test_any_query_string_gets_a_json_answer(self, client, auth, path, query):
        assert_api_answer(client.get(path, query, **auth))
