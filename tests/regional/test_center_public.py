"""5.1–5.3 over HTTP through a zeep client generated from /ws/center?wsdl."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from lxml import etree

from regional.models import Department, Doctor, Hospital, InboundTransaction, MessageLog
from tests.base import spec_example


def answer(text: str) -> dict:
    root = etree.fromstring(text.encode())
    return {child.tag: (child.text or "") for child in root}


def fill(example: str, values: dict[str, str], second: dict[str, str] | None = None) -> str:
    """The specification's example with its empty elements filled in, layout kept.

    With `second`, the example's `<Record>.........</Record>` placeholder becomes a copy of the
    first record filled with those values.
    """
    import re

    first_record = re.search(r"<Record>.*?</Record>", example, re.S)
    for name, value in values.items():
        example = example.replace(f"<{name}></{name}>", f"<{name}>{value}</{name}>", 1)
    if second is not None and first_record:
        record = first_record.group(0)
        for name, value in second.items():
            record = record.replace(f"<{name}></{name}>", f"<{name}>{value}</{name}>", 1)
        example = re.sub(r"<Record>\s*[.…]+\s*</Record>", lambda m: record, example)
    return example


@pytest.mark.django_db(transaction=True)
class HospitalInfoTests:
    def test_it_runs_on_postgresql(self, postgres):
        assert connection.vendor == "postgresql"

    def test_the_specifications_example_applies(self, hospital, center_client):
        image = base64.b64encode(b"\x89PNG\r\n demo").decode()
        xml = fill(
            spec_example("center.HospitalInfo.request.xml"),
            {
                "TransactionId": "H0001_0001",
                "HospitalNo": "H0001",
                "HospitalName": "测试第一医院",
                "HospitalShortName": "一院",
                "DegreeCode": "31",
                "DegreeName": "三级甲等",
                "Phone": "0571-00000000",
                "Addr": "测试路1号",
                "Image": image,
                "SeqNo": "3",
                "IsDelete": "0",
            },
        )
        result = answer(center_client().service.HospitalInfo(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "HospitalNo": "H0001"}
        stored = Hospital.objects.get(hospital_no="H0001")
        assert stored.degree_name == "三级甲等" and stored.level == 3
        assert bytes(stored.picture.image) == b"\x89PNG\r\n demo"
        log = MessageLog.objects.get(interface="HospitalInfo")
        assert log.ok and log.hospital_id == stored.pk and log.transaction_id == "H0001_0001"

    def test_unauthenticated_calls_get_401(self, hospital, center_client):
        from zeep.exceptions import TransportError

        with pytest.raises(TransportError) as caught:
            center_client(auth=False).service.HospitalInfo("<Request/>")
        assert caught.value.status_code == 401

    def test_a_hospital_cannot_write_another_hospitals_data(self, make_hospital, center_client):
        make_hospital("H0001")
        make_hospital("H0002", name="测试第二医院")
        xml = "<Request><TransactionId>x1</TransactionId><HospitalNo>H0002</HospitalNo><HospitalName>篡改</HospitalName></Request>"
        result = answer(center_client("H0001").service.HospitalInfo(xml))
        assert result["ResultCode"] == "1"
        assert "H0002与认证的医院H0001不一致" in result["ErrorMsg"]
        assert Hospital.objects.get(hospital_no="H0002").name == "测试第二医院"

    def test_a_repeated_transaction_id_returns_the_stored_answer_without_applying_twice(self, hospital, center_client):
        client = center_client()
        xml = "<Request><TransactionId>t-1</TransactionId><HospitalNo>H0001</HospitalNo><HospitalName>甲</HospitalName></Request>"
        first = client.service.HospitalInfo(xml)
        Hospital.objects.filter(pk=hospital.pk).update(name="被人工修改")
        assert client.service.HospitalInfo(xml) == first
        assert Hospital.objects.get(pk=hospital.pk).name == "被人工修改"
        other = xml.replace("甲", "乙")
        result = answer(client.service.HospitalInfo(other))
        assert result["ResultCode"] == "1" and "访问流水号t-1已用于另一报文" in result["ErrorMsg"]
        assert InboundTransaction.objects.count() == 1


@pytest.mark.django_db(transaction=True)
class DepartmentAndDoctorInfoTests:
    def test_the_specifications_department_example_applies(self, hospital, center_client):
        common = {"IsHospitalization": "0", "IsOutpatient": "1", "OutpatientType": "1", "IsDelete": "0"}
        xml = fill(
            spec_example("center.DepartmentInfo.request.xml"),
            {"TransactionId": "H0001_d", "HospitalNo": "H0001", "Count": "2", "DepartmentId": "K01",
             "DepartmentName": "内科", "DepartmentIdGB": "03", "DepartmentNameGB": "内科", "SeqNo": "1", **common},
            second={"DepartmentId": "K0101", "DepartmentName": "心血管内科", "ParentDepartmentId": "K01",
                    "ProfessionalIdGB": "03.01", "ProfessionalNameGB": "心血管内科", "SeqNo": "2", **common},
        )  # fmt: skip
        result = answer(center_client().service.DepartmentInfo(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "Count": "2", "HospitalNo": "H0001"}
        child = Department.objects.get(department_id="K0101")
        assert child.parent.department_id == "K01" and child.professional_abbr == "XXGNK"

    def test_the_specifications_doctor_example_applies(self, hospital, center_client):
        icon = base64.b64encode(b"icon-bytes").decode()
        common = {"DepartmentId": "K01", "DepartmentName": "内科", "DoctorSexCode": "2", "DoctorDegreeName": "主任医师"}
        xml = fill(
            spec_example("center.DoctorInfo.request.xml"),
            {"TransactionId": "H0001_doc", "HospitalNo": "H0001", "Count": "2", "DoctorId": "D01",
             "DoctorName": "测试医生甲", "IsZJ": "1", "Icon": icon, "IsDelete": "0", **common},
            second={"DoctorId": "D02", "DoctorName": "测试医生乙", "IsZJ": "0", "IsDelete": "1", **common},
        )  # fmt: skip
        result = answer(center_client().service.DoctorInfo(xml))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "Count": "2", "HospitalNo": "H0001"}
        first, second = Doctor.objects.order_by("doctor_id")
        assert first.is_expert and bytes(first.portrait.icon) == b"icon-bytes" and first.title == "主任医师"
        assert second.is_deleted and not second.is_expert

    def test_departments_form_a_tree_and_get_pinyin(self, hospital, center_client):
        xml = (
            "<Request><TransactionId>d-1</TransactionId><HospitalNo>H0001</HospitalNo><Count>2</Count><DepartmentInfo>"
            "<Record><DepartmentId>K02</DepartmentId><DepartmentName>心血管内科</DepartmentName>"
            "<ParentDepartmentId>K01</ParentDepartmentId><IsHospitalization>0</IsHospitalization><IsOutpatient>1</IsOutpatient></Record>"
            "<Record><DepartmentId>K01</DepartmentId><DepartmentName>内科</DepartmentName>"
            "<IsHospitalization>1</IsHospitalization><IsOutpatient>1</IsOutpatient></Record>"
            "</DepartmentInfo></Request>"
        )
        result = answer(center_client().service.DepartmentInfo(xml))
        assert result["ResultCode"] == "0" and result["Count"] == "2"
        child = Department.objects.get(department_id="K02")
        assert child.parent.department_id == "K01"
        assert child.name_abbr == "XXGNK"
        assert child.outpatient_type == "1"

    def test_doctors_sync_and_create_the_department_they_name(self, hospital, center_client):
        xml = (
            '<?xml version="1.0" encoding="GBK"?><Request><TransactionId>doc-1</TransactionId><HospitalNo>H0001</HospitalNo>'
            "<Count>1</Count><DoctorInfo><Record><DoctorId>D01</DoctorId><DoctorName>张三丰</DoctorName>"
            "<DepartmentId>K09</DepartmentId><DepartmentName>骨科</DepartmentName><IsZJ>1</IsZJ></Record></DoctorInfo></Request>"
        )
        result = answer(center_client().service.DoctorInfo(xml))
        assert result["ResultCode"] == "0"
        doctor = Doctor.objects.select_related("department").get(doctor_id="D01")
        assert doctor.is_expert and doctor.name_abbr == "ZSF" and doctor.department.name == "骨科"


def envelope(operation: str, message: str, part: str = "xml", header: str = "", cdata: bool = False) -> bytes:
    from xml.sax.saxutils import escape

    body = f"<![CDATA[{message}]]>" if cdata else escape(message)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:c="http://regional.health/ws/center">'
        f"<soapenv:Header>{header}</soapenv:Header><soapenv:Body><c:{operation}><c:{part}>{body}</c:{part}></c:{operation}>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


def post(url: str, body: bytes, *, auth=("H0001", None), content_type="text/xml; charset=utf-8"):
    import requests

    from tests.conftest import SECRET

    if auth and auth[1] is None:
        auth = (auth[0], SECRET)
    return requests.post(f"{url}/ws/center", data=body, auth=auth, headers={"Content-Type": content_type}, timeout=10)


def inner_response(http_response) -> dict:
    root = etree.fromstring(http_response.content)
    result = next(e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("Result"))
    return answer(result.text)


HOSPITAL_XML = "<Request><TransactionId>{tx}</TransactionId><HospitalNo>H0001</HospitalNo><HospitalName>{name}</HospitalName></Request>"


@pytest.mark.django_db(transaction=True)
class CenterTransportTests:
    def test_the_message_is_accepted_under_any_part_name_and_in_cdata(self, hospital, public_url):
        for part, cdata in (("xmlString", False), ("arg0", True), ("Message", False)):
            response = post(
                public_url, envelope("HospitalInfo", HOSPITAL_XML.format(tx=part, name="甲"), part, cdata=cdata)
            )
            assert response.status_code == 200
            assert inner_response(response)["ResultCode"] == "0", part

    def test_ws_security_username_token_authenticates(self, hospital, public_url):
        from tests.conftest import SECRET

        header = (
            '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
            f"<wsse:UsernameToken><wsse:Username>H0001</wsse:Username><wsse:Password>{SECRET}</wsse:Password>"
            "</wsse:UsernameToken></wsse:Security>"
        )
        response = post(
            public_url, envelope("HospitalInfo", HOSPITAL_XML.format(tx="w1", name="甲"), header=header), auth=None
        )
        assert response.status_code == 200 and inner_response(response)["ResultCode"] == "0"
        bad = header.replace(SECRET, "wrong-secret")
        assert (
            post(
                public_url, envelope("HospitalInfo", HOSPITAL_XML.format(tx="w2", name="甲"), header=bad), auth=None
            ).status_code
            == 401
        )

    def test_wrong_basic_credentials_get_401(self, hospital, public_url):
        response = post(
            public_url, envelope("HospitalInfo", HOSPITAL_XML.format(tx="b1", name="甲")), auth=("H0001", "nope")
        )
        assert response.status_code == 401

    def test_an_address_on_the_allow_list_authenticates_for_that_hospital_only(self, make_hospital, public_url):
        make_hospital("H0001", allowed_networks=["127.0.0.0/8"])
        make_hospital("H0002", name="第二医院")
        ok = post(public_url, envelope("HospitalInfo", HOSPITAL_XML.format(tx="ip1", name="甲")), auth=None)
        assert inner_response(ok)["ResultCode"] == "0"
        other = HOSPITAL_XML.format(tx="ip2", name="乙").replace("H0001", "H0002")
        refused = inner_response(post(public_url, envelope("HospitalInfo", other), auth=None))
        assert refused["ResultCode"] == "1" and "白名单" in refused["ErrorMsg"]

    def test_a_gbk_envelope_and_a_gbk_declared_inner_message_are_read(self, hospital, public_url):
        inner = '<?xml version="1.0" encoding="GBK"?>' + HOSPITAL_XML.format(tx="g1", name="嵊州测试医院")
        body = (
            envelope("HospitalInfo", inner).decode("utf-8").replace('encoding="UTF-8"', 'encoding="GBK"').encode("gbk")
        )
        response = post(public_url, body, content_type="text/xml; charset=GBK")
        assert inner_response(response)["ResultCode"] == "0"
        assert Hospital.objects.get(hospital_no="H0001").name == "嵊州测试医院"

    def test_the_specifications_malformed_end_tags_are_accepted(self, hospital, center_client):
        xml = "<Request><TransactionId>m1</TransactionId><HospitalNo>H0001</ HospitalNo ><HospitalName>甲</ HospitalName></Request>"
        assert answer(center_client().service.HospitalInfo(xml))["ResultCode"] == "0"

    def test_other_malformed_xml_is_refused_with_line_and_column(self, hospital, center_client):
        result = answer(center_client().service.HospitalInfo("<Request>\n<HospitalNo>H0001</Hospital></Request>"))
        assert result["ResultCode"] == "1" and "第2行" in result["ErrorMsg"]

    @pytest.mark.parametrize(
        "payload",
        [
            '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
            '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;">]><r>&c;</r>',
        ],
        ids=["xxe", "entity-bomb"],
    )
    def test_xxe_and_entity_bombs_are_refused_in_the_envelope_and_in_the_message(self, hospital, public_url, payload):
        in_envelope = post(public_url, payload.encode())
        assert in_envelope.status_code == 400 and "DTD" in in_envelope.text
        in_message = inner_response(post(public_url, envelope("HospitalInfo", payload)))
        assert in_message["ResultCode"] == "1" and "DTD" in in_message["ErrorMsg"]
        assert MessageLog.objects.filter(ok=False).exists()

    def test_each_kind_of_validation_error_is_named_with_its_path(self, hospital, center_client):
        xml = (
            "<Request><TransactionId>v1</TransactionId><HospitalNo>H0001</HospitalNo><Count>3</Count><DoctorInfo>"
            "<Record><DoctorId>D1</DoctorId><DoctorName>甲</DoctorName><DepartmentId>K1</DepartmentId>"
            "<DepartmentName>内科</DepartmentName><IsZJ>2</IsZJ><SeqNo>一</SeqNo><Icon>@@</Icon></Record>"
            f"<Record><DoctorId>D2</DoctorId><DoctorName>{'乙' * 21}</DoctorName><DepartmentId>K1</DepartmentId>"
            "<IsZJ>0</IsZJ></Record></DoctorInfo></Request>"
        )
        error = answer(center_client().service.DoctorInfo(xml))["ErrorMsg"]
        for expected in (
            "DoctorInfo/Record[1]/IsZJ 取值应为0（否）、1（是）之一",
            "DoctorInfo/Record[1]/SeqNo 应为整数",
            "DoctorInfo/Record[1]/Icon 应为Base64",
            "DoctorInfo/Record[2]/DoctorName 长度不能超过20个字符",
            "DoctorInfo/Record[2]/DepartmentName 为必填项",
        ):
            assert expected in error
        assert not Doctor.objects.exists()

    def test_count_must_match_the_records_sent(self, hospital, center_client):
        xml = (
            "<Request><TransactionId>c1</TransactionId><HospitalNo>H0001</HospitalNo><Count>2</Count><DepartmentInfo>"
            "<Record><DepartmentId>K1</DepartmentId><DepartmentName>内科</DepartmentName></Record></DepartmentInfo></Request>"
        )
        result = answer(center_client().service.DepartmentInfo(xml))
        assert result["ResultCode"] == "1" and "Count 为2，与实际发送的1条Record不一致" in result["ErrorMsg"]

    def test_an_interface_not_switched_on_answers_not_open(self, hospital, center_client, monkeypatch):
        from regional import inbound
        from regional.messages.catalog import RECONCILIATION_INFO

        monkeypatch.delitem(inbound.HANDLERS, RECONCILIATION_INFO.key, raising=False)
        xml = "<Request><TransactionId>r1</TransactionId><HosOrgCode>H0001</HosOrgCode><OrderInfo><Batch>1</Batch></OrderInfo></Request>"
        result = answer(center_client().service.ReconciliationInfo(xml))
        assert result["ResultCode"] == "1" and "未开通" in result["ErrorMsg"]

    def test_a_failure_inside_a_service_answers_an_error_and_writes_nothing(self, hospital, center_client, monkeypatch):
        from regional import services

        def broken(**kwargs):
            Doctor.objects.create(hospital=hospital, doctor_id="half", name="半", department_code="K")
            raise RuntimeError("boom")

        monkeypatch.setattr(services, "doctors_apply", broken)
        xml = (
            "<Request><TransactionId>f1</TransactionId><HospitalNo>H0001</HospitalNo><DoctorInfo><Record><DoctorId>D1</DoctorId>"
            "<DoctorName>甲</DoctorName><DepartmentId>K1</DepartmentId><DepartmentName>内科</DepartmentName><IsZJ>0</IsZJ>"
            "</Record></DoctorInfo></Request>"
        )
        result = answer(center_client().service.DoctorInfo(xml))
        assert result["ResultCode"] == "1" and "参考号" in result["ErrorMsg"]
        assert not Doctor.objects.exists() and not InboundTransaction.objects.exists()

    def test_the_wsdl_names_the_public_address(self, public_url):
        import requests

        wsdl = requests.get(f"{public_url}/ws/center?wsdl", timeout=10).text
        assert f'location="{public_url}/ws/center"' in wsdl
        for name in (
            "synchronizedWorkInfo",
            "stopWorkNotice",
            "changeWorkNotice",
            "getPromiseNotice",
            "ReconciliationInfo",
        ):
            assert f'name="{name}"' in wsdl

    def test_an_operation_in_another_platforms_namespace_is_matched_by_its_local_name(self, hospital, public_url):
        # A HIS reusing an envelope template written for another platform (issue 15, item 7).
        other = envelope("HospitalInfo", HOSPITAL_XML.format(tx="ns1", name="甲")).replace(
            b"http://regional.health/ws/center", b"http://webservice.other-platform.example.com/"
        )
        response = post(public_url, other)
        assert response.status_code == 200 and inner_response(response)["ResultCode"] == "0"
        unqualified = (
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            f"<hospitalinfo><arg0>{escape_text(HOSPITAL_XML.format(tx='ns2', name='乙'))}</arg0></hospitalinfo>"
            "</soapenv:Body></soapenv:Envelope>"
        ).encode()
        response = post(public_url, unqualified)
        assert response.status_code == 200 and inner_response(response)["ResultCode"] == "0"
        assert Hospital.objects.get(hospital_no="H0001").name == "乙"

    def test_an_unknown_operation_in_any_namespace_is_still_a_client_fault(self, hospital, public_url):
        body = envelope("NoSuchOperation", "<Request/>").replace(b"regional.health/ws/center", b"other.example/ws")
        response = post(public_url, body)
        assert response.status_code == 400 and b"ResourceNotFound" in response.content

    def test_without_a_public_base_url_the_wsdl_names_the_address_it_was_asked_on(self, settings, live_server):
        import requests

        from regional.soap.center import server

        settings.PUBLIC_BASE_URL, settings.WSDL_ADDRESS_FROM_REQUEST = "http://127.0.0.1:8000", True  # env unset
        server._wsdl_by_url.clear()
        wsdl = requests.get(f"{live_server.url}/ws/center?wsdl", timeout=10).text
        assert f'location="{live_server.url}/ws/center"' in wsdl and ":8000" not in wsdl
        settings.PUBLIC_BASE_URL, settings.WSDL_ADDRESS_FROM_REQUEST = "https://platform.example.org", False
        wsdl = requests.get(f"{live_server.url}/ws/center?wsdl", timeout=10).text
        assert 'location="https://platform.example.org/ws/center"' in wsdl


def escape_text(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text)
