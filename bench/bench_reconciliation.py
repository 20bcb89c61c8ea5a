"""A day of 100,000 payments reconciled, against only loading both sides.

Setup (not measured): 100,000 payments of one day in the ledger (booking_ledgerentry, COPY), across
20 hospitals, 2,000 of them refunded the same day; the sandbox channel's WeChat Pay bill of that
day written to a file on disk (GBK, as WeChat Pay's merchant platform exports it) with nine
differences injected: 3 payments left out, 2 extra payments, 2 amounts changed, a refund at the
channel only, a recorded refund left out.

Subject: what the nightly task does once the file is there —
`statement_import` (decode and parse the file as a stream, check every line and the summary,
COPY the lines into a temporary table and write them once with their hospital by one
INSERT … SELECT joining the ledger) then `reconciliation_run`
(both sides grouped and sorted by the database, merged in one pass through server-side cursors,
neighbouring days looked up for the differences, orders in dispute looked up, the discrepancies
stored in one transaction).
Baseline, in the same run on the same PostgreSQL: only loading both sides into memory — the day's
ledger rows fetched from the database, and the file parsed into rows.

Peak memory is Python's (tracemalloc); the peak resident-set growth of one run of each is shown
too (VmHWM, reset through /proc/self/clear_refs; indicative: the allocator keeps freed memory).
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import tempfile
import time
from decimal import Decimal

from bench.common import measure, postgres_django, report

PAYMENTS = 100_000
REFUNDS = 2_000
HOSPITALS = 20
KNOBS = {
    "missing_payment": 3,
    "extra_payment": 2,
    "amount_mismatch": 2,
    "refund_channel_only": 1,
    "refund_platform_only": 1,
    "encoding": "gbk",
}


def peak_rss_growth(fn) -> float:
    """MiB the process's peak resident set grew by while `fn` ran (Linux only; 0 elsewhere)."""
    status = pathlib.Path("/proc/self/status")

    def read(key: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
        return 0

    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return 0.0
    before = read("VmRSS:")
    fn()
    return round((read("VmHWM:") - before) / 1024, 1)


def fill_ledger(day: dt.date, hospitals: list) -> None:
    from django.db import connection
    from django.utils import timezone

    from regional.pii import encrypt

    name = encrypt("测试患者")  # one ciphertext: reconciliation never decrypts names
    start = timezone.make_aware(dt.datetime.combine(day, dt.time(0, 0, 5)))
    step = 86_000 / PAYMENTS
    columns = (
        "entry_key, batch, pay_trade_no, type, kind, hospital_id, pay_channel, patient_name, amount, reason, created_at"
    )
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY booking_ledgerentry ({columns}) FROM STDIN") as copy:
        for n in range(PAYMENTS):
            batch = f"B{day:%Y%m%d}{n:07d}"
            amount = Decimal(5 + n % 96) + Decimal("0.50")
            hospital = hospitals[n % HOSPITALS].pk
            moment = start + dt.timedelta(seconds=n * step)
            trade_no = f"4200{day:%Y%m%d}{n:016d}"
            copy.write_row(
                (f"{batch}:payment", batch, trade_no, "1", "payment", hospital, "wepay", name, amount, "", moment)
            )
            if n % (PAYMENTS // REFUNDS) == 7:
                refund_at = moment + dt.timedelta(seconds=30)
                copy.write_row(
                    (f"{batch}:refund", batch, trade_no, "1", "refund", hospital, "wepay", name, amount, "", refund_at)
                )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE booking_ledgerentry")


def main() -> None:
    with postgres_django():
        from django.db import connection

        from booking.models import LedgerEntry
        from reconciliation import selectors, services
        from reconciliation.models import Discrepancy, ReconciliationRun, Statement, StatementSource
        from reconciliation.statements import open_bill
        from regional.services import hospital_onboard
        from sandbox import payments as sandbox

        day = dt.date.today() - dt.timedelta(days=1)
        hospitals = [
            hospital_onboard(hospital_no=f"B{n:04d}", name=f"基准医院{n}", secret="bench-secret-0123456789")[0]
            for n in range(HOSPITALS)
        ]
        started = time.perf_counter()
        fill_ledger(day, hospitals)
        source = StatementSource.objects.create(name="微信支付", pay_channel="wepay", adapter=StatementSource.SANDBOX)
        path = pathlib.Path(tempfile.mkdtemp(prefix="regional-bench-")) / f"wepay_{day:%Y%m%d}_ALL.csv"
        with path.open("wb") as out:
            manifest = sandbox.write_bill(
                layout="wechat",
                bill_date=day,
                entries=selectors.ledger_bill_entries(pay_channel="wepay", day=day),
                out=out,
                knobs=sandbox.Knobs.from_options(KNOBS),
            )
        setup_seconds = time.perf_counter() - started
        ledger_rows = LedgerEntry.objects.count()
        outcome: dict = {}

        def clear() -> None:
            # Every run starts from the same state: no bill imported, no earlier run.
            Discrepancy.objects.all().delete()
            ReconciliationRun.objects.all().delete()
            Statement.objects.all().delete()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE reconciliation_statementline")

        def reconcile() -> None:
            started = time.perf_counter()
            with path.open("rb") as file:
                services.statement_import(source=source, bill_date=day, file=file, filename=path.name)
            imported = time.perf_counter()
            outcome["run"] = services.reconciliation_run(date_from=day, date_to=day, pay_channel="wepay")
            phases = outcome.setdefault("phases", {"statement_import": [], "reconciliation_run": []})
            phases["statement_import"].append(imported - started)
            phases["reconciliation_run"].append(time.perf_counter() - imported)

        def load_both_sides() -> None:
            start, end = selectors.day_bounds(day)
            ledger = list(
                LedgerEntry.objects.filter(pay_channel="wepay", created_at__gte=start, created_at__lt=end).values_list(
                    "batch", "pay_trade_no", "kind", "amount", "hospital_id", "order_id", "created_at"
                )
            )
            with path.open("rb") as file:
                bill = open_bill(file, bill_date=day, layout="wechat")
                rows = list(bill.rows())
            outcome["loaded"] = (len(ledger), len(rows))

        # Resident-set growth first, while the process has not yet kept memory from earlier rounds.
        clear()
        subject_rss = peak_rss_growth(reconcile)
        baseline_rss = peak_rss_growth(load_both_sides)
        subject = measure("statement_import + reconciliation_run", reconcile, setup=clear)
        baseline = measure("load ledger rows + parse the bill (lists)", load_both_sides)

        run = outcome["run"]
        found = sorted(Discrepancy.objects.filter(run=run).values_list("type", flat=True))
        assert run.result == ReconciliationRun.Result.DISCREPANCIES, run.result
        assert run.discrepancy_count == 9, (run.discrepancy_count, found)
        assert run.ledger_payment_count == PAYMENTS and run.statement_payment_count == PAYMENTS - 3 + 2
        report(
            f"reconcile a day of {PAYMENTS:,} payments (WeChat Pay bill, GBK)",
            subject,
            baseline,
            {
                "ledger_rows": ledger_rows,
                "bill_rows": outcome["loaded"][1],
                "bill_file_mib": round(os.path.getsize(path) / 1024 / 1024, 1),
                "phases_best_seconds": {k: round(min(v), 2) for k, v in outcome["phases"].items()},
                "matched_trades": run.matched_count,
                "discrepancies": dict((t, found.count(t)) for t in sorted(set(found))),
                "injected": {k: len(v) for k, v in vars(manifest).items() if isinstance(v, list)},
                "ledger_net": str(run.ledger_net),
                "statement_net": str(run.statement_net),
                "peak_rss_growth_mib": {"subject": subject_rss, "baseline": baseline_rss},
                "setup_seconds": round(setup_seconds, 1),
            },
        )
        path.unlink()


if __name__ == "__main__":
    main()
