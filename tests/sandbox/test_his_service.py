"""The sandbox hospital's SOAP service, called the way any HIS integrator would: a zeep client
generated from `/sandbox/his/<no>/ws?wsdl`, and raw envelopes."""

from __future__ import annotations

import pytest
import requests
import zeep
from lxml import etree

from regional.messages.catalog import HOSPITAL_INTERFACES
from sandbox.models import SandboxCard
from tests.base import his_url, spec_example
from tests.base import reply_fields as answer
from tests.factories import SandboxHospitalFactory, session


@pytest.fixture
def soap(public_url, his):
    return zeep.Client(his_url(public_url, "S001") + "?wsdl").service


@pytest.mark.django_db(transaction=True)
class WsdlTests:
    def test_the_wsdl_names_the_hospitals_own_address_and_all_ten_operations(self, public_url, his):
        client = zeep.Client(his_url(public_url, "S001") + "?wsdl")
        binding = next(iter(client.wsdl.bindings.values()))
        assert sorted(binding._operations) == sorted(i.name for i in HOSPITAL_INTERFACES)
        assert len(binding._operations) == 10
        port = next(iter(next(iter(client.wsdl.services.values())).ports.values()))
        assert port.binding_options["address"] == his_url(public_url, "S001")

    def test_each_sandbox_hospital_advertises_its_own_complete_wsdl(self, public_url, his):
        SandboxHospitalFactory(hospital_no="S002")
        for hospital_no in ("S001", "S002"):  # one Spyne application, one WSDL per hospital URL
            client = zeep.Client(his_url(public_url, hospital_no) + "?wsdl")
            port = next(iter(next(iter(client.wsdl.services.values())).ports.values()))
            assert port.binding_options["address"] == his_url(public_url, hospital_no)
            assert len(port.binding._operations) == 10

    def test_an_unknown_hospital_is_not_found(self, public_url, his):
        assert requests.get(his_url(public_url, "NOPE"), timeout=10).status_code == 404


@pytest.mark.django_db(transaction=True)
class OperationTests:
    def test_the_specifications_example_layout_is_accepted(self, soap, his):
        SandboxCard.objects.create(
            hospital=his, card_no="12345566", card_type="01", id_code="3306XXXXXXXXXX0001", name="测试患者一"
        )
        xml = (
            spec_example("hospital.CheckMediCardIdService.request.xml")
            .replace("<HospitalNo></HospitalNo>", "<HospitalNo>S001</HospitalNo>")
            .replace("<UserCardNo></UserCardNo >", "<UserCardNo>3306XXXXXXXXXX0001</UserCardNo >")
            .replace("<UserName></ UserName >", "<UserName>测试患者一</ UserName >")
        )
        result = answer(soap.CheckMediCardIdService(xml))
        assert result["ResultCode"] == "0" and result["IsValid"] == "true"

    def test_errors_are_result_code_1_naming_every_broken_field_never_a_fault(self, soap, his):
        xml = "<Request><TransactionId>t1</TransactionId><HospitalNo>S001</HospitalNo><WorkDate>2026-13-01</WorkDate></Request>"
        result = answer(soap.getRegistrationInfo(xml))
        assert result["ResultCode"] == "1"
        assert result["ErrorMsg"] == "WorkId 为必填项（排班班次）；WorkDate 格式应为yyyy-mm-dd"

    def test_text_that_is_not_xml_is_refused_with_line_and_column(self, soap, his):
        result = answer(soap.GetLineupDetailInfo("<Request><WorkId>1</Request>"))
        assert result["ResultCode"] == "1" and "第1行" in result["ErrorMsg"]

    def test_a_message_for_another_hospital_is_refused(self, soap, his):
        result = answer(soap.GetLineupDetailInfo("<Request><HospitalNo>S002</HospitalNo><WorkId>W</WorkId></Request>"))
        assert result["ErrorMsg"] == "HospitalNo 报文中的医院编号S002与本院（S001）不一致"

    def test_any_part_name_and_a_gbk_body_are_accepted(self, public_url, his):
        schedule = session(his)
        envelope = (
            '<?xml version="1.0" encoding="GBK"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:his="http://regional.health/ws/his"><soapenv:Body><his:GetLineupDetailInfo>'
            f"<arg0>&lt;Request&gt;&lt;HospitalNo&gt;S001&lt;/HospitalNo&gt;&lt;WorkId&gt;{schedule.work_id}"
            "&lt;/WorkId&gt;&lt;/Request&gt;</arg0></his:GetLineupDetailInfo></soapenv:Body></soapenv:Envelope>"
        )
        response = requests.post(
            his_url(public_url, "S001"),
            data=envelope.encode("gbk"),
            headers={"Content-Type": "text/xml; charset=GBK"},
            timeout=10,
        )
        assert response.status_code == 200
        text = etree.fromstring(response.content).findtext(
            ".//{http://regional.health/ws/his}GetLineupDetailInfoResult"
        )
        assert "<RegRemainNum>5</RegRemainNum>" in text

    def test_a_doctype_is_refused_before_spyne_reads_it(self, public_url, his):
        body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'
        response = requests.post(his_url(public_url, "S001"), data=body, timeout=10)
        assert response.status_code == 400 and "DTD" in response.text
