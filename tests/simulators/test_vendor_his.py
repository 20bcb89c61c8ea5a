"""The vendor-style hospital itself, spoken to over HTTP with hand-written envelopes."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

import requests
from lxml import etree

from tests.simulators.vendor_his import SOAP11, SOAP12

LOCK = (
    "<Request><TransactionId>T1</TransactionId><HospitalNo>V001</HospitalNo><Name>测试患者</Name>"
    "<TelephoneNo>13400001234</TelephoneNo><IDCode>3306XXXXXXXXXX0001</IDCode><WorkId>W1</WorkId></Request>"
)


def envelope(style, operation: str, message: str, *, qualified: bool | None = None, part: str | None = None) -> str:
    soap = SOAP12 if style.soap == "1.2" else SOAP11
    qualified = style.qualified_part if qualified is None else qualified
    part = part or style.part
    part_tag = f"h:{part}" if qualified else part
    return (
        f'<s:Envelope xmlns:s="{soap}" xmlns:h="{style.namespace}"><s:Body><h:{operation}>'
        f"<{part_tag}>{escape(message)}</{part_tag}></h:{operation}></s:Body></s:Envelope>"
    )


def post(his, operation: str, message: str, **kwargs) -> requests.Response:
    style = his.style
    if style.soap == "1.2":
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{style.expected_action(operation)}"'}
    else:
        headers = {"Content-Type": f"text/xml; charset={style.encoding}", "SOAPAction": '""'}
    headers.update(kwargs.pop("headers", {}))
    body = envelope(style, operation, message, **kwargs).encode(style.encoding)
    return requests.post(his.url, data=body, headers=headers, timeout=5)


def inner(response: requests.Response) -> etree._Element:
    """The inner answer: the text of `<return>` (CXF) or `<opResult>` (asmx)."""
    root = etree.fromstring(response.content)
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    result = next(e for e in elements if re.fullmatch(r"return|\w+Result", etree.QName(e).localname))
    return etree.fromstring(result.text.encode("utf-8"))


class VendorHisTests:
    def test_cxf_refuses_a_namespaced_part_the_way_jaxb_does(self, vendor_his):
        his = vendor_his("cxf", "V001")
        his.state.add_session("W1", "2026-12-02", 5)
        refused = post(his, "confirmRegistration", LOCK, qualified=True)
        assert refused.status_code == 500
        assert 'unexpected element (uri:"http://webservice.his.example.com/", local:"xmlStr")' in refused.text
        assert "Expected elements are &lt;{}xmlStr&gt;" in refused.text
        answer = inner(post(his, "confirmRegistration", LOCK))
        assert answer.findtext("ResultCode") == "0" and answer.findtext("Fee") == "12.5000"

    def test_asmx_speaks_only_soap_12_and_dispatches_on_the_action(self, vendor_his):
        his = vendor_his("asmx", "V002")
        his.state.add_session("W1", "2026-12-02", 5)
        soap11 = requests.post(
            his.url, data=envelope(his.style, "confirmRegistration", LOCK).encode(),
            headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=5,
        )  # fmt: skip
        assert soap11.status_code == 415
        wrong_action = post(
            his, "confirmRegistration", LOCK.replace("V001", "V002"),
            headers={"Content-Type": 'application/soap+xml; charset=utf-8; action="confirmRegistration"'},
        )  # fmt: skip
        assert (
            wrong_action.status_code == 500
            and "did not recognize the value of HTTP Header SOAPAction" in wrong_action.text
        )
        answer = inner(post(his, "confirmRegistration", LOCK.replace("V001", "V002")))
        assert answer.findtext("ResultCode") == "0"

    def test_gbk_answers_in_gbk_with_lower_case_names(self, vendor_his):
        his = vendor_his("gbk", "V003")
        his.state.add_session("W1", "2026-12-02", 5)
        response = post(his, "confirmRegistration", LOCK.replace("V001", "V003"))
        assert "charset=GBK" in response.headers["Content-Type"]
        assert b'<?xml version="1.0" encoding="GBK"?>' in response.content
        answer = inner(response)
        assert answer.tag == "response" and answer.findtext("resultcode") == "0"
        assert answer.findtext("fee") == "12.5000"

    def test_a_second_booking_of_the_same_patient_is_refused_even_with_the_same_transaction_id(self, vendor_his):
        his = vendor_his("cxf", "V001")
        his.state.add_session("W1", "2026-12-02", 5)
        assert inner(post(his, "confirmRegistration", LOCK)).findtext("ResultCode") == "0"
        again = inner(post(his, "confirmRegistration", LOCK))
        assert again.findtext("ResultCode") == "1" and again.findtext("ErrorMsg") == "该患者已预约该班次，不能重复预约"
        assert his.state.sessions["W1"].remaining == 4

    def test_card_lists_carry_java_timestamps(self, vendor_his):
        his = vendor_his("cxf", "V001")
        message = "<Request><HospitalNo>V001</HospitalNo><UserCardNo>3306XXXXXXXXXX0001</UserCardNo><CardType>01</CardType></Request>"
        card = inner(post(his, "queryCardListInfo", message)).find("cardList/Record")
        assert card.findtext("CreateTime").endswith(".0") and len(card.findtext("CreateTime")) == 21
