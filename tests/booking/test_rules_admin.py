"""The booking rules in the admin: regional staff see every rule with its Chinese help text, set the
region's rules and a hospital's overrides, and the change takes effect at once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from booking.models import BookingRules
from booking.rules import rules_for
from tests.factories import ChannelFactory

FORM = {
    "hospital": "",
    "release_days": "7",
    "release_time": "07:30",
    "booking_cutoff_minutes": "60",
    "limit_per_day": "2",
    "limit_per_week": "4",
    "limit_per_month": "8",
    "forbid_same_doctor_session": "true",
    "forbid_overlap": "true",
    "cancel_deadline_time": "14:00",
    "cancel_deadline_working_days": "1",
    "holidays": "2026-10-01\n2026-10-02",
    "ban_mode": "set",
    "ban_1_no_shows": "3",
    "ban_1_within_days": "90",
    "ban_1_ban_days": "90",
    "waitlist_close_minutes": "60",
    "reminder_time": "18:00",
    "quota_mode": "set",
    "quota_JKMZWX": "60",
    "quota_JKMYAPP": "40",
    "quota_release_minutes": "1440",
}


@pytest.fixture(autouse=True)
def channels(db):
    """The channels whose quotas the form offers (one percentage field per channel on record)."""
    return ChannelFactory(code="JKMZWX", name="微信"), ChannelFactory(code="JKMYAPP", name="健康APP")


@pytest.mark.django_db
class BookingRulesAdminTests:
    def test_every_rule_is_on_the_page_in_chinese_with_help_texts(self, admin_client):
        page = admin_client.get(reverse("admin:booking_bookingrules_add")).content.decode()
        for text in (
            "提前放号天数", "放号时间", "预约截止（开诊前分钟数）", "每人每日预约上限", "每人每周预约上限",
            "每人每月预约上限", "禁止同一医生同一时段重复预约", "禁止时间重叠的预约", "退号截止时刻",
            "退号截止（就诊前工作日数）", "节假日", "爽约处罚", "第1档：爽约次数", "禁约天数", "留空表示全区域规则", "候补截止（开诊前分钟数）",
            "就诊提醒时间", "渠道号源配额（%）", "微信（JKMZWX）", "配额释放（开诊前分钟数）", "沿用区域规则",
        ):  # fmt: skip
            assert text in page, text

    def test_staff_set_the_region_rules_and_a_hospital_override_and_they_apply_at_once(self, admin_client, hospital):
        assert rules_for(hospital).release_days is None  # cached now
        response = admin_client.post(reverse("admin:booking_bookingrules_add"), FORM)
        assert response.status_code == 302, response.content.decode()[:2000]
        rules = rules_for(hospital)
        assert (rules.release_days, rules.release_time, rules.limit_per_day) == (7, dt.time(7, 30), 2)
        assert rules.ban_tiers[0].ban_days == 90 and dt.date(2026, 10, 2) in rules.holidays
        assert (rules.waitlist_close_minutes, rules.reminder_time) == (60, dt.time(18, 0))
        assert rules.channel_quotas == {"JKMZWX": 60, "JKMYAPP": 40} and rules.quota_release_minutes == 1440
        override = {key: "" for key in FORM} | {
            "hospital": str(hospital.pk),
            "release_days": "14",
            "ban_mode": "inherit",
            "quota_mode": "inherit",
        }
        assert admin_client.post(reverse("admin:booking_bookingrules_add"), override).status_code == 302
        assert rules_for(hospital).release_days == 14 and rules_for(hospital).limit_per_day == 2
        assert rules_for(None).release_days == 7
        region = BookingRules.objects.get(hospital=None)
        url = reverse("admin:booking_bookingrules_change", args=[region.pk])
        assert admin_client.post(url, FORM | {"limit_per_day": "3"}).status_code == 302
        assert rules_for(hospital).limit_per_day == 3
        listing = admin_client.get(reverse("admin:booking_bookingrules_changelist")).content.decode()
        assert "全区域" in listing and hospital.name in listing

    def test_bad_tiers_and_holidays_are_refused_in_chinese(self, admin_client):
        bad = FORM | {"ban_1_within_days": "", "ban_1_ban_days": "", "holidays": "十月一日", "quota_JKMZWX": "160"}
        page = admin_client.post(reverse("admin:booking_bookingrules_add"), bad).content.decode()
        assert "第1档需同时填写爽约次数、统计天数和禁约天数" in page and "节假日应每行一个日期" in page
        assert "比例应在0到100之间" in page
        assert not BookingRules.objects.exists()

    def test_a_second_region_row_is_refused(self, admin_client):
        assert admin_client.post(reverse("admin:booking_bookingrules_add"), FORM).status_code == 302
        page = admin_client.post(reverse("admin:booking_bookingrules_add"), FORM)
        assert page.status_code == 200 and BookingRules.objects.count() == 1
