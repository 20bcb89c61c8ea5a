"""The interface team's morning dashboard over 7 days of message log, and the plan PostgreSQL uses.

Setup (not measured): 40 hospitals, 100,000 message-log rows spread over the last 7 days and 200,000
older ones (the rest of a quarter), each with a ~700-character masked request as the log keeps them
(COPY), about 3% interface failures and 2% of the hospitals' own invalid messages, then VACUUM ANALYZE
(what autovacuum does to an insert-only table), so the visibility map allows index-only scans.

Subject: GET /admin/regional/messagelog/health/?hours=168 as the interface team (Django test
client, in process: the grouped figures with p95 per hospital and interface, the circuit states,
the hourly trend, the SVG). Baseline: the same grouped aggregate as one bare SQL statement.
Also printed: EXPLAIN (ANALYZE, BUFFERS) of both dashboard queries, to show they are served by the
covering index msglog_health (created_at INCLUDE hospital, interface, direction, ok, failure, duration_ms).
"""

from __future__ import annotations

import datetime as dt
import io
import random
import time

from bench.common import measure, postgres_django, report

HOSPITALS = 40
ROWS = 100_000  # in the 7-day window
OLDER = 200_000  # the rest of a quarter's retention, before the window
REQUEST = "<Request>" + "<WorkInfo><WorkId>W0001</WorkId><DoctorName>张*</DoctorName></WorkInfo>" * 8 + "</Request>"
OPERATIONS = (
    ("center", "synchronizedWorkInfo", "in"), ("center", "stopWorkNotice", "in"), ("center", "HospitalInfo", "in"),
    ("hospital", "confirmRegistration", "out"), ("hospital", "PaymentNotice", "out"), ("hospital", "UnlockReg", "out"),
    ("hospital", "getRegistrationInfo", "out"),
)  # fmt: skip

BARE_SQL = """
SELECT hospital_id, interface, direction, COUNT(*),
       COUNT(*) FILTER (WHERE NOT ok AND failure NOT IN ('input', 'refused')),
       COUNT(*) FILTER (WHERE failure = 'input'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),
       MAX(created_at) FILTER (WHERE ok)
FROM regional_messagelog WHERE created_at >= %s GROUP BY 1, 2, 3
"""


def fill() -> int:
    from django.db import connection
    from django.utils import timezone

    from regional.models import Hospital

    rnd = random.Random(13)
    hospitals = Hospital.objects.bulk_create(
        Hospital(hospital_no=f"H{n:04d}", name=f"演示市第{n}医院") for n in range(1, HOSPITALS + 1)
    )
    now = timezone.now()
    buffer = io.StringIO()
    for n in range(ROWS + OLDER):
        hospital = hospitals[rnd.randrange(HOSPITALS)]
        side, interface, direction = OPERATIONS[rnd.randrange(len(OPERATIONS))]
        draw = rnd.random()
        ok, failure = (False, "hospital" if direction == "out" else "platform") if draw < 0.03 else (True, "")
        if 0.03 <= draw < 0.05:
            ok, failure = False, "input" if direction == "in" else "refused"
        days = (0, 7) if n < ROWS else (7, 90)
        at = now - dt.timedelta(seconds=rnd.uniform(days[0] * 86400, days[1] * 86400))
        buffer.write(
            "\t".join(
                [direction, side, interface, str(hospital.pk), hospital.hospital_no, f"T{n:012d}", "t" if ok else "f",
                 "0" if ok else "1", "" if ok else "演示错误", failure, str(int(rnd.expovariate(1 / 120))), "",
                 REQUEST, "<Response><ResultCode>0</ResultCode></Response>", at.isoformat()]
            ) + "\n"
        )  # fmt: skip
    buffer.seek(0)
    columns = (
        "direction, side, interface, hospital_id, hospital_no, transaction_id, ok, result_code, error, failure, "
        "duration_ms, remote_addr, request_text, response_text, created_at"
    )
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY regional_messagelog ({columns}) FROM STDIN") as copy:
            copy.write(buffer.read())
        cursor.execute("VACUUM ANALYZE regional_messagelog")
    return ROWS + OLDER


def explain(queryset) -> str:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    with postgres_django():
        from django.contrib.auth.models import Permission, User
        from django.db import connection
        from django.db.models import Count, Max, Q
        from django.db.models.functions import TruncHour
        from django.test import Client
        from django.utils import timezone

        from regional.interface_health import FAILED, INVALID_INPUT, Percentile
        from regional.models import MessageLog

        started = time.perf_counter()
        rows = fill()
        setup_seconds = time.perf_counter() - started
        client = Client()
        user = User.objects.create_user("interfaces", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_messagelog"))  # all the page asks for
        client.force_login(user)
        since = timezone.now() - dt.timedelta(days=7)
        outcome = {}

        def page() -> None:
            response = client.get("/admin/regional/messagelog/health/?hours=168")
            assert response.status_code == 200, response.status_code
            outcome["bytes"] = len(response.content)

        def bare() -> None:
            with connection.cursor() as cursor:
                cursor.execute(BARE_SQL, [since])
                outcome["groups"] = len(cursor.fetchall())

        page()
        subject = measure("GET the interface-health dashboard for 7 days (admin, in process)", page, repeat=5)
        baseline = measure("bare grouped aggregate SQL of the same figures", bare, repeat=5)
        logs = MessageLog.objects.filter(created_at__gte=since).order_by()
        grouped = logs.values("hospital_id", "side", "interface", "direction").annotate(
            calls=Count("created_at"), failures=Count("created_at", filter=FAILED), invalid=Count("created_at", filter=INVALID_INPUT),
            p95=Percentile("duration_ms", 0.95), last=Max("created_at", filter=Q(ok=True)),
        )  # fmt: skip
        trend = (
            logs.annotate(bucket=TruncHour("created_at", tzinfo=timezone.get_current_timezone()))
            .values("bucket")
            .annotate(calls=Count("created_at"), failures=Count("created_at", filter=FAILED))
        )
        grouped_plan, trend_plan = explain(grouped), explain(trend)
        report(
            f"interface-health dashboard: {HOSPITALS} hospitals, {ROWS} of {rows} message-log rows in the 7 days",
            subject,
            baseline,
            {"setup_seconds": round(setup_seconds, 1), **outcome,
             "index_only_scan": "Index Only Scan using msglog_health" in grouped_plan + trend_plan},
        )  # fmt: skip
        print("-- EXPLAIN grouped figures\n" + grouped_plan)
        print("-- EXPLAIN hourly trend\n" + trend_plan)


if __name__ == "__main__":
    main()
