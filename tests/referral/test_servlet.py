"""The referral servlet: the specification's three examples verbatim, and many variants."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from referral import services
from referral.models import Referral, ReferralAccess, ReferralBooking, ReferralTransition
from regional.models import Doctor, MessageLog
from regional.pii import lookup_hash
from tests.base import (
    BESPEAK,
    RECEIVER_NO,
    SECRET,
    SENDER_NO,
    SERVLET,
    START_VALUES,
    apply_values,
    build,
    fake_id,
    masked_id,
    query_xml,
    spec_example,
    start_xml,
)

pytestmark = pytest.mark.django_db


def submit(referral, receiver, department_id="K01"):
    return services.referral_submit(
        referral=referral,
        actor=services.Actor.doctor(referral.sending_hospital, "YS9900"),
        receiving_hospital=receiver,
        receiving_department=receiver.departments.get(department_id=department_id),
        urgency="2",
        purpose="进一步诊治",
    )


class ReferralStartTests:
    def test_it_runs_on_postgresql(self):
        assert connection.vendor == "postgresql"

    def test_the_specifications_example_is_read_and_its_placeholders_are_refused(self, sender, post):
        reply = post(spec_example("referral.xml"))
        assert reply.status == 200
        assert reply.content_type == "text/xml; charset=UTF-8"
        assert reply.root == "referral"
        assert reply.result == "false"
        assert "jjcd 取值应为1（紧急）、2（一般）、3（不紧急）之一，实际为“紧急程度”" in reply.message
        assert "mzzycxbz 取值应为mz（门诊）、zy（住院）之一，实际为“转诊类型”" in reply.message
        assert "token" not in reply.message and "csrq" not in reply.message
        assert not Referral.objects.exists()

    def test_the_examples_placeholder_id_number_is_refused(self, sender, post):
        body = spec_example("referral.xml").replace("紧急程度", "1").replace("转诊类型", "zy")
        reply = post(body)
        assert reply.result == "false"
        assert "sfzh 格式不正确" in reply.message and "3306" not in reply.message
        assert not Referral.objects.exists()

    def test_the_example_with_real_codes_creates_a_draft_and_answers_the_parm(self, sender, post):
        body = spec_example("referral.xml").replace("紧急程度", "1").replace("转诊类型", "zy")
        # fake_id(2) ends in X: the lower-case x shows the number is normalised before hashing.
        reply = post(body.replace("3306XXXXXXXXXXXX", fake_id(2).lower()))
        assert reply.result == "true", reply.message
        assert list(reply.fields) == ["parm", "result", "message"]
        code = reply.code
        referral = Referral.objects.get()
        assert referral.status == Referral.Status.DRAFT
        assert (referral.sending_hospital, referral.order_id) == (sender, "c8e72a5f9670")
        assert referral.care_type == "zy" and referral.urgency == "1" and referral.patient_type == "1"
        assert referral.patient_name == "测试患者" and referral.id_no == fake_id(2).lower()
        assert referral.phone == "13400001234" and referral.diagnosis == "初步诊断"
        assert str(referral.birth_date) == "2013-01-01"
        assert referral.id_no_hash == lookup_hash(fake_id(2).lower())
        access = ReferralAccess.objects.get()
        assert access.audience == ReferralAccess.SENDER and code not in access.code_hash
        transition = ReferralTransition.objects.get()
        assert (transition.from_status, transition.to_status) == ("", "draft")
        assert "测试医生（工号YS9900）" in transition.actor_label

    def test_personal_data_is_encrypted_at_rest_and_masked_in_the_message_log(self, sender, post):
        reply = post(start_xml())
        assert reply.result == "true"
        with connection.cursor() as cursor:
            cursor.execute("SELECT id_no, phone, card_no, patient_name, diagnosis, address FROM referral_referral")
            row = " ".join(cursor.fetchone())
        for plain in (fake_id(1234), "13400001234", "A01234567", "张三", "高血压", "嵊州市"):
            assert plain not in row
        log = MessageLog.objects.get(interface="referral")
        assert log.ok and log.hospital == sender
        assert fake_id(1234) not in log.request_text and masked_id(1234) in log.request_text
        assert "13400001234" not in log.request_text and "134****1234" in log.request_text
        assert "高血压" not in log.request_text
        # The link code opens the unmasked referral: the log keeps only its ends.
        assert reply.code not in log.response_text and "<parm>refe*" in log.response_text

    def test_a_gbk_body_with_a_declaration_is_read(self, sender, post):
        body = ('<?xml version="1.0" encoding="GBK"?>' + start_xml(hzxm="欧阳娜娜")).encode("gbk")
        reply = post(body, content_type="text/xml")
        assert reply.result == "true", reply.message
        assert Referral.objects.get().patient_name == "欧阳娜娜"

    def test_a_gbk_body_named_only_by_the_content_type_charset_is_read(self, sender, post):
        reply = post(start_xml(cbzd="冠心病").encode("gbk"), content_type="text/xml; charset=GBK")
        assert reply.result == "true", reply.message
        assert Referral.objects.get().diagnosis == "冠心病"

    def test_element_names_and_enumerations_match_case_insensitively(self, sender, post):
        body = start_xml(mzzycxbz="ZY").replace("<fqyydm>", "<Fqyydm>").replace("</fqyydm>", "</Fqyydm>")
        reply = post(body)
        assert reply.result == "true", reply.message
        assert reply.parm.endswith("&type=zy")

    def test_a_yyyy_mm_dd_birth_date_is_accepted(self, sender, post):
        assert post(start_xml(csrq="1990-01-01")).result == "true"
        assert str(Referral.objects.get().birth_date) == "1990-01-01"

    def test_sending_the_same_orderid_again_updates_the_draft(self, sender, post):
        first = post(start_xml())
        second = post(start_xml(cbzd="高血压3级 很高危"))
        assert second.result == "true" and second.code != first.code
        referral = Referral.objects.get()
        assert referral.diagnosis == "高血压3级 很高危"
        assert referral.transitions.count() == 2
        assert referral.transitions.last().reason == "HIS重新发送，草稿已更新"

    def test_a_submitted_referral_is_not_changed_by_a_resend(self, sender, receiver, post):
        post(start_xml())
        submit(Referral.objects.get(), receiver)
        reply = post(start_xml(cbzd="改写"))
        assert reply.result == "false"
        assert "已待接收，不能再修改" in reply.message
        assert Referral.objects.get().diagnosis == "高血压3级"

    def test_the_same_orderid_from_another_hospital_is_another_referral(self, sender, make_hospital, post):
        make_hospital("H0003", "测试第三医院")
        assert post(start_xml()).result == "true"
        assert post(start_xml(fqyydm="H0003"), as_hospital="H0003").result == "true"
        assert Referral.objects.count() == 2

    def test_an_id_number_with_a_wrong_check_digit_is_refused(self, sender, post):
        wrong = fake_id(1234)[:17] + ("0" if fake_id(1234)[17] != "0" else "1")
        reply = post(start_xml(sfzh=wrong))
        assert reply.result == "false" and "sfzh 校验码不正确（GB 11643）" in reply.message
        assert wrong not in reply.message and not Referral.objects.exists()

    def test_every_missing_required_field_is_named(self, sender, post):
        reply = post(start_xml(hzxm=None, sfzh=None, cbzd=None, mzzycxbz=None))
        assert reply.result == "false"
        for text in (
            "hzxm 为必填项（患者姓名）",
            "sfzh 为必填项（身份证号码）",
            "cbzd 为必填项（初步诊断）",
            "mzzycxbz 为必填项",
        ):
            assert text in reply.message
        assert not Referral.objects.exists()

    def test_over_long_fields_are_refused(self, sender, post):
        reply = post(start_xml(orderid="X" * 65, cbzd="很" * 129))
        assert reply.result == "false"
        assert "orderid 长度不能超过64个字符（实际65个）" in reply.message
        assert "cbzd 长度不能超过128个字符（实际129个）" in reply.message

    def test_wrong_enumerations_and_dates_are_refused(self, sender, post):
        reply = post(start_xml(jzklx="5", jjcd="4", mzzycxbz="MZX", brlx="2", csrq="19900231"))
        assert reply.result == "false"
        for path in ("jzklx", "jjcd", "mzzycxbz", "brlx"):
            assert f"{path} 取值应为" in reply.message
        assert "csrq 格式应为yyyy-mm-dd" in reply.message


class ServletRobustnessTests:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b"<order><id>1</id></order>", "不支持的服务：根元素<order>"),
            (b"this is not xml", "报文不是格式正确的XML"),
            (b"<referral><orderid>1</orderid>", "报文不是格式正确的XML"),
            (b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><referral>&x;</referral>', "DTD"),
            (b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><referral>&b;</referral>', "DTD"),
            (b"", "报文为空"),
            (b"<referral>\xff\xfd\xfe</referral>", "字符编码"),  # neither UTF-8 nor GB18030 (a BOM would say UTF-16)
        ],
        ids=["unknown-root", "not-xml", "unclosed", "xxe", "entity-bomb", "empty", "bad-bytes"],
    )
    def test_bad_bodies_get_a_well_formed_referral_answer(self, sender, post, body, expected):
        reply = post(body)
        assert reply.status == 200 and reply.root == "referral"
        assert reply.result == "false"
        assert expected in reply.message
        assert "root:" not in reply.text  # no file content leaked
        assert MessageLog.objects.filter(interface="referral", ok=False).exists()

    def test_malformed_xml_is_reported_with_line_and_column(self, sender, post):
        reply = post(b"<referral>\n<orderid>1</orderid>\n<fqyydm>x</fqyydmm>\n</referral>")
        assert "第3行" in reply.message and "列" in reply.message

    def test_an_unknown_charset_is_reported(self, sender, post):
        reply = post(start_xml().encode(), content_type="text/xml; charset=klingon")
        assert reply.result == "false" and "无法识别的字符编码" in reply.message

    def test_get_is_answered_with_405_and_xml(self, client):
        response = client.get(SERVLET)
        assert response.status_code == 405
        assert b"<result>false</result>" in response.content

    def test_a_body_over_the_size_cap_is_refused(self, sender, post, settings):
        settings.MESSAGE_MAX_BYTES = 2000
        reply = post(start_xml(bszy="很" * 1500))
        assert reply.result == "false" and "报文过大" in reply.message

    def test_too_many_calls_are_told_to_wait(self, sender, post, settings):
        from django.core.cache import cache

        cache.clear()
        settings.RATE_LIMIT_HOSPITAL_PER_MINUTE = 2
        try:
            assert post(start_xml()).result == "true"
            assert post(start_xml()).result == "true"
            reply = post(start_xml())
            assert (reply.status, reply.root, reply.result) == (429, "referral", "false")
            assert "请求过于频繁" in reply.message
        finally:
            cache.clear()

    def test_an_unexpected_failure_is_a_well_formed_answer_with_a_reference(self, sender, post, monkeypatch):
        from referral import protocol

        def boom(*args, **kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(services, "referral_start", boom)
        reply = post(start_xml())
        assert reply.status == 200 and reply.result == "false" and "平台内部错误" in reply.message
        monkeypatch.setattr(protocol, "caller_for", boom)
        reply = post(query_xml())
        assert (reply.status, reply.root, reply.result) == (200, "referral-query", "error")
        assert "参考号" in reply.message and "disk" not in reply.message


class ServletAuthenticationTests:
    @pytest.mark.parametrize(
        ("body", "root", "result"),
        [
            (start_xml(), "referral", "false"),
            (query_xml(yydm=SENDER_NO), "referral-query", "error"),
            (build("referral-apply", apply_values()), "referral-apply", "false"),
        ],
        ids=["referral", "referral-query", "referral-apply"],
    )
    def test_unauthenticated_calls_are_refused_as_unauthorised(self, sender, receiver, post, body, root, result):
        reply = post(body, as_hospital=None)
        assert (reply.root, reply.result) == (root, result)
        assert reply.message.startswith("未授权")
        assert not Referral.objects.exists()
        log = MessageLog.objects.get(interface=root)
        assert not log.ok and log.error.startswith("未授权")

    def test_a_wrong_basic_secret_is_unauthorised(self, sender, post):
        reply = post(start_xml(), secret="wrong-secret-0000000000")
        assert reply.result == "false" and reply.message.startswith("未授权")

    def test_the_token_element_holding_the_hospitals_access_code_authenticates(self, sender, post):
        reply = post(start_xml(token=SECRET), as_hospital=None)
        assert reply.result == "true", reply.message
        log = MessageLog.objects.get(interface="referral")
        assert SECRET not in log.request_text and "<token>******</token>" in log.request_text

    def test_a_wrong_token_is_unauthorised_even_from_an_allowed_address(self, make_hospital, post):
        make_hospital(SENDER_NO, allowed_networks=["127.0.0.1/32"])
        reply = post(start_xml(token="T12302234"), as_hospital=None)
        assert reply.result == "false" and reply.message.startswith("未授权")

    def test_an_address_on_the_hospitals_allow_list_is_accepted(self, make_hospital, post):
        make_hospital(SENDER_NO, allowed_networks=["127.0.0.0/8"])
        assert post(start_xml(), as_hospital=None).result == "true"

    def test_an_allowed_address_cannot_write_for_another_hospital(self, make_hospital, post):
        make_hospital(SENDER_NO, allowed_networks=["127.0.0.0/8"])
        make_hospital("H0003", allowed_networks=["10.0.0.0/8"])
        reply = post(start_xml(fqyydm="H0003"), as_hospital=None)
        assert reply.result == "false" and "未授权" in reply.message
        assert not Referral.objects.exists()

    def test_a_hospital_cannot_send_for_another_hospital(self, sender, receiver, post):
        reply = post(start_xml(), as_hospital=RECEIVER_NO)
        assert reply.result == "false"
        assert f"报文中的医院编号{SENDER_NO}与认证的医院{RECEIVER_NO}不一致" in reply.message
        assert not Referral.objects.exists()

    def test_a_hospital_cannot_query_another_hospitals_referrals(self, sender, receiver, post):
        reply = post(query_xml(yydm=RECEIVER_NO), as_hospital=SENDER_NO)
        assert (reply.root, reply.result) == ("referral-query", "error")
        assert "不一致" in reply.message


class ReferralQueryTests:
    @pytest.fixture
    def submitted(self, make_hospital, receiver, post):
        """A referral from a community hospital to `receiver`, submitted on the form."""
        make_hospital("H0009", "测试卫生院")
        assert post(start_xml(fqyydm="H0009"), as_hospital="H0009").result == "true"
        return submit(Referral.objects.get(), receiver)

    def test_the_specifications_example_is_refused_for_its_placeholder_id_number(self, make_hospital, post):
        make_hospital(SENDER_NO)
        reply = post(spec_example("referral-query.xml"))
        assert (reply.root, reply.result, reply.parm) == ("referral-query", "error", "")
        assert "sfzh 格式不正确" in reply.message

    def test_the_specifications_example_answers_false_when_there_is_no_referral(self, make_hospital, post):
        make_hospital(SENDER_NO)
        reply = post(spec_example("referral-query.xml").replace("3306XXXXXXXXXXXX", fake_id(16)))
        assert (reply.root, reply.result, reply.parm) == ("referral-query", "false", "")
        assert reply.message

    def test_the_specifications_example_finds_the_referral_to_its_hospital(self, make_hospital, post):
        make_hospital("H0009", "测试卫生院")
        receiving = make_hospital(SENDER_NO, "测试县人民医院")
        values = {"fqyydm": "H0009", "hzxm": "测试患者", "sfzh": fake_id(16), "jzkh": "A01234567"}
        post(start_xml(**values), as_hospital="H0009")
        services.referral_submit(
            referral=Referral.objects.get(),
            actor=services.Actor.doctor(Referral.objects.get().sending_hospital),
            receiving_hospital=receiving,
            receiving_department=None,
            urgency="1",
            purpose="上转",
        )
        reply = post(spec_example("referral-query.xml").replace("3306XXXXXXXXXXXX", fake_id(16)))
        assert reply.result == "true", reply.message
        assert reply.parm.endswith("&type=zy")
        access = ReferralAccess.objects.get(audience=ReferralAccess.RECEIVER)
        assert access.hospital == receiving and access.doctor_code == "YS9900"

    def test_it_matches_on_the_card_and_its_type_when_the_id_number_differs(self, submitted, post):
        reply = post(query_xml(sfzh=fake_id(2222)), as_hospital=RECEIVER_NO)
        assert reply.result == "true"

    def test_it_does_not_match_another_patients_name(self, submitted, post):
        assert post(query_xml(hzxm="李四"), as_hospital=RECEIVER_NO).result == "false"

    def test_a_malformed_id_number_is_refused_even_when_the_card_would_match(self, submitted, post):
        reply = post(query_xml(sfzh="3306XXXXXXXXXX2222"), as_hospital=RECEIVER_NO)
        assert reply.result == "error" and "sfzh 格式不正确" in reply.message and reply.parm == ""

    def test_the_card_needs_its_type_to_match(self, submitted, post):
        reply = post(query_xml(sfzh=fake_id(2222), jzklx="2"), as_hospital=RECEIVER_NO)
        assert reply.result == "false"

    def test_drafts_and_closed_referrals_are_not_found(self, submitted, post):
        services.referral_cancel(
            referral=submitted, actor=services.Actor.doctor(submitted.sending_hospital), reason="患者拒绝"
        )
        assert post(query_xml(), as_hospital=RECEIVER_NO).result == "false"

    def test_the_newest_open_referral_is_returned(self, submitted, receiver, post):
        post(start_xml(fqyydm="H0009", orderid="ORD-0002", mzzycxbz="mz"), as_hospital="H0009")
        newer = submit(Referral.objects.get(order_id="ORD-0002"), receiver)
        reply = post(query_xml(), as_hospital=RECEIVER_NO)
        assert reply.result == "true" and reply.parm.endswith("&type=mz")
        assert ReferralAccess.objects.get(audience="receiver").referral == newer

    def test_bad_input_is_an_error_naming_the_fields(self, receiver, post):
        reply = post(query_xml(jzklx="7", ysgh=None), as_hospital=RECEIVER_NO)
        assert reply.result == "error"
        assert "jzklx 取值应为" in reply.message and "ysgh 为必填项" in reply.message

    def test_the_answered_code_opens_the_notice_and_not_the_form(self, submitted, post, client):
        code = post(query_xml(), as_hospital=RECEIVER_NO).code
        assert client.get(f"/referral/referral/znts.html?referralCode={code}").status_code == 200
        assert client.get(f"/referral/referral/his.html?referralCode={code}&type=zy").status_code == 404


class ReferralApplyTests:
    def test_the_specifications_example_is_read_and_its_placeholders_are_refused(self, sender, post):
        reply = post(spec_example("referral-apply.xml"))
        assert (reply.root, reply.result) == ("referral-apply", "false")
        for path in ("jjcd", "mzzycxbz", "bespeak/yyrq", "bespeak/kssj", "bespeak/jssj"):
            assert f"{path} " in reply.message, path
        assert not Referral.objects.exists()

    def test_a_complete_outpatient_referral_is_stored_submitted_with_its_booking(self, sender, receiver, post):
        reply = post(build("referral-apply", apply_values()))
        assert reply.result == "true", reply.message
        assert list(reply.fields) == ["result", "message"]
        referral = Referral.objects.select_related("receiving_department").get()
        assert referral.status == Referral.Status.SUBMITTED and referral.submitted_at
        assert referral.source == Referral.Source.APPLY
        assert referral.receiving_hospital == receiver and referral.receiving_department.name == "心血管内科"
        assert referral.care_type == "mz"
        assert referral.direction == Referral.Direction.UP  # 一级 → 三级
        booking = ReferralBooking.objects.get(referral=referral)
        assert (booking.order_no, booking.slot_id, str(booking.date)) == ("GH20260101001", "WORK-001", "2026-12-01")
        assert booking.start_time.strftime("%H:%M") == "08:00" and booking.doctor_name == "王医生"
        assert booking.schedule_ref == ""  # the booking service has no schedules yet
        assert referral.transitions.get().to_status == "submitted"

    def test_the_example_with_real_values_keeps_its_layout_and_is_accepted(self, sender, receiver, post):
        body = spec_example("referral-apply.xml")
        for placeholder, value in {
            "转入医疗机构代码": RECEIVER_NO, "转入科室代码": "K02", "紧急程度": "1", "门诊住院标识": "MZ",
            "预约日期": "2026-12-01", "就诊开始时间": "08:00", "结束时间": "08:30", "3306XXXXXXXXXXXX": fake_id(16),
        }.items():  # fmt: skip
            body = body.replace(placeholder, value)
        reply = post(body)
        assert reply.result == "true", reply.message
        assert Referral.objects.get().receiving_department.department_id == "K02"

    def test_an_outpatient_referral_needs_its_booking(self, sender, receiver, post):
        values = apply_values()
        del values["bespeak"]
        reply = post(build("referral-apply", values))
        assert reply.result == "false" and "bespeak 门诊（MZ）转诊时为必填项" in reply.message

    def test_every_missing_booking_field_is_named(self, sender, receiver, post):
        values = apply_values(bespeak={"ghdh": "GH1", "yyrq": "2026-12-01"})
        reply = post(build("referral-apply", values))
        assert reply.result == "false"
        for path in ("bespeak/rsid", "bespeak/status", "bespeak/ksdm", "bespeak/ysxm"):
            assert f"{path} 为必填项" in reply.message

    def test_an_inpatient_referral_needs_no_booking(self, sender, receiver, post):
        values = apply_values(mzzycxbz="ZY")
        del values["bespeak"]
        assert post(build("referral-apply", values)).result == "true"
        assert not ReferralBooking.objects.exists()

    def test_an_unknown_receiving_hospital_is_refused(self, sender, post):
        reply = post(build("referral-apply", apply_values(zryydm="NOPE")))
        assert reply.result == "false" and "zryydm 转入医院“NOPE”未在平台登记" in reply.message

    def test_an_unknown_department_code_is_kept_as_sent(self, sender, receiver, post):
        assert post(build("referral-apply", apply_values(zrksdm="K99"))).result == "true"
        referral = Referral.objects.get()
        assert referral.receiving_department is None and referral.receiving_department_code == "K99"

    def test_a_draft_from_referral_is_completed_by_apply(self, sender, receiver, post):
        post(start_xml(orderid="SAME-1"))
        assert post(build("referral-apply", apply_values(orderid="SAME-1"))).result == "true"
        referral = Referral.objects.get()
        assert referral.status == "submitted" and referral.transitions.count() == 2

    def test_a_second_push_of_a_submitted_referral_is_refused(self, sender, receiver, post):
        post(build("referral-apply", apply_values()))
        reply = post(build("referral-apply", apply_values(cbzd="改写")))
        assert reply.result == "false" and "不能重复推送" in reply.message
        assert Referral.objects.get().diagnosis == START_VALUES["cbzd"]

    def test_the_booking_is_linked_to_the_platforms_matching_schedule(self, sender, receiver, post):
        from booking import models as booking_models

        doctor = Doctor.objects.create(hospital=receiver, doctor_id="D100", name="王医生", department_code="K01")
        department = receiver.departments.get(department_id="K01")
        common = {
            "hospital": receiver, "doctor": doctor, "doctor_code": "D100", "department": department,
            "department_code": "K01", "time_code": 1, "start_time": dt.time(8), "stop_time": dt.time(12),
            "price": Decimal("12.00"), "remaining": 10, "total": 20,
        }  # fmt: skip
        booking_models.Schedule.objects.create(work_id="OTHER", work_date=dt.date(2026, 12, 2), **common)
        wanted = booking_models.Schedule.objects.create(work_id="WORK-001", work_date=dt.date(2026, 12, 1), **common)
        assert post(build("referral-apply", apply_values())).result == "true"
        assert ReferralBooking.objects.get().schedule_ref == str(wanted.pk)

    def test_the_schedule_lookup_never_fails_the_referral(self, sender, receiver, post):
        # No platform schedule on the booking's date and department: nothing matches.
        assert post(build("referral-apply", apply_values())).result == "true"
        # The schedules cannot be read at all (a failed query; the test's transaction undoes this).
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE booking_schedule RENAME TO booking_schedule_unreadable")
        assert post(build("referral-apply", apply_values(orderid="APPLY-0002"))).result == "true"
        assert set(ReferralBooking.objects.values_list("schedule_ref", flat=True)) == {""}

    def test_an_over_long_booking_field_is_refused(self, sender, receiver, post):
        values = apply_values(bespeak={**BESPEAK, "ghdh": "9" * 129})
        reply = post(build("referral-apply", values))
        assert reply.result == "false" and "bespeak/ghdh 长度不能超过128个字符" in reply.message


@pytest.mark.django_db(transaction=True)
class ServletOverHttpTests:
    """The same endpoint through a real HTTP server, as a HIS reaches it."""

    def test_the_three_examples_over_http(self, public_url, sender, receiver):
        import requests

        url = public_url + SERVLET
        auth = (SENDER_NO, SECRET)
        for name, root in (("referral.xml", "referral"), ("referral-apply.xml", "referral-apply")):
            response = requests.post(url, data=spec_example(name).encode("utf-8"), auth=auth, timeout=10)
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/xml; charset=UTF-8"
            assert response.text.startswith(f"<{root}>") and "<result>false</result>" in response.text
        response = requests.post(url, data=spec_example("referral-query.xml").encode("utf-8"), auth=auth, timeout=10)
        assert "<result>error</result>" in response.text and "sfzh" in response.text  # its placeholder ID number
        ok = requests.post(
            url,
            data=start_xml().encode("gbk"),
            headers={"Content-Type": "text/xml; charset=GBK"},
            auth=auth,
            timeout=10,
        )
        assert "<result>true</result>" in ok.text
