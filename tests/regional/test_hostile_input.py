"""Property-based hostile input: whatever arrives, the answer is well-formed, in the interface's
own format, never a 500, and nothing is half-written."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from regional import inbound
from regional.auth import Caller
from regional.messages import XmlReadError, read_xml
from regional.messages.catalog import CENTER_INTERFACES
from tests.base import SECRET, message_fields_replace, message_fill

HOSTILE_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["", " ", "<", "&", "]]>", "&amp;", "\x00", "\ud7ff", "9" * 40, "-1", "1.234", "2026-13-45", "25:61"]
    ),
)


class XmlReaderPropertyTests:
    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes_either_parse_or_give_a_reader_error(self, data):
        try:
            read_xml(data)
        except XmlReadError as exc:
            assert exc.message

    @settings(max_examples=300, deadline=None)
    @given(
        st.recursive(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).map(
                lambda t: t.replace("<", "")
            ),
            lambda children: st.tuples(
                st.sampled_from(["Request", "Record", "a", "WorkInfo", "ü", "x-y"]), st.lists(children, max_size=3)
            ).map(lambda pair: f"<{pair[0]}>{''.join(pair[1])}</{pair[0]}>"),
            max_leaves=12,
        ),
        st.sampled_from(["", '<?xml version="1.0" encoding="GBK"?>', "<!DOCTYPE x>", "</ x >"]),
    )
    def test_generated_documents_with_declarations_and_odd_tags_never_escape_the_reader(self, doc, prefix):
        try:
            read_xml((prefix + doc).encode("utf-8"))
        except XmlReadError:
            pass


def _mutated(interface, draw) -> str:
    """The interface's example with every leaf replaced, at random, by hostile text or nothing."""
    data = interface.request.example()

    message_fields_replace(interface.request.fields, data, lambda: draw(HOSTILE_TEXT) if draw(st.booleans()) else None)
    data["HospitalNo"] = "H0001"
    data.pop("HosOrgCode", None) if draw(st.booleans()) else data.update(HosOrgCode="H0001")
    raw = etree.Element(interface.request.root)
    message_fill(raw, interface.request.fields, data, xml_chars_only=True)
    return etree.tostring(raw, encoding="unicode")


def _table_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in connection.introspection.table_names():
            if table.startswith(("regional_", "booking_", "referral_", "reconciliation_")) and table not in {
                "regional_messagelog",
                "regional_inboundtransaction",
            }:
                cursor.execute(f'SELECT count(*) FROM "{table}"')
                counts[table] = cursor.fetchone()[0]
        return counts


@pytest.mark.django_db
class CenterOperationPropertyTests:
    @pytest.mark.parametrize("interface", CENTER_INTERFACES, ids=lambda i: i.name)
    def test_any_message_gets_a_well_formed_answer_and_a_refusal_writes_nothing(self, interface, hospital):
        caller = Caller("127.0.0.1", "basic", hospital)

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.data())
        def check(data):
            message = _mutated(interface, data.draw)
            before = _table_counts()
            outcome = inbound.process(interface, message, caller=caller)
            root = etree.fromstring(outcome.response_text.encode())
            assert root.tag == "Response"
            code = root.findtext("ResultCode")
            assert code in {"0", "1"}
            if code == "1":
                assert root.findtext("ErrorMsg") and "Traceback" not in outcome.response_text
                assert _table_counts() == before

        check()


@pytest.mark.django_db
class CenterEndpointPropertyTests:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [
                    b"",
                    b"<a/>",
                    b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body></e:Body></e:Envelope>',
                    b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><Nope/></e:Body></e:Envelope>',
                    b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><c:HospitalInfo '
                    b'xmlns:c="http://regional.health/ws/center"><c:xml>&lt;Request&gt;</c:xml></c:HospitalInfo></e:Body></e:Envelope>',
                ]
            ),
        )
    )
    def test_no_body_makes_the_center_answer_500(self, hospital, client, body):
        auth = "Basic " + base64.b64encode(f"H0001:{SECRET}".encode()).decode()
        response = client.generic("POST", "/ws/center", body, content_type="text/xml", HTTP_AUTHORIZATION=auth)
        assert response.status_code in {200, 400, 413}
        etree.fromstring(response.content)
