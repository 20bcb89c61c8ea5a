"""The staff's admin: filters, masking and recorded reveals, the overdue list, statistics and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from referral import services
from referral.models import Referral, ReferralNotification
from referral.services import Actor
from regional.models import PersonalDataReveal
from tests.base import START_VALUES, fake_id, masked_id

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/referral/referral/"
STATISTICS = "/admin/referral/referral/statistics/"


def make_referral(sender, receiver, *, order_id: str, submitted_at=None, accept_after=None, arrive_after=None, **data):
    values = {**START_VALUES, "orderid": order_id, "csrq": dt.date(1990, 1, 1), **data}
    referral, _ = services.referral_start(hospital=sender, data=values)
    referral = services.referral_submit(
        referral=referral,
        actor=Actor.doctor(sender),
        receiving_hospital=receiver,
        receiving_department=receiver.departments.first(),
        urgency="2",
        purpose="转诊",
    )
    if submitted_at is not None:
        stamps = {"submitted_at": submitted_at}
        if accept_after is not None:
            referral = services.referral_accept(referral=referral, actor=Actor.doctor(receiver))
            stamps["accepted_at"] = submitted_at + accept_after
            if arrive_after is not None:
                referral = services.referral_arrive(referral=referral, actor=Actor.doctor(receiver))
                stamps["arrived_at"] = submitted_at + accept_after + arrive_after
        Referral.objects.filter(pk=referral.pk).update(**stamps)
    return Referral.objects.get(pk=referral.pk)


@pytest.fixture
def referral(sender, receiver):
    return make_referral(sender, receiver, order_id="ORD-A1")


@pytest.fixture
def viewer():
    """A staff member who may see referrals, but not reveal personal data."""
    user = User.objects.create_user("viewer", password="x-viewer-2026", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_referral", "view_overduereferral"]))
    client = Client()
    client.login(username="viewer", password="x-viewer-2026")
    return client


class ReferralAdminTests:
    def test_the_list_masks_patients_and_filters_by_hospital_direction_status_urgency_and_date(
        self, referral, admin_client, receiver, make_hospital
    ):
        other = make_hospital("H0003", "测试第三医院")
        make_referral(other, receiver, order_id="ORD-B1")
        response = admin_client.get(CHANGELIST)
        page = response.content.decode()
        assert response.status_code == 200
        assert "ORD-A1" in page and "张*" in page and "张三" not in page
        for title in ("状态", "转诊方向", "紧急程度", "转出医院", "转入医院", "提交时间", "超时", "回转"):
            assert f"以 {title}" in page, title
        for query, found in (
            ("status__exact=submitted", True),
            ("status__exact=accepted", False),
            ("direction__exact=up", True),
            ("direction__exact=down", False),
            ("urgency__exact=2", True),
            (f"receiving_hospital__id__exact={receiver.pk}", True),
            (f"sending_hospital__id__exact={referral.sending_hospital_id}", True),
            (f"sending_hospital__id__exact={other.pk}", False),
            ("submitted_at__gte=2000-01-01", True),
            ("back=yes", False),
            ("overdue=yes", False),
        ):
            page = admin_client.get(f"{CHANGELIST}?{query}").content.decode()
            assert ("ORD-A1" in page) is found, query

    def test_a_full_id_number_card_or_name_finds_the_referral_by_its_hash(self, referral, admin_client):
        for term in (START_VALUES["sfzh"], START_VALUES["jzkh"], "张三", "ORD-A1"):
            assert "ORD-A1" in admin_client.get(CHANGELIST, {"q": term}).content.decode(), term
        assert "ORD-A1" not in admin_client.get(CHANGELIST, {"q": fake_id(9999)}).content.decode()
        filtered = admin_client.get(CHANGELIST, {"q": "张三", "status__exact": "cancelled"}).content.decode()
        assert "ORD-A1" not in filtered  # the hash match stays inside the list filters

    def test_the_change_page_is_masked_with_its_history_inline(self, referral, admin_client):
        page = admin_client.get(f"{CHANGELIST}{referral.pk}/change/").content.decode()
        assert masked_id(1234) in page and fake_id(1234) not in page
        assert "134****1234" in page and "13400001234" not in page
        assert "高血压3级" not in page and "***（5字）" in page
        assert "处理记录" in page and "提交转诊申请" in page
        assert f"/referral/referral/znts.html?id={referral.pk}" in page

    def test_a_reveal_needs_the_permission_and_is_recorded(self, referral, admin_client, viewer, admin_user):
        url = f"{CHANGELIST}{referral.pk}/reveal/id_no/"
        assert viewer.get(url).status_code == 403
        assert not PersonalDataReveal.objects.exists()
        assert viewer.post(url, {"reason": "核对"}).status_code == 403
        form = admin_client.get(url)
        assert form.status_code == 200 and START_VALUES["sfzh"] not in form.content.decode()
        assert not PersonalDataReveal.objects.exists()  # a followed link reveals and records nothing
        response = admin_client.post(url, {"reason": "转诊单信息核对"})
        assert response.status_code == 200 and START_VALUES["sfzh"] in response.content.decode()
        reveal = PersonalDataReveal.objects.get()
        assert (reveal.user, reveal.model, reveal.object_id, reveal.field, reveal.reason) == (
            admin_user,
            "referral.Referral",
            str(referral.pk),
            "id_no",
            "转诊单信息核对",
        )

    def test_staff_cancel_through_the_service(self, referral, admin_client):
        response = admin_client.post(
            CHANGELIST, {"action": "cancel_referrals", "_selected_action": [referral.pk]}, follow=True
        )
        assert "已取消1张转诊单" in response.content.decode()
        referral.refresh_from_db()
        assert referral.status == "cancelled"
        assert referral.transitions.last().actor_label == "平台用户 admin"

    def test_referrals_cannot_be_added_or_deleted_here(self, referral, admin_client):
        assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
        assert admin_client.get(f"{CHANGELIST}{referral.pk}/delete/").status_code == 403


class OverdueListTests:
    def test_it_lists_only_referrals_waiting_too_long_and_scans_on_demand(
        self, sender, receiver, viewer, admin_client, django_capture_on_commit_callbacks
    ):
        make_referral(sender, receiver, order_id="FRESH")
        old = make_referral(sender, receiver, order_id="STALE", submitted_at=timezone.now() - dt.timedelta(hours=60))
        page = viewer.get("/admin/referral/overduereferral/").content.decode()
        assert "STALE" in page and "FRESH" not in page and "2天12小时" in page
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/referral/overduereferral/",
                {"action": "scan_now", "_selected_action": [old.pk]},
                follow=True,
            )
        assert "本次新标记1张超时转诊单" in response.content.decode()
        assert ReferralNotification.objects.filter(referral=old, sent_at__isnull=False).count() == 2
        assert "STALE" in admin_client.get("/admin/referral/referralnotification/").content.decode()


class StatisticsTests:
    @pytest.fixture
    def history(self, sender, receiver, make_hospital):
        other = make_hospital("H0005", "=cmd|' /C calc'!A0")
        base = timezone.make_aware(dt.datetime(2026, 3, 10, 9, 0))
        for i, (accept_h, arrive_h) in enumerate(((2, 24), (4, 48), (6, None))):
            make_referral(
                sender,
                receiver,
                order_id=f"M3-{i}",
                submitted_at=base + dt.timedelta(days=i),
                accept_after=dt.timedelta(hours=accept_h),
                arrive_after=dt.timedelta(hours=arrive_h) if arrive_h else None,
            )
        make_referral(sender, receiver, order_id="M4-0", submitted_at=base + dt.timedelta(days=31))
        make_referral(sender, other, order_id="M4-1", submitted_at=base + dt.timedelta(days=32))

    def test_counts_and_median_times_per_hospital_pair_and_month(self, history, admin_client):
        response = admin_client.get(STATISTICS, {"from": "2026-01-01", "to": "2026-06-30"})
        assert response.status_code == 200
        rows = {(r.month.strftime("%Y-%m"), r.receiving): r for r in response.context["rows"]}
        march = rows[("2026-03", "测试第二人民医院")]
        assert (march.sent, march.accepted, march.arrived) == (3, 3, 2)
        assert march.median_accept_hours == 4.0 and march.median_arrive_hours == 36.0
        assert march.median_total_hours == 39.0
        assert rows[("2026-04", "测试第二人民医院")].sent == 1
        page = response.content.decode()
        assert 'id="chart"' in page and 'class="bar sent"' in page and "导出CSV" in page
        assert "<script" not in page.split('id="content-main"')[1]

    def test_the_table_exports_as_csv_safe_for_spreadsheets(self, history, admin_client):
        response = admin_client.get(STATISTICS, {"from": "2026-01-01", "to": "2026-06-30", "format": "csv"})
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert "attachment" in response["Content-Disposition"]
        text = response.content.decode("utf-8")
        assert text.startswith("\ufeff月份,转出医院,转入医院,转诊数")
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        assert [
            "2026-03",
            "测试社区卫生服务中心",
            "测试第二人民医院",
            "3",
            "3",
            "0",
            "2",
            "0",
            "0",
            "4.0",
            "36.0",
            "39.0",
        ] in rows
        formula = next(r for r in rows if r[0] == "2026-04" and "calc" in r[2])
        assert formula[2].startswith("'=")

    def test_it_filters_by_hospital_and_reports_bad_dates(self, history, admin_client):
        response = admin_client.get(STATISTICS, {"from": "2026-01-01", "to": "2026-06-30", "hospital": "H0005"})
        assert {r.receiving for r in response.context["rows"]} == {"=cmd|' /C calc'!A0"}
        response = admin_client.get(STATISTICS, {"from": "2026-13-01"})
        assert "开始日期格式应为yyyy-mm-dd" in response.content.decode()

    def test_it_needs_the_view_permission(self, client):
        User.objects.create_user("nobody", password="x-nobody-2026", is_staff=True)
        client.login(username="nobody", password="x-nobody-2026")
        assert client.get(STATISTICS).status_code == 403
