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
