from __future__ import annotations

import pytest

from regional.messages import MessageInvalid, XmlReadError, read_xml
from regional.messages.catalog import ALL_INTERFACES, CHECK_MEDI_CARD, DOCTOR_INFO, REFERRAL_QUERY
from tests.base import spec_example


class MessageDescriptionTests:
    @pytest.mark.parametrize("interface", ALL_INTERFACES, ids=lambda i: f"{i.side}.{i.name}")
    def test_every_example_built_from_a_description_parses_back_to_the_same_data(self, interface):
        for message in (interface.request, interface.response):
            data = message.example()
            again = message.parse(read_xml(message.render(data)))
            for field in message.fields:
                if hasattr(field, "kind"):
                    assert again[field.name] == data[field.name], field.name

    def test_it_reports_every_violation_with_its_path(self):
        data = DOCTOR_INFO.request.example()
        data["DoctorInfo"][1]["IsZJ"] = "2"
        data["DoctorInfo"][0]["DoctorName"] = "很" * 21
        data["Count"] = 5
        with pytest.raises(MessageInvalid) as caught:
            DOCTOR_INFO.request.parse(read_xml(DOCTOR_INFO.request.render(data)))
        text = [str(v) for v in caught.value.violations]
        assert "DoctorInfo/Record[1]/DoctorName 长度不能超过20个字符（实际21个）" in text
        assert any(t.startswith("DoctorInfo/Record[2]/IsZJ 取值应为0（否）、1（是）之一") for t in text)

    def test_the_specifications_unclosed_tag_and_spaced_end_tags_parse(self):
        root = read_xml(spec_example("hospital.CheckMediCardIdService.request.xml"))
        with pytest.raises(MessageInvalid) as caught:
            CHECK_MEDI_CARD.request.parse(root)
        paths = {v.path for v in caught.value.violations}
        assert paths == {"HospitalNo", "UserCardNo", "UserName"}

    def test_element_names_and_enumerations_match_case_insensitively(self):
        root = read_xml(
            "<referral-query><YYDM>H1</YYDM><Ysgh>D1</Ysgh><hzxm>测试</hzxm><jzkh>A1</jzkh>"
            "<JZKLX>0</JZKLX><sfzh>3306XXXXXXXX0001</sfzh></referral-query>"
        )
        assert REFERRAL_QUERY.request.parse(root)["yydm"] == "H1"

    def test_a_gbk_declaration_is_honoured(self):
        body = '<?xml version="1.0" encoding="GBK"?><Request><Name>测试</Name></Request>'.encode("gbk")
        assert read_xml(body).find("Name").text == "测试"

    @pytest.mark.parametrize(
        "body",
        [
            b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
            b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
        ],
    )
    def test_dtds_and_entities_are_refused(self, body):
        with pytest.raises(XmlReadError, match="DTD"):
            read_xml(body)

    def test_malformed_xml_names_line_and_column(self):
        with pytest.raises(XmlReadError, match="第2行"):
            read_xml("<Request>\n<A></B></Request>")

    def test_oversized_messages_are_refused(self):
        with pytest.raises(XmlReadError, match="报文过大"):
            read_xml(b"<a>" + b"x" * 100 + b"</a>", max_bytes=50)


class LiberalReadingTests:
    """What hospitals really send (issue 15): read liberally, render as the specification prints."""

    def test_amounts_with_four_decimals_and_spaces_are_read_and_rendered_with_two(self):
        from regional.messages.catalog import CONFIRM_REGISTRATION

        root = read_xml(
            "<Response><ResultCode>0</ResultCode><WorkFlowId>WF1</WorkFlowId><WorkId>W1</WorkId>"
            "<Fee> 12.5000 </Fee></Response>"
        )
        data = CONFIRM_REGISTRATION.response.parse(root)
        assert str(data["Fee"]) == "12.50"
        assert "<Fee>12.50</Fee>" in CONFIRM_REGISTRATION.response.render(data)

    def test_a_negative_or_non_numeric_amount_is_still_refused(self):
        from regional.messages.catalog import CONFIRM_REGISTRATION

        for fee in ("-1.00", "12,50", "abc"):
            root = read_xml(
                f"<Response><ResultCode>0</ResultCode><WorkFlowId>W</WorkFlowId><WorkId>W</WorkId><Fee>{fee}</Fee></Response>"
            )
            with pytest.raises(MessageInvalid, match="Fee 应为金额"):
                CONFIRM_REGISTRATION.response.parse(root)

    def test_java_timestamps_are_read_in_card_lists_and_datetimes(self):
        from regional.messages.catalog import PROMISE_NOTICE_CENTER, QUERY_CARD_LIST

        cards = QUERY_CARD_LIST.response.parse(
            read_xml(
                "<Response><ResultCode>0</ResultCode><cardList><Record><CardNo>C1</CardNo>"
                "<CreateTime>2026-12-01 19:33:09.0</CreateTime><LastTime>2026-12-01 19:33:09.123</LastTime>"
                "</Record></cardList></Response>"
            )
        )
        assert cards["cardList"][0]["CreateTime"] == "2026-12-01 19:33:09.0"
        data = PROMISE_NOTICE_CENTER.request.example()
        data["WorkInfo"] = data["WorkInfo"][:1]
        text = PROMISE_NOTICE_CENTER.request.render(data).replace(
            data["WorkInfo"][0]["workDate"].strftime("%Y-%m-%d %H:%M:%S"), "2026-12-01 19:33:09.0"
        )
        parsed = PROMISE_NOTICE_CENTER.request.parse(read_xml(text))
        assert parsed["WorkInfo"][0]["workDate"].isoformat(sep=" ") == "2026-12-01 19:33:09"

    def test_synchronized_work_info_without_count_is_accepted(self):
        from regional.messages.catalog import SYNCHRONIZED_WORK_INFO

        data = SYNCHRONIZED_WORK_INFO.request.example()
        data["Count"] = None
        assert (
            SYNCHRONIZED_WORK_INFO.request.parse(read_xml(SYNCHRONIZED_WORK_INFO.request.render(data)))["Count"] is None
        )

    def test_every_violation_is_reported_the_count_mismatch_included(self):
        data = DOCTOR_INFO.request.example()
        data["DoctorInfo"][0]["DoctorName"] = "很" * 21
        data["DoctorInfo"][1]["IsZJ"] = None
        data["Count"] = 5
        with pytest.raises(MessageInvalid) as caught:
            DOCTOR_INFO.request.parse(read_xml(DOCTOR_INFO.request.render(data)))
        paths = [v.path for v in caught.value.violations]
        assert paths == ["DoctorInfo/Record[1]/DoctorName", "DoctorInfo/Record[2]/IsZJ", "Count"]

    def test_a_check_does_not_repeat_an_element_that_already_failed(self):
        from regional.messages.catalog import RECONCILIATION_INFO

        root = read_xml(
            "<Request><TransactionId>T1</TransactionId><HosOrgCode>H1</HosOrgCode>"
            "<OrderInfo><StartDate>2026-13-01</StartDate><EndDate>2026-12-01</EndDate></OrderInfo></Request>"
        )
        with pytest.raises(MessageInvalid) as caught:
            RECONCILIATION_INFO.request.parse(root)
        assert [v.path for v in caught.value.violations] == ["OrderInfo/StartDate"]


class SendingTests:
    """What the platform sends fits the receiver: byte lengths in its encoding, its interface version."""

    def test_lengths_are_counted_in_bytes_of_the_receivers_encoding_when_sending(self):
        from regional.messages.catalog import CONFIRM_REGISTRATION

        data = CONFIRM_REGISTRATION.request.example()
        data["SexName"] = "未说明的性别之外的性别"  # 11 characters: 22 bytes in GBK, 33 in UTF-8; the column is 20
        root = read_xml(CONFIRM_REGISTRATION.request.render(data))
        assert CONFIRM_REGISTRATION.request.parse(root)["SexName"] == data["SexName"]  # read: characters
        with pytest.raises(MessageInvalid, match=r"SexName 长度不能超过20字节（按GBK编码实际22字节）"):
            CONFIRM_REGISTRATION.request.parse(root, encoding="GBK")

    def test_free_text_is_shortened_to_fit_the_receivers_bytes(self):
        from regional.messages.catalog import PROMISE_NOTICE_HOSPITAL
        from regional.messages.schema import byte_length

        data = {"TransactionId": "T1", "HospitalNo": "H1", "WorkFlowId": "WF1", "desc": "患者因故取消" * 50}
        for encoding in ("GBK", "UTF-8"):
            text = PROMISE_NOTICE_HOSPITAL.request.render(data, encoding=encoding)
            parsed = PROMISE_NOTICE_HOSPITAL.request.parse(read_xml(text), encoding=encoding)
            assert parsed["desc"].endswith("…") and byte_length(parsed["desc"], encoding) <= 300

    def test_the_health_card_is_not_sent_to_a_hospital_before_v23(self):
        from regional.messages.catalog import CONFIRM_REGISTRATION, QUERY_CARD_LIST

        data = CONFIRM_REGISTRATION.request.example({"CardType": "02"})
        root = read_xml(CONFIRM_REGISTRATION.request.render(data, version="2.0"))
        with pytest.raises(
            MessageInvalid, match=r"CardType 取值02（居民健康卡）自接口版本V2.3起才有，对方接口版本为V2.0"
        ):
            CONFIRM_REGISTRATION.request.parse(root, version="2.0")
        assert CONFIRM_REGISTRATION.request.parse(root, version="2.3")["CardType"] == "02"
        assert CONFIRM_REGISTRATION.request.parse(root)["CardType"] == "02"  # what is received never requires it
        cards = QUERY_CARD_LIST.request.example({"CardType": "02"})
        with pytest.raises(MessageInvalid, match="CardType"):
            QUERY_CARD_LIST.request.parse(read_xml(QUERY_CARD_LIST.request.render(cards)), version="2.2")

    def test_a_payment_answer_without_serial_number_and_worktime_is_a_success(self):
        from regional.messages.catalog import PAYMENT_NOTICE

        answer = PAYMENT_NOTICE.response.parse(
            read_xml("<Response><ResultCode>0</ResultCode><ErrorMsg/><WorkFlowId>HIS1</WorkFlowId></Response>")
        )
        assert answer["WorkFlowId"] == "HIS1" and answer["SerialNumber"] is None and answer["Worktime"] is None


# Values on both sides of every fast path of the compiled parser (blank, overlong, wrong kind, the
# liberal spellings the interpreted parser accepts, and inputs a hospital's HIS really sends).
_PROBES = (
    "", "   ", "x!", "1", "-1", "+3", " 07 ", "١٢", "2026-1-5", "20261205", "2026-02-30", "2026-W49-1",
    "2026-12-01 19:33:09.0", "2026-12-01T08:00", "08:00", "8：00", "25:00", "12.5000", ".5", "-0.01",
    "1e3", "true", "是", "Y", "0", "01", "mz", "MZ", "Zy", "AAAA",
)  # fmt: skip


def _interpreted(message, root, encoding=None, version=None):
    from regional.messages.schema import _parse_nodes

    out = []
    data = _parse_nodes(message.fields, root, "", out, {"encoding": encoding, "version": version})
    return data, [str(v) for v in out]


def _compiled(message, root, encoding=None, version=None):
    out = []
    data = message._compiled(encoding, version)(root, "", out)
    return data, [str(v) for v in out]


def _variants(message):
    """The example of `message`, then one copy per leaf and probe with that leaf changed, and copies
    with a leaf repeated, removed, holding markup, or its tag in another case."""
    from lxml import etree

    text = message.render(message.example(records=2))
    yield read_xml(text)
    leaves = [i for i, el in enumerate(read_xml(text).iter()) if len(el) == 0 and el.getparent() is not None]
    for position in leaves:
        for probe in (*_PROBES, "很" * 21, "w" * 101, "9" * 13):
            root = read_xml(text)
            list(root.iter())[position].text = probe
            yield root
        for change in ("repeat", "remove", "markup", "case", "empty-parent"):
            root = read_xml(text)
            leaf = list(root.iter())[position]
            if change == "repeat":
                leaf.addnext(etree.fromstring(etree.tostring(leaf)))
            elif change == "remove":
                leaf.getparent().remove(leaf)
            elif change == "markup":
                etree.SubElement(leaf, "b").text = "1"
            elif change == "case":
                leaf.tag = leaf.tag.upper()
            else:
                parent = leaf.getparent()
                if parent.getparent() is None:
                    continue
                for child in list(parent):
                    parent.remove(child)
            yield root


class CompiledParsingTests:
    """`Message.parse` runs the description compiled once per message type; it must say exactly what
    the element-by-element interpretation of the description says, data and violations alike."""

    @pytest.mark.parametrize("interface", ALL_INTERFACES, ids=lambda i: f"{i.side}.{i.name}")
    def test_the_compiled_parse_agrees_with_the_interpreted_one(self, interface):
        compared = 0
        for message in (interface.request, interface.response):
            for root in _variants(message):
                for options in ({}, {"encoding": "GBK", "version": "2.0"}):
                    assert _compiled(message, root, **options) == _interpreted(message, root, **options)
                    compared += 1
        assert compared > 100

    def test_a_record_list_names_each_broken_record_by_its_index(self):
        from regional.messages.catalog import SYNCHRONIZED_WORK_INFO

        data = SYNCHRONIZED_WORK_INFO.request.example(records=3)
        data["WorkInfo"][2]["WorkDate"] = "2026-13-01"
        data["WorkInfo"][0]["WorkTimeCode"] = "9"
        text = SYNCHRONIZED_WORK_INFO.request.render(data)
        with pytest.raises(MessageInvalid) as caught:
            SYNCHRONIZED_WORK_INFO.request.parse(read_xml(text))
        assert [v.path for v in caught.value.violations] == [
            "WorkInfo/Record[1]/WorkTimeCode",
            "WorkInfo/Record[3]/WorkDate",
        ]
        assert str(caught.value.violations[1]) == "WorkInfo/Record[3]/WorkDate 格式应为yyyy-mm-dd"

    def test_a_remembered_value_is_still_checked_against_each_fields_length(self):
        from regional.messages.schema import INT, Field, Message

        message = Message("Request", (Field("A", "甲", INT, max_length=3), Field("B", "乙", INT, max_length=2)))
        with pytest.raises(MessageInvalid) as caught:
            message.parse(read_xml("<Request><A>123</A><B>123</B></Request>"))
        assert [str(v) for v in caught.value.violations] == ["B 长度不能超过2个字符（实际3个）"]
