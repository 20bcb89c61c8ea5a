"""5.1–5.3 over HTTP through a zeep client generated from /ws/center?wsdl."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from lxml import etree

from regional.models import Department, Doctor, Hospital, InboundTransaction, MessageLog
from tests.conftest import spec_example


def answer(text: str) -> dict:
    root = etree.fromstring(text.encode())
    return {child.tag: (child.text or "") for child in root}


def fill(example: str, values: dict[str, str]) -> str:
    """The specification's example with its empty elements filled in, layout kept."""
    for name, value in values.items():
        example = example.replace(f"<{name}></{name}>", f"<{name}>{value}</{name}>", 1)
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
        assert bytes(stored.image) == b"\x89PNG\r\n demo"
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
