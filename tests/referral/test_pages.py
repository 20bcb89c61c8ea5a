"""The doctors' pages (his.html, znts.html) through Django's test client, opened from real answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from referral.models import Referral, ReferralAccess
from regional.models import Doctor
from tests.base import HIS, RECEIVER_NO, ZNTS, fake_id, form, masked_id, query_xml, start_xml

pytestmark = pytest.mark.django_db


@pytest.fixture
def his_url(sender, receiver, post):
    """his.html as the HIS opens it: from the parm of a real `referral` answer."""
    return f"{HIS}?{post(start_xml()).parm}"


@pytest.fixture
def znts_url(his_url, client, post):
    """znts.html as the receiving HIS opens it: from the parm of a real `referral-query` answer."""
    assert client.post(his_url, form()).status_code == 302
    return f"{ZNTS}?{post(query_xml(), as_hospital=RECEIVER_NO).parm}"


class ApplicationFormTests:
    def test_it_shows_what_the_his_sent_and_the_hospitals_to_choose(self, his_url, client):
        response = client.get(his_url)
        assert response.status_code == 200
        page = response.content.decode()
        for text in (
            "转诊申请单",
            "张三",
            fake_id(1234),
            "13400001234",
            "高血压3级",
            "测试第二人民医院（H0002）",
        ):
            assert text in page
        assert "CSDERMYY" in page  # pinyin initials for the search
        assert "测试社区卫生服务中心（PDY1234567890）" not in page  # not to itself
        assert 'name="csrfmiddlewaretoken"' in page
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-store" in response["Cache-Control"]

    def test_submitting_the_form_sends_the_referral(self, his_url, client):
        response = client.post(his_url, form())
        assert response.status_code == 302 and response["Location"] == his_url
        referral = Referral.objects.get()
        assert referral.status == "submitted" and referral.receiving_department.name == "心血管内科"
        assert referral.urgency == "1" and referral.notes == "请安排床位" and referral.direction == "up"
        page = client.get(his_url).content.decode()
        assert "转诊申请已提交" in page and "双向转诊单" in page and "待接收" in page

    def test_missing_choices_are_shown_inline(self, his_url, client):
        response = client.post(his_url, form(hospital="", urgency="", purpose=""))
        assert response.status_code == 400
        page = response.content.decode()
        for text in ("请选择转入医院", "请选择紧急程度", "请填写转诊目的", "field-error"):
            assert text in page
        assert Referral.objects.get().status == "draft"

    def test_a_department_of_another_hospital_is_refused_inline(self, his_url, client):
        response = client.post(his_url, form(department="K99"))
        assert response.status_code == 400
        assert "所选科室不属于转入医院" in response.content.decode()

    def test_the_hospital_must_choose_a_department_when_it_has_some(self, his_url, client):
        response = client.post(his_url, form(department=""))
        assert "请选择转入科室" in response.content.decode()

    def test_posts_need_the_csrf_token(self, his_url):
        strict = Client(enforce_csrf_checks=True)
        assert strict.post(his_url, form()).status_code == 403
        page = strict.get(his_url).content.decode()
        token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        assert strict.post(his_url, {**form(), "csrfmiddlewaretoken": token}).status_code == 302

    def test_departments_are_searchable_by_name_and_pinyin(self, his_url, client):
        base = his_url.replace("his.html", "departments.json")
        by_pinyin = client.get(base + f"&hospital={RECEIVER_NO}&q=xnk").json()["results"]
        assert [d["name"] for d in by_pinyin] == ["心内科"]
        by_name = client.get(base + f"&hospital={RECEIVER_NO}&q=内科").json()["results"]
        assert {d["id"] for d in by_name} == {"K01", "K02", "K03"}
        assert client.get("/referral/referral/departments.json?hospital=H0002").status_code == 404

    def test_the_sender_cancels_with_a_reason(self, his_url, client):
        client.post(his_url, form())
        response = client.post(his_url, {"action": "cancel", "cancel-reason": ""})
        assert response.status_code == 400 and "请填写原因" in response.content.decode()
        assert client.post(his_url, {"action": "cancel", "cancel-reason": "患者拒绝"}).status_code == 302
        referral = Referral.objects.get()
        assert referral.status == "cancelled" and referral.cancel_reason == "患者拒绝"

    def test_his_data_is_escaped(self, sender, receiver, post, client):
        reply = post(start_xml(hzxm="<script>alert(1)</script>", cbzd='"><img src=x onerror=alert(2)>'))
        page = client.get(f"{HIS}?{reply.parm}").content.decode()
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<img src=x" not in page

    def test_the_slip_is_printable(self, his_url, client):
        page = client.get(his_url).content.decode()
        assert "@media print" in page and 'class="print-only"' in page and "双向转诊单" in page


class LinkPageTests:
    @pytest.mark.parametrize(
        "url",
        [HIS, f"{HIS}?referralCode=", f"{HIS}?referralCode=NOTACODE&type=zy", f"{ZNTS}?referralCode=" + "A" * 40],
    )
    def test_unknown_codes_get_a_friendly_404(self, client, url):
        response = client.get(url)
        assert response.status_code == 404
        page = response.content.decode()
        assert "请从HIS系统中重新打开" in page and "Traceback" not in page

    def test_an_expired_code_gets_a_friendly_410(self, his_url, client):
        ReferralAccess.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
        response = client.get(his_url)
        assert response.status_code == 410
        assert "转诊单链接已过期" in response.content.decode()
        assert client.post(his_url, form()).status_code == 410
        assert Referral.objects.get().status == "draft"

    def test_staff_open_any_referral_with_personal_data_masked(self, his_url, client, admin_client):
        client.post(his_url, form())
        pk = Referral.objects.get().pk
        response = admin_client.get(f"{ZNTS}?id={pk}")
        assert response.status_code == 200
        page = response.content.decode()
        assert masked_id(1234) in page and fake_id(1234) not in page and "134****1234" in page
        assert "已脱敏" in page
        assert admin_client.get(f"{HIS}?id={pk}").status_code == 200
        assert admin_client.get(f"{ZNTS}?id=999999").status_code == 404

    def test_anonymous_users_are_sent_to_the_admin_login_and_others_refused(self, his_url, client):
        pk = Referral.objects.get().pk
        response = client.get(f"{ZNTS}?id={pk}")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        User.objects.create_user("clerk", password="x-clerk-2026", is_staff=True)
        client.login(username="clerk", password="x-clerk-2026")
        assert client.get(f"{ZNTS}?id={pk}").status_code == 403

    def test_staff_with_view_permission_only_cannot_act(self, znts_url, client):
        user = User.objects.create_user("viewer", password="x-viewer-2026", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_referral"))
        viewer = Client()
        viewer.login(username="viewer", password="x-viewer-2026")
        pk = Referral.objects.get().pk
        assert viewer.get(f"{ZNTS}?id={pk}").status_code == 200
        assert viewer.post(f"{ZNTS}?id={pk}", {"action": "accept"}).status_code == 403
        assert Referral.objects.get().status == "submitted"


class NoticeTests:
    def test_the_notice_shows_the_full_referral(self, znts_url, client):
        response = client.get(znts_url)
        assert response.status_code == 200
        page = response.content.decode()
        for text in ("转诊通知", "张三", fake_id(1234), "心血管内科", "紧急", "接收转诊", "拒绝转诊", "上转"):
            assert text in page

    def test_an_overdue_referral_is_flagged_on_the_notice(self, znts_url, client):
        assert "超过规定时间仍未处理" not in client.get(znts_url).content.decode()
        Referral.objects.update(overdue_flagged_at=timezone.now())
        assert "超过规定时间仍未处理" in client.get(znts_url).content.decode()

    def test_accept_arrive_complete_and_refer_back(self, znts_url, client):
        assert client.post(znts_url, {"action": "accept", "accept-note": "明日8点心内科门诊"}).status_code == 302
        assert Referral.objects.get().status == "accepted"
        assert client.post(znts_url, {"action": "arrive", "step-note": ""}).status_code == 302
        assert client.post(znts_url, {"action": "complete", "step-note": "好转出院"}).status_code == 302
        referral = Referral.objects.get()
        assert referral.status == "completed" and referral.accept_note == "明日8点心内科门诊"
        response = client.post(znts_url, {"action": "return"})
        assert response.status_code == 302 and response["Location"].startswith(HIS + "?referralCode=")
        back = Referral.objects.get(original=referral)
        assert back.status == "draft" and back.sending_hospital.hospital_no == RECEIVER_NO
        page = client.get(response["Location"]).content.decode()
        assert "回转" in page and "测试社区卫生服务中心" in page

    def test_upcoming_schedules_of_the_department_are_shown_read_only(self, znts_url, client, receiver):
        booking_models = pytest.importorskip("booking.models")
        if not hasattr(booking_models, "Schedule"):
            pytest.skip("booking.models.Schedule 尚未提供")
        doctor = Doctor.objects.create(hospital=receiver, doctor_id="D100", name="王医生", department_code="K01")
        booking_models.Schedule.objects.create(
            hospital=receiver, doctor=doctor, doctor_code="D100", department=receiver.departments.get(department_id="K01"),
            department_code="K01", work_id="W1", work_date=timezone.localdate() + dt.timedelta(days=1), time_code=1,
            start_time=dt.time(8), stop_time=dt.time(12), price=Decimal("12.00"), remaining=7, total=20,
        )  # fmt: skip
        page = client.get(znts_url).content.decode()
        assert "转入科室近期排班" in page and "王医生" in page and "08:00–12:00" in page
        # Once, as the accept form's choices: not again in a second list beside it.
        assert page.count("08:00–12:00") == 1 and 'id="schedules"' not in page
        assert 'name="accept-schedule" value="W1"' in page

    def test_a_rejection_needs_a_reason(self, znts_url, client):
        response = client.post(znts_url, {"action": "reject", "reject-reason": ""})
        assert response.status_code == 400 and "请填写原因" in response.content.decode()
        assert client.post(znts_url, {"action": "reject", "reject-reason": "本院无床位"}).status_code == 302
        assert Referral.objects.get().reject_reason == "本院无床位"

    def test_an_action_out_of_order_is_explained(self, znts_url, client):
        response = client.post(znts_url, {"action": "arrive", "step-note": ""})
        assert response.status_code == 400
        assert "不能登记患者到院" in response.content.decode()
