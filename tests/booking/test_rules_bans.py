"""Rule 4, no-show bans (爽约黑名单): the hospital reports no-shows over SOAP (2.4), the third one
within 90 days bans the patient region-wide, a banned lock is refused with the ban's end date, and
staff lift it in the admin with a reason (audited). Over HTTP against live_server."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from booking.models import NoShowBan, NoShowRecord, Order
from regional.models import AuditEntry
from sandbox import services as sandbox
from sandbox.models import SandboxOrder
from tests.base import lock, region_rules

pytestmark = pytest.mark.django_db(transaction=True)

TIERS = [{"no_shows": 3, "within_days": 90, "ban_days": 90}, {"no_shows": 6, "within_days": 180, "ban_days": 180}]


def no_show(api, bookable, n: int = 1) -> None:
    _, schedule = bookable(days_ahead=1)
    order = lock(api, schedule, n)
    held = SandboxOrder.objects.get(work_flow_id=order["workflow_id"])
    sandbox.order_mark_no_show(order=held)
    answer = sandbox.center_push_promise(orders=[held])
    assert answer.ok, answer.summary()
    assert Order.objects.get(order_no=order["order_no"]).status == Order.NO_SHOW


class NoShowBanTests:
    def test_the_third_no_show_bans_the_patient_and_the_lock_names_the_end_date(self, api, other_api, bookable):
        region_rules(ban_tiers=TIERS)
        no_show(api, bookable)
        no_show(api, bookable)
        assert not NoShowBan.objects.exists()
        no_show(api, bookable)  # the third within 90 days
        ban = NoShowBan.objects.get()
        today = timezone.localdate()
        assert (ban.no_shows, ban.within_days, ban.starts_on) == (3, 90, today)
        assert ban.ends_on == today + dt.timedelta(days=89)
        assert ban.trigger == NoShowRecord.objects.order_by("-pk").first()
        _, schedule = bookable(days_ahead=1)
        response = other_api.lock(schedule, 1)  # any channel: the ban is the region's
        assert response.status_code == 409 and response.json()["code"] == "patient_banned"
        assert f"{ban.ends_on:%Y年%m月%d日}" in response.json()["message"]
        lock(api, schedule, 2)  # other patients are not affected

    def test_staff_lift_a_ban_with_a_reason_and_the_patient_may_book_again(self, api, bookable, admin_client):
        region_rules(ban_tiers=TIERS)
        for _ in range(3):
            no_show(api, bookable)
        ban = NoShowBan.objects.get()
        url = reverse("admin:booking_noshowban_change", args=[ban.pk])
        page = admin_client.get(url).content.decode()
        assert "该患者的爽约与禁约记录" in page and page.count("爽约：") == 3
        assert "3306" not in page  # no ID number, only the hash's prefix
        admin_client.post(url, {"lift": "on", "reason": ""})
        ban.refresh_from_db()
        assert ban.lifted_at is None  # a reason is required
        admin_client.post(url, {"lift": "on", "reason": "患者提供就医证明"})
        ban.refresh_from_db()
        assert ban.lifted_at is not None and ban.change_reason == "患者提供就医证明"
        assert AuditEntry.objects.filter(action="解除爽约禁约", reason="患者提供就医证明").exists()
        _, schedule = bookable(days_ahead=1)
        lock(api, schedule, 1)

    def test_staff_can_shorten_a_ban_but_not_extend_it(self, api, bookable, admin_client):
        region_rules(ban_tiers=TIERS)
        for _ in range(3):
            no_show(api, bookable)
        ban = NoShowBan.objects.get()
        url = reverse("admin:booking_noshowban_change", args=[ban.pk])
        later = (ban.ends_on + dt.timedelta(days=1)).isoformat()
        admin_client.post(url, {"new_ends_on": later, "reason": "延长"})
        ban.refresh_from_db()
        assert ban.ends_on == timezone.localdate() + dt.timedelta(days=89)
        yesterday = timezone.localdate() - dt.timedelta(days=1)
        admin_client.post(url, {"new_ends_on": yesterday.isoformat(), "reason": "复核后缩短"})
        ban.refresh_from_db()
        assert ban.ends_on == yesterday
        _, schedule = bookable(days_ahead=1)
        lock(api, schedule, 1)
