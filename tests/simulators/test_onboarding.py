"""Onboarding a hospital nobody on the team wrote: the CLI's interface options and check_hospital's
advice, against the vendor-style simulator over HTTP."""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from regional import hospital_wsdl
from regional.models import Hospital


@pytest.fixture(autouse=True)
def fresh_clients():
    cache.clear()
    hospital_wsdl.clear_clients()
    yield
    cache.clear()
    hospital_wsdl.clear_clients()


def run_check(hospital_no: str, *args: str) -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("check_hospital", hospital_no, *args, stdout=out)
    except CommandError:
        return False, out.getvalue()
    return True, out.getvalue()


@pytest.mark.django_db
class HospitalCredentialsTests:
    def test_every_interface_setting_can_be_given_on_the_command_line(self):
        out = io.StringIO()
        call_command(
            "hospital_credentials", "V001", "--name", "某某人民医院", "--endpoint", "http://his.example/services/Reg",
            "--namespace", "http://webservice.his.example.com/", "--part", "xmlStr", "--part-form", "unqualified",
            "--soap-action", "empty", "--soap-version", "1.2", "--encoding", "GBK", "--interface-version", "2.0",
            stdout=out,
        )  # fmt: skip
        hospital = Hospital.objects.get(hospital_no="V001")
        assert (
            hospital.endpoint_url, hospital.soap_namespace, hospital.soap_part_name, hospital.soap_part_form,
            hospital.soap_action_style, hospital.soap_version, hospital.soap_encoding, hospital.interface_version,
        ) == (
            "http://his.example/services/Reg", "http://webservice.his.example.com/", "xmlStr", "unqualified",
            "empty", "1.2", "GBK", "2.0",
        )  # fmt: skip
        assert "不带命名空间" in out.getvalue() and "新密钥" in out.getvalue()
        call_command("hospital_credentials", "V001", "--wsdl", "http://his.example/services/Reg?wsdl", stdout=out)
        hospital.refresh_from_db()
        assert hospital.wsdl_url.endswith("?wsdl") and hospital.soap_part_form == "unqualified"  # others kept

    def test_a_bad_encoding_is_refused_before_anything_is_saved(self):
        with pytest.raises(CommandError, match="无法识别的报文编码"):
            call_command("hospital_credentials", "V002", "--encoding", "NOT-A-CHARSET", stdout=io.StringIO())
        assert not Hospital.objects.filter(hospital_no="V002").exists()


@pytest.mark.django_db(transaction=True)
class CheckHospitalAdviceTests:
    def test_a_jaxb_fault_makes_check_hospital_name_the_part_form_setting(self, vendor_his, make_hospital):
        his = vendor_his("cxf", "V001")
        his.state.add_session("W1", "2026-12-02", 5)
        make_hospital(
            "V001", endpoint_url=his.url, interface={"soap_namespace": his.style.namespace, "soap_part_name": "xmlStr"}
        )
        ok, output = run_check("V001", "--work-id", "W1", "--work-date", "2026-12-02")
        assert not ok
        assert "Expected elements are <{}xmlStr>" in output
        assert "配置建议" in output and "不带命名空间（unqualified）" in output and "--part-form unqualified" in output
        assert "熔断中" not in output  # every row describes the hospital, not the circuit breaker
        assert output.count("配置建议") == 1
