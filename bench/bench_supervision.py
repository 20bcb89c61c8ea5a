"""The commission's heaviest page — the region's dashboard for a whole year — against a bare
aggregate SQL query of the same figures, on a region of 300 hospitals.

Setup (not measured): 300 hospitals of three levels, a year of synthetic daily aggregates written in
bulk (COPY): supervision_hospitalday (300 × 365 rows), supervision_channelday (three channels per
hospital and day), supervision_referralday (each community hospital refers to two others, on one day
in three), outpatient capacity and visit totals for every hospital and month.

Subject: GET /admin/supervision/dashboard/?grain=year&period=<year> as a logged-in commission member
(Django test client, in process: URL routing, session, permission checks, the selectors, the SVG
charts, the indicator table and the 300-row hospital table with a drill-down link per figure).
Baseline, in the same run on the same PostgreSQL: the same sums straight from the tables with one
cursor — per hospital, per month, per channel and per referral pair — fetched into Python.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import time

from bench.common import measure, postgres_django, report

HOSPITALS = 300
YEAR = 2025
CHANNELS = (("JKMZWX", "微信公众号"), ("JKMYAPP", "健康APP"), ("REFERRAL", "双向转诊"))


def _copy(table: str, columns: list[str], rows) -> int:
    from django.db import connection

    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write("\t".join(str(v) for v in row) + "\n")
        count += 1
    buffer.seek(0)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(buffer.read())
    return count


def fill() -> dict:
    from booking.models import Channel
    from regional.models import Hospital
    from supervision.models import COUNTER_FIELDS, LATENCY_FIELDS, OutpatientCapacity, OutpatientVisits

    rnd = random.Random(17)
    hospitals = Hospital.objects.bulk_create(
        Hospital(hospital_no=f"H{n:04d}", name=f"演示市第{n}医院", degree_name=("三级甲等", "二级甲等", "一级甲等")[n % 3],
                 seq_no=n)
        for n in range(1, HOSPITALS + 1)
    )  # fmt: skip
    channels = Channel.objects.bulk_create(
        Channel(code=code, name=name, token_hash=f"{n:064d}") for n, (code, name) in enumerate(CHANNELS)
    )
    days = [dt.date(YEAR, 1, 1) + dt.timedelta(days=i) for i in range(365)]

    def hospital_rows():
        for hospital in hospitals:
            size = 1 + hospital.pk % 7
            for day in days:
                sessions = 10 * size
                published = 30 * sessions
                bookings = rnd.randint(published // 3, published // 2)
                cancelled, stop = bookings // 20, rnd.randint(0, 3)
                visited = (bookings - cancelled - stop) * 9 // 10
                counters = {
                    "sessions": sessions, "published": published, "sessions_booked": sessions - 1,
                    "sessions_stopped": 1 if stop else 0, "stop_notice_hours": 20.5 if stop else 0,
                    "lock_attempts": bookings + 5, "locks_confirmed": bookings + 2, "bookings": bookings,
                    "timeshare": bookings * 4 // 5, "visited": visited,
                    "no_show": bookings - cancelled - stop - visited, "cancelled": cancelled,
                    "stop_affected": stop, "stop_rebooked": stop // 2, "stop_refunded": stop // 2,
                }  # fmt: skip
                latency = [0] * len(LATENCY_FIELDS)
                for _ in range(4):
                    latency[rnd.randint(0, 8)] += bookings // 4
                calls = sum(latency) + 1
                yield [day, hospital.pk, *(counters[name] for name in COUNTER_FIELDS), calls + 3, calls, *latency,
                       bookings // 2, rnd.randint(0, 3)]  # fmt: skip

    columns = ["day", "hospital_id", *COUNTER_FIELDS, "calls_out", "calls_out_answered", *LATENCY_FIELDS,
               "messages_in", "messages_refused"]  # fmt: skip
    counts = {"hospital_days": _copy("supervision_hospitalday", columns, hospital_rows())}

    def channel_rows():
        for hospital in hospitals:
            for day in days:
                for channel in channels:
                    attempts = rnd.randint(20, 200)
                    yield [day, hospital.pk, channel.pk, attempts, attempts - 2, attempts - 3]

    counts["channel_days"] = _copy(
        "supervision_channelday",
        ["day", "hospital_id", "channel_id", "lock_attempts", "locks_confirmed", "bookings"],
        channel_rows(),
    )

    def referral_rows():
        for hospital in hospitals:
            if hospital.degree_name != "一级甲等":
                continue
            up = [hospitals[(hospital.pk + k) % HOSPITALS] for k in (1, 2)]
            for day in days[hospital.pk % 3 :: 3]:
                for receiving in up:
                    n = rnd.randint(1, 6)
                    yield [day, hospital.pk, receiving.pk, "up", n, n, n - 1, n - 1, 0, 1, 1]

    counts["referral_days"] = _copy(
        "supervision_referralday",
        [
            "day",
            "sending_id",
            "receiving_id",
            "direction",
            "submitted",
            "due",
            "accepted",
            "accepted_timely",
            "rejected",
            "with_booking",
            "booking_kept",
        ],  # fmt: skip
        referral_rows(),
    )
    months = [dt.date(YEAR, m, 1) for m in range(1, 13)]
    OutpatientCapacity.objects.bulk_create(
        OutpatientCapacity(hospital=h, month=m, capacity=12_000 * (1 + h.pk % 7)) for h in hospitals for m in months
    )
    OutpatientVisits.objects.bulk_create(
        OutpatientVisits(hospital=h, month=m, total_visits=9_000 * (1 + h.pk % 7), emergency_visits=900,
                         other_appointment_visits=500)
        for h in hospitals for m in months
    )  # fmt: skip
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return counts


BARE_SQL = [
    # Per hospital over the year (the ranking and the hospital table).
    "SELECT hospital_id, {sums} FROM supervision_hospitalday WHERE day BETWEEN %s AND %s GROUP BY hospital_id",
    # Per month (the trend), the region's total is their sum.
    "SELECT date_trunc('month', day), {sums} FROM supervision_hospitalday WHERE day BETWEEN %s AND %s GROUP BY 1",
    "SELECT channel_id, SUM(bookings), SUM(lock_attempts), SUM(locks_confirmed) FROM supervision_channelday "
    "WHERE day BETWEEN %s AND %s GROUP BY channel_id",
    "SELECT sending_id, receiving_id, direction, SUM(submitted), SUM(due), SUM(accepted), SUM(accepted_timely), "
    "SUM(with_booking), SUM(booking_kept) FROM supervision_referralday WHERE day BETWEEN %s AND %s GROUP BY 1, 2, 3",
    "SELECT hospital_id, month, capacity FROM supervision_outpatientcapacity WHERE month BETWEEN %s AND %s",
    "SELECT hospital_id, month, total_visits, emergency_visits, other_appointment_visits "
    "FROM supervision_outpatientvisits WHERE month BETWEEN %s AND %s",
]


def main() -> None:
    with postgres_django():
        from django.contrib.auth.models import Group, User
        from django.db import connection
        from django.test import Client

        from supervision.selectors import HOSPITAL_SUMS

        started = time.perf_counter()
        counts = fill()
        setup_seconds = time.perf_counter() - started
        user = User.objects.create_user("inspector", is_staff=True)
        user.groups.add(Group.objects.get(name="卫健委监管人员"))
        client = Client()
        client.force_login(user)
        url = f"/admin/supervision/dashboard/?grain=year&period={YEAR}"
        outcome = {}

        def page() -> None:
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            outcome["bytes"] = len(response.content)
            outcome["links"] = response.content.count(b"/admin/supervision/supervised")

        sums = ", ".join(f"SUM({name})" for name in HOSPITAL_SUMS)
        bounds = (dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))

        def bare() -> None:
            rows = 0
            with connection.cursor() as cursor:
                for sql in BARE_SQL:
                    cursor.execute(sql.format(sums=sums), bounds)
                    rows += len(cursor.fetchall())
            outcome["bare_rows"] = rows

        page()  # warm: templates compiled, URL resolvers loaded, connection open
        subject = measure("GET the region's dashboard for a year (admin, in process)", page, repeat=5)
        baseline = measure("bare aggregate SQL of the same figures (one cursor)", bare, repeat=5)
        result = report(
            f"supervision dashboard: {HOSPITALS} hospitals × a year of daily aggregates",
            subject,
            baseline,
            {
                **counts,
                "page_kib": round(outcome["bytes"] / 1024),
                "drill_down_links": outcome["links"],
                "bare_rows_fetched": outcome["bare_rows"],
                "goal": "time_ratio ≤ 3",
                "setup_seconds": round(setup_seconds, 1),
            },
        )
        if result["time_ratio"] is not None and result["time_ratio"] > 3:
            raise SystemExit(f"time ratio {result['time_ratio']} above the goal of 3")


if __name__ == "__main__":
    main()
