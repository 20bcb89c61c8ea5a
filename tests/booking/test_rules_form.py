"""The booking rules' form (issue 13): a labelled field per rule instead of JSON with English keys,
"沿用区域规则" where a hospital inherits, Chinese validation, and the stored format booking/rules.py
reads unchanged."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from booking.models import BookingRules
from booking.rules import BanTier, rules_for
from regional.roles import REGIONAL_ADMIN
from tests.base import hospital_make, hospital_rules, region_rules
from tests.console import assert_no_english, english_page, english_words, login, shot, staff  # noqa: F401
from tests.factories import ChannelFactory

ADD = "admin:booking_bookingrules_add"
CHANGE = "admin:booking_bookingrules_change"


@pytest.fixture
def client(db):
    ChannelFactory(code="JKMZWX", name="微信")
    ChannelFactory(code="JKMYAPP", name="健康应用")
    client = Client()
    client.force_login(staff(REGIONAL_ADMIN))
    return client


@pytest.fixture
def hospital(db):
    return hospital_make()


def blank_form(**values) -> dict:
    """Every field of the page left empty (a hospital inheriting everything), then `values`."""
    names = (
        "hospital", "release_days", "release_time", "booking_cutoff_minutes", "limit_per_day", "limit_per_week",
        "limit_per_month", "forbid_same_doctor_session", "forbid_overlap", "cancel_deadline_time",
        "cancel_deadline_working_days", "holidays", "waitlist_close_minutes", "reminder_time", "quota_release_minutes",
        "quota_JKMZWX", "quota_JKMYAPP",
    )  # fmt: skip
    tiers = {f"ban_{row}_{part}": "" for row in (1, 2, 3) for part in ("no_shows", "within_days", "ban_days")}
    return {name: "" for name in names} | tiers | {"ban_mode": "inherit", "quota_mode": "inherit"} | values


def tiers(*rows: tuple[int, int, int]) -> dict:
    return {
        f"ban_{i}_{part}": str(value)
        for i, row in enumerate(rows, start=1)
        for part, value in zip(("no_shows", "within_days", "ban_days"), row, strict=True)
    }


class BookingRulesFormTests:
    def test_a_hospitals_blanks_read_inherit_and_the_regions_read_off_never_unknown(self, client, hospital):
        region = region_rules(release_days=7)
        own = hospital_rules(hospital, limit_per_day=1)
        hospital_page = client.get(reverse(CHANGE, args=[own.pk])).content.decode()
        assert hospital_page.count(">沿用区域规则</option>") == 4  # two yes/no rules, tiers, quotas
        assert 'placeholder="沿用区域规则"' in hospital_page and "未知" not in hospital_page
        region_page = client.get(reverse(CHANGE, args=[region.pk])).content.decode()
        assert "沿用区域规则" not in region_page and ">不启用</option>" in region_page
        assert 'placeholder="不启用"' in region_page and "未知" not in region_page
        for page in (hospital_page, region_page):  # what a person reads: no JSON keys
            text = re.sub(r"<[^>]+>", " ", page)
            assert not {"no_shows", "within_days", "ban_days", "JSON"} & set(re.findall(r"\w+", text))

    def test_the_list_says_inherited_for_a_hospital_and_off_for_the_region(self, client, hospital):
        region_rules(release_days=7)
        hospital_rules(hospital, limit_per_day=1)
        listing = client.get(reverse("admin:booking_bookingrules_changelist")).content.decode()
        assert "沿用区域规则" in listing and "不启用" in listing and "未知" not in listing

    def test_tiers_typed_as_rows_are_stored_as_the_rules_read_them(self, client, hospital):
        form = blank_form(ban_mode="set", quota_mode="off") | tiers((6, 180, 180), (3, 90, 30))
        response = client.post(reverse(ADD), form)
        assert response.status_code == 302, response.content.decode()[-3000:]
        row = BookingRules.objects.get(hospital=None)
        assert row.ban_tiers == [
            {"no_shows": 3, "within_days": 90, "ban_days": 30},
            {"no_shows": 6, "within_days": 180, "ban_days": 180},
        ]
        assert row.channel_quotas == {}
        assert rules_for(hospital).ban_tiers == (BanTier(3, 90, 30), BanTier(6, 180, 180))
        page = client.get(reverse(CHANGE, args=[row.pk])).content.decode()
        assert 'name="ban_2_ban_days" value="180"' in page and 'name="ban_4_no_shows"' not in page

    def test_a_stored_list_longer_than_the_rows_gets_a_row_more(self, client):
        row = region_rules(ban_tiers=[{"no_shows": n, "within_days": 90, "ban_days": n * 10} for n in (1, 2, 3)])
        page = client.get(reverse(CHANGE, args=[row.pk])).content.decode()
        assert 'name="ban_3_ban_days" value="30"' in page and 'name="ban_4_no_shows"' in page

    def test_a_hospital_inherits_or_overrides_each_rule(self, client, hospital):
        region_rules(forbid_overlap=True, ban_tiers=[{"no_shows": 3, "within_days": 90, "ban_days": 90}])
        form = blank_form(hospital=str(hospital.pk), forbid_same_doctor_session="true")
        assert client.post(reverse(ADD), form).status_code == 302
        own = BookingRules.objects.get(hospital=hospital)
        assert (own.forbid_overlap, own.forbid_same_doctor_session, own.ban_tiers, own.channel_quotas) == (
            None,
            True,
            None,
            None,
        )
        rules = rules_for(hospital)
        assert rules.forbid_overlap is True and rules.ban_tiers == (BanTier(3, 90, 90),)
        # Explicitly off at this hospital: "否" and "不处罚爽约" override the region, blank would not.
        change = blank_form(hospital=str(hospital.pk), forbid_overlap="false", ban_mode="off")
        assert client.post(reverse(CHANGE, args=[own.pk]), change).status_code == 302
        own.refresh_from_db()
        assert (own.forbid_overlap, own.ban_tiers) == (False, [])
        assert rules_for(hospital).forbid_overlap is False and rules_for(hospital).ban_tiers == ()

    def test_quotas_are_a_percentage_per_channel_and_a_removed_channels_share_is_kept(self, client, hospital):
        form = blank_form(quota_mode="set", ban_mode="off", quota_JKMZWX="60", quota_JKMYAPP="37.5")
        assert client.post(reverse(ADD), form).status_code == 302
        row = BookingRules.objects.get(hospital=None)
        assert row.channel_quotas == {"JKMZWX": 60, "JKMYAPP": 37.5}
        assert rules_for(hospital).channel_quotas == {"JKMZWX": 60, "JKMYAPP": 37.5}
        BookingRules.objects.filter(pk=row.pk).update(channel_quotas={"JKMZWX": 60, "OLDAPP": 10})
        page = client.get(reverse(CHANGE, args=[row.pk])).content.decode()
        assert "渠道OLDAPP（已停用或不存在）" in page and 'name="quota_OLDAPP" value="10"' in page

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"ban_mode": "set"}, "选择“按下列档位处罚”时请至少填写一档"),
            ({"ban_mode": "off", **tiers((3, 90, 90))}, "已填写处罚档位：请选择“按下列档位处罚”，或清空各档"),
            ({"ban_mode": "set", "ban_1_no_shows": "3"}, "第1档需同时填写爽约次数、统计天数和禁约天数"),
            ({"ban_mode": "set", **tiers((0, 90, 90))}, "应为正整数"),
            ({"ban_mode": "set", **tiers((3, 90, "九十"))}, "应为整数"),
            ({"quota_mode": "set"}, "选择“按下列比例分配”时请至少填写一个渠道的比例"),
            ({"quota_mode": "off", "quota_JKMZWX": "50"}, "已填写渠道比例：请选择“按下列比例分配”，或清空各渠道比例"),
            ({"quota_mode": "set", "quota_JKMZWX": "-1"}, "比例应在0到100之间"),
            ({"release_time": "07:30"}, "设置放号时间时需同时设置提前放号天数"),
            ({"holidays": "国庆"}, "节假日应每行一个日期，格式如2026-10-01"),
        ],
    )
    def test_bad_input_is_refused_in_chinese_and_nothing_is_stored(self, client, values, message):
        page = client.post(reverse(ADD), blank_form(**values))
        assert page.status_code == 200 and message in page.content.decode()
        assert not BookingRules.objects.exists()

    def test_a_second_region_row_is_refused_with_a_way_forward(self, client):
        region_rules(release_days=7)
        page = client.post(reverse(ADD), blank_form(release_days="3")).content.decode()
        assert "全区域规则已存在：请选择医院，或修改现有的全区域规则" in page
        assert BookingRules.objects.get().release_days == 7


# Channel codes are codes.
CODES = {"JKMZWX", "JKMYAPP"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class BookingRulesBrowserTests:
    """The regional admin edits the rules in Chromium with an English browser, typing no JSON."""

    def test_the_regional_admin_edits_a_rule_with_no_json(self, english_page, public_url):  # noqa: F811
        page = english_page

        def no_english() -> None:
            assert not english_words(page.inner_text("#content"), CODES), page.url  # the form itself: none
            assert_no_english(page, CODES)

        ChannelFactory(code="JKMZWX", name="微信")
        ChannelFactory(code="JKMYAPP", name="健康应用")
        hospital = hospital_make()
        region = region_rules(release_days=7, forbid_overlap=True)
        own = hospital_rules(hospital, limit_per_day=1)
        login(page, public_url, staff(REGIONAL_ADMIN, "区域管理员甲"))

        page.goto(f"{public_url}{reverse(CHANGE, args=[own.pk])}")
        assert page.locator("select[name=forbid_overlap] option:checked").inner_text() == "沿用区域规则"
        assert page.locator("select[name=ban_mode] option:checked").inner_text() == "沿用区域规则"
        no_english()

        page.goto(f"{public_url}{reverse(CHANGE, args=[region.pk])}")
        page.select_option("select[name=ban_mode]", "set")
        for name, value in (("ban_1_no_shows", "3"), ("ban_1_within_days", "90"), ("ban_1_ban_days", "30"),
                            ("ban_2_no_shows", "6"), ("ban_2_within_days", "180"), ("ban_2_ban_days", "180"),
                            ("quota_JKMZWX", "60"), ("quota_JKMYAPP", "40"), ("limit_per_day", "2")):  # fmt: skip
            page.fill(f"input[name={name}]", value)
        page.select_option("select[name=quota_mode]", "set")
        page.select_option("select[name=forbid_same_doctor_session]", "true")
        no_english()
        shot(page, "admin-booking-rules")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"页面宽度{width}像素，超出1366"
        page.click("input[name=_save]")
        page.wait_for_load_state("load")
        assert "预约规则已保存，立即生效" in page.inner_text("body")
        no_english()

        region.refresh_from_db()
        assert region.ban_tiers == [
            {"no_shows": 3, "within_days": 90, "ban_days": 30},
            {"no_shows": 6, "within_days": 180, "ban_days": 180},
        ]
        assert region.channel_quotas == {"JKMYAPP": 40, "JKMZWX": 60}
        assert (region.limit_per_day, region.forbid_same_doctor_session, region.forbid_overlap) == (2, True, True)
        rules = rules_for(hospital)
        assert rules.limit_per_day == 1 and rules.ban_tiers == (BanTier(3, 90, 30), BanTier(6, 180, 180))
