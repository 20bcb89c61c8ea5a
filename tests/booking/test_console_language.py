"""The staff console speaks Simplified Chinese whatever the browser asks for, names records by their
Chinese model names, and shows the region's local time in exports."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from booking.models import Order
from regional.audit import audit_record
from regional.messages import XmlReadError, read_xml
from tests.base import fake_id

pytestmark = pytest.mark.django_db(transaction=True)

ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


class ConsoleLanguageTests:
    def test_an_english_browser_gets_the_admin_in_chinese(self, admin_client):
        page = admin_client.get(reverse("admin:booking_order_changelist"), **ENGLISH)
        text = page.content.decode()
        assert page.status_code == 200 and page["Content-Language"] == "zh-hans"
        assert "Select " not in text and "全部" in text and ">All<" not in text

    def test_an_english_browser_gets_the_apis_messages_in_chinese(self, client, api, bookable):
        _, schedule = bookable(slots=1)
        answer = api.post("/api/v1/orders/", json={}, headers={"Accept-Language": "en-US"})
        assert answer.status_code == 400
        assert "This field is required" not in answer.text

    def test_the_audit_trail_names_the_model_in_chinese_and_links_the_record(self, admin_client, api, bookable):
        _, schedule = bookable(slots=1)
        order_no = api.lock(schedule, 1).json()["order_no"]
        order = Order.objects.get(order_no=order_no)
        audit_record(action="测试", obj=order, actor="测试")
        text = admin_client.get(reverse("admin:regional_auditentry_changelist"), **ENGLISH).content.decode()
        # The label survives only inside the filter's query string, never as shown text.
        assert ">booking.Order<" not in text and text.count("booking.Order") == text.count("model=booking.Order")
        assert "预约订单" in text
        assert reverse("admin:booking_order_change", args=[order.pk]) in text


class MalformedXmlReasonTests:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ("<a><fqyydm>1</a>", "开始标签<fqyydm>与结束标签</a>不匹配"),
            ("<referral><fqyydm>1", "标签<fqyydm>没有结束"),
            ("<a>&</a>", "“&”之后缺少实体名"),
            ("<a/><b/>", "根元素之后还有多余内容"),
        ],
    )
    def test_lxmls_english_becomes_a_chinese_reason(self, body, reason):
        with pytest.raises(XmlReadError) as caught:
            read_xml(body)
        assert reason in str(caught.value)
        assert not any(word in str(caught.value) for word in ("Premature", "mismatch", "Extra content", "line"))


class LocalTimeExportTests:
    def test_export_times_are_the_regions_clock(self):
        from reconciliation.exports import local

        moment = dt.datetime(2026, 12, 1, 19, 16, 33, tzinfo=dt.UTC)
        assert local(moment) == "2026-12-02 03:16:33"
        assert timezone.get_current_timezone_name() == "Asia/Shanghai"


class HotlineSearchTests:
    def test_the_hotline_finds_an_order_by_full_id_or_card_number_and_by_codes(self, admin_client, api, bookable):
        _, schedule = bookable(slots=3)
        mine = api.lock(schedule, 1).json()["order_no"]
        # A registered card number (the sandbox refuses unknown cards), stored as the platform stores it.
        order = Order.objects.get(order_no=mine)
        order.card_no = "JZK00000001"
        order.save(update_fields=["card_no", "card_no_hash"])
        other = api.lock(schedule, 2).json()["order_no"]
        url = reverse("admin:booking_order_changelist")

        def found(term: str) -> set[str]:
            page = admin_client.get(url, {"q": term}, **ENGLISH)
            assert page.status_code == 200
            return {o.order_no for o in page.context["cl"].result_list}

        assert found(fake_id(1).lower()) == {mine}
        assert found("JZK00000001") == {mine}
        assert found(schedule.doctor.doctor_id) == {mine, other}
        assert found(schedule.department.department_id) == {mine, other}
        assert found(fake_id(9)) == set()
