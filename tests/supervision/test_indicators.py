"""Every indicator of a month of activity across three hospitals, built through the real interfaces
(SOAP pushes from the sandbox hospitals, REST bookings, 2.4 reports, a stop, referrals over the
servlet and the notice pages), against a count made by hand from the scenario in conftest.build_month."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from booking.models import Schedule
from regional.models import Hospital, MessageLog
from supervision import selectors, tasks
from supervision.models import LATENCY_BUCKETS_MS, ChannelDay, DoctorDay, HospitalDay, ReferralDay
from tests.supervision.support import build_month

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def period() -> selectors.Period:
    today = timezone.localdate()
    return selectors.Period("range", today - dt.timedelta(days=3), today + dt.timedelta(days=1))


def rows() -> list[tuple]:
    return sorted(
        tuple(sorted((k, v) for k, v in row.items() if k != "id"))
        for model in (DoctorDay, HospitalDay, ChannelDay, ReferralDay)
        for row in model.objects.values()
    )


@pytest.fixture
def month(region, api, other_api, client, post):
    built = build_month(region, api, other_api, client, post)
    today = timezone.localdate()
    call_command(
        "supervision_backfill", "--from", f"{today - dt.timedelta(days=3)}", "--to", f"{today + dt.timedelta(days=1)}"
    )
    return built


class IndicatorTests:
    def test_every_indicator_of_the_region_matches_the_hand_count(self, month):
        figures = selectors.overview(period=period())
        values = figures.total.values()
        # Sessions A1 A2 B1 B2 C1 with 5+3+3+2+2 numbers; all five booked, B1 stopped.
        assert values["published"] == 15
        assert values["stop_rate"] == 20.0  # 1 of 5
        # Lock attempts o1–o9 and the referral booking (10); o5 refused (9 confirmed).
        assert values["lock_success"] == 90.0
        # Bookings: o1 o2 o3 o4 o6 o7 o8 o9 and the referral's = 9.
        assert values["bookings"] == 9
        # Due = bookings − cancels (o4) − stop cancels (o6 o7) = 6; seen o1 o2 o9 ref = 4; no-show o3.
        assert values["visit_rate"] == round(100 * 4 / 6, 1)
        assert values["no_show_rate"] == round(100 * 1 / 6, 1)
        assert values["cancel_rate"] == round(100 * 1 / 9, 1)  # o4 of 9; the stop cancels are apart
        # The stop: o6 o7 affected, o6 refunded (paid online) and rebooked (o8).
        assert (values["stop_affected"], values["stop_refunded"], values["stop_rebooked"]) == (2, 1, 1)
        b1 = Schedule.objects.get(pk=month.schedules["B1"].pk)
        starts = dt.datetime.combine(b1.work_date, b1.start_time, tzinfo=timezone.get_current_timezone())
        assert values["stop_notice"] == round((starts - b1.stopped_at).total_seconds() / 3600, 1)
        assert values["timeshare_rate"] == round(100 * 1 / 9, 1)  # only o1 chose a slot
        # Referrals: R1 R3 R4 up, R2 down; due R1 R2 R3 (R4 still within 48 h); R1 R2 in time.
        assert (values["referral_up"], values["referral_down"]) == (3, 1)
        assert values["referral_timely"] == round(100 * 2 / 3, 1)
        assert values["referral_kept"] == 100.0  # R1's booking, seen
        # No capacity and no visit totals entered yet: those rates are not computed.
        assert values["publish_rate"] is None and values["appointment_rate"] is None

    def test_bookings_by_channel_and_by_hospital(self, month):
        figures = selectors.overview(period=period())
        by_channel = {
            c["channel__code"]: (c["lock_attempts"], c["locks_confirmed"], c["bookings"]) for c in figures.channels
        }
        # WeChat o1 o2 o5 o6 o8 (o5 refused); APP o3 o4 o7 o9; the referral channel R1's booking.
        assert by_channel == {"JKMZWX": (5, 4, 4), "JKMYAPP": (4, 4, 4), "REFERRAL": (1, 1, 1)}
        by_hospital = {h.hospital_no: f.values() for h, f in figures.hospitals}
        assert by_hospital["S001"]["bookings"] == 5  # o1 o2 o3 o4 ref
        assert by_hospital["S002"]["bookings"] == 3  # o6 o7 o8
        assert by_hospital["S003"]["bookings"] == 1  # o9
        assert by_hospital["S001"]["visit_rate"] == 75.0  # o1 o2 ref of o1 o2 o3 ref
        assert by_hospital["S002"]["stop_rate"] == 50.0  # B1 of B1 B2
        # Up and down by the sender: C sent R1 R4 up, B sent R3 up, A sent R2 down.
        assert [by_hospital[no]["referral_up"] for no in ("S001", "S002", "S003")] == [0, 1, 2]
        assert by_hospital["S001"]["referral_down"] == 1
        # Acceptance by the receiver: A received R1 (in time) and R3 (late); C received R2 (in time).
        assert by_hospital["S001"]["referral_timely"] == 50.0 and by_hospital["S003"]["referral_timely"] == 100.0
        flows = {(f["sending__name"], f["receiving__name"]): (f["direction"], f["submitted"]) for f in figures.flows}
        assert flows[("测试社区卫生服务中心", "测试市第一人民医院")] == ("up", 1)
        assert flows[("测试市第一人民医院", "测试社区卫生服务中心")] == ("down", 1)
        assert len(flows) == 4

    def test_the_interface_service_level_of_the_community_centre(self, month):
        c = Hospital.objects.get(hospital_no="S003")
        values = selectors.overview(period=period(), hospital=c).total.values()
        # The platform called C twice: the slot query (HTTP 500, no answer) and o9's lock.
        assert values["availability"] == 50.0
        lock = MessageLog.objects.get(hospital=c, direction="out", interface="confirmRegistration")
        assert values["latency_p95"] == next(b for b in LATENCY_BUCKETS_MS if lock.duration_ms <= b)
        # C sent 5.1, 2.1, 2.4, the refused 2.2, referral-apply ×2 and referral-query: 1 refused of 7.
        assert values["refused_rate"] == round(100 * 1 / 7, 1)

    def test_departments_and_doctors_of_a_hospital(self, month):
        a = Hospital.objects.get(hospital_no="S001")
        departments = {
            label: f.values() for label, _pk, f in selectors.breakdown(hospital=a, period=period(), by="department")
        }
        assert departments["心血管内科"]["bookings"] == 1 and departments["心血管内科"]["visit_rate"] == 100.0
        doctors = selectors.breakdown(hospital=a, period=period(), by="doctor")
        assert sorted(f.values()["bookings"] for _label, _pk, f in doctors) == [1, 4]

    def test_a_month_and_a_day_attribute_orders_to_the_session_date(self, month):
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        day = selectors.overview(period=selectors.period_of("day", tomorrow.isoformat())).total.values()
        assert day["bookings"] == 9 and day["referral_up"] == 0  # referrals were submitted today or earlier
        in_month = selectors.overview(period=selectors.period_of("month", f"{tomorrow:%Y-%m}")).total.values()
        assert in_month["bookings"] == 9

    def test_capacity_and_visit_totals_give_the_two_rates(self, month):
        from supervision.models import OutpatientCapacity, OutpatientVisits

        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        first = tomorrow.replace(day=1)
        a = Hospital.objects.get(hospital_no="S001")
        OutpatientCapacity.objects.create(hospital=a, month=first, capacity=40)
        OutpatientVisits.objects.create(hospital=a, month=first, total_visits=30, emergency_visits=10,
                                        other_appointment_visits=5)  # fmt: skip
        values = selectors.overview(period=selectors.period_of("month", f"{first:%Y-%m}")).total.values()
        assert values["publish_rate"] == 20.0  # A's 8 numbers of 40
        assert values["appointment_rate"] == 40.0  # (A's 3 seen + 5 elsewhere) / (30 − 10)

    def test_the_drill_down_lists_the_records_behind_a_figure(self, month, admin_client):
        from supervision.admin import drill_url

        a = Hospital.objects.get(hospital_no="S001")
        url = drill_url("order", "visited", period(), hospital=a.pk)
        page = admin_client.get(url).content.decode()
        expected = {month.orders[k]["order_no"] for k in ("o1", "o2", "ref")}
        assert all(number in page for number in expected)
        assert month.orders["o3"]["order_no"] not in page
        stopped = admin_client.get(drill_url("order", "stop_rebooked", period())).content.decode()
        assert month.orders["o6"]["order_no"] in stopped and month.orders["o7"]["order_no"] not in stopped
        late = admin_client.get(drill_url("referral", "accepted_timely", period(), hospital=a.pk)).content.decode()
        assert "R-001" in late and "R-003" not in late

    def test_the_nightly_task_rebuilds_the_same_rows(self, month):
        before = rows()
        assert tasks.nightly.delay().get() > 0
        assert rows() == before

    def test_the_monthly_report_as_html_excel_and_csv(self, month, admin_client):
        import io

        from openpyxl import load_workbook

        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        query = f"grain=month&period={tomorrow:%Y-%m}"
        html = admin_client.get(f"/admin/supervision/dashboard/report/?{query}").content.decode()
        assert "全区域监管月报" in html and "@media print" in html and "<svg" in html and "医院确认锁号的次数" in html
        book = load_workbook(io.BytesIO(admin_client.get(f"/admin/supervision/dashboard/report.xlsx?{query}").content))
        assert book.sheetnames == ["指标", "医院", "月度趋势", "渠道", "转诊流向"]
        values = {row[1]: row[2] for row in book["指标"].iter_rows(min_row=3, values_only=True)}
        assert values["预约量"] == 9 and values["停诊影响人次"] == 2
        csv_text = admin_client.get(f"/admin/supervision/dashboard/report.csv?{query}").content.decode("utf-8-sig")
        total = [line for line in csv_text.splitlines() if ",合计," in line]
        assert len(total) == 1 and ",9," in total[0]
