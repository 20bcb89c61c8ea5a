"""A channel's daily bill in (upload or fetch through its adapter), all or nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from django.db import connection, transaction
from django.utils import timezone

from booking.models import LedgerEntry
from reconciliation.adapters import adapter_for
from reconciliation.models import Statement, StatementLine, StatementSource
from reconciliation.statements import StatementRow, encoding_label, open_bill
from regional.audit import audit_record, snapshot
from regional.errors import DomainError
from regional.models import Hospital

logger = logging.getLogger("reconciliation")

COPY_BATCH = 2000


def statement_import(
    *,
    source: StatementSource,
    bill_date: dt.date,
    file: BinaryIO,
    filename: str = "",
    origin: str = StatementSource.UPLOAD,
    user=None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Statement, bool]:
    """Import one day's bill of `source` from `file` (binary, seekable). Returns (statement, replaced).

    The whole file is checked as it is written; any bad line refuses the file and nothing of it
    stays (one transaction). The same file again is a no-op; another file for the same day
    replaces the previous one and its lines. `progress(rows_read)` is called every few thousand rows.
    """
    digest, size = _digest(file)
    existing = Statement.objects.filter(source=source, bill_date=bill_date).first()
    if existing is not None and existing.sha256 == digest:
        return existing, False
    bill = open_bill(file, bill_date=bill_date, layout=source.layout)
    try:
        with transaction.atomic():
            previous = Statement.objects.select_for_update().filter(source=source, bill_date=bill_date).first()
            before = snapshot(previous) if previous else None
            if previous is not None:
                previous.delete()  # its lines go with it in one set-based DELETE (no signals on lines)
            statement = Statement.objects.create(
                source=source,
                pay_channel=source.pay_channel,
                bill_date=bill_date,
                layout=bill.layout,
                encoding=encoding_label(bill.encoding),
                filename=filename[:255],
                sha256=digest,
                size=size,
                origin=origin,
                imported_by=user if getattr(user, "is_authenticated", False) else None,
            )
            rows = bill.rows()
            _write_lines(statement, _counted(rows, progress) if progress else rows)
            if connection.vendor != "postgresql":
                statement_lines_attribute(statement_ids=[statement.pk])
            totals = bill.totals
            statement.account = bill.account
            statement.line_count = totals.line_count
            statement.payment_count, statement.payment_total = totals.payment_count, totals.payment_total
            statement.refund_count, statement.refund_total = totals.refund_count, totals.refund_total
            statement.save()
            audit_record(
                action="替换对账单" if previous else "导入对账单",
                obj=statement,
                before=before,
                after=snapshot(statement),
                user=user,
                actor="" if user else "对账任务",
                reason=filename[:200],
            )
    finally:
        bill.close()
    return statement, previous is not None


PROGRESS_EVERY = 5000


def _counted(rows: Iterator[StatementRow], progress: Callable[[int], None]) -> Iterator[StatementRow]:
    count = 0
    for count, row in enumerate(rows, 1):  # noqa: B007 - the last count is reported below
        yield row
        if count % PROGRESS_EVERY == 0:
            progress(count)
    progress(count)


def _digest(file: BinaryIO) -> tuple[str, int]:
    file.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := file.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return digest.hexdigest(), size


_LINE_FIELDS = (
    "statement_id", "pay_channel", "bill_date", "line_no", "kind", "batch", "pay_trade_no", "refund_no",
    "amount", "occurred_at", "status", "hospital_hint",
)  # fmt: skip


def _write_lines(statement: Statement, rows: Iterator[StatementRow]) -> None:
    """Stream the bill's rows into its lines, each line with its hospital.

    On PostgreSQL: COPY into a temporary table, then one INSERT … SELECT that joins the ledger
    (by Batch) and the hospitals (by the code in 商户数据包/备注), so every line is written once.
    Elsewhere: batched inserts, then `statement_lines_attribute`.
    """
    fixed = (statement.pk, statement.pay_channel, statement.bill_date)
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        table, temp = quote(StatementLine._meta.db_table), f"bill_{statement.pk}"
        ledger, hospitals = quote(LedgerEntry._meta.db_table), quote(Hospital._meta.db_table)
        names = [quote(StatementLine._meta.get_field(f).column) for f in _LINE_FIELDS]
        columns = ", ".join(names)
        with connection.cursor() as cursor:
            raw = cursor.cursor
            raw.execute(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
            with raw.copy(f"COPY {temp} ({columns}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row((*fixed, r.line_no, r.kind, r.batch, r.pay_trade_no, r.refund_no, r.amount,
                                    r.occurred_at, r.status, r.hospital_hint))  # fmt: skip
            raw.execute(f"ANALYZE {temp}")
            raw.execute(
                f"""
                INSERT INTO {table} ({columns}, hospital_id)
                SELECT {", ".join(f"t.{n}" for n in names)}, COALESCE(l.hospital_id, h.id)
                FROM {temp} AS t
                LEFT JOIN (SELECT batch, MIN(hospital_id) AS hospital_id FROM {ledger}
                           WHERE batch IN (SELECT batch FROM {temp}) GROUP BY batch) AS l ON l.batch = t.batch
                LEFT JOIN {hospitals} AS h ON h.hospital_no = t.hospital_hint AND t.hospital_hint <> ''
                """
            )
            raw.execute(f"DROP TABLE {temp}")
        return
    batch: list[StatementLine] = []
    for r in rows:
        batch.append(
            StatementLine(
                statement_id=statement.pk,
                pay_channel=statement.pay_channel,
                bill_date=statement.bill_date,
                line_no=r.line_no,
                kind=r.kind,
                batch=r.batch,
                pay_trade_no=r.pay_trade_no,
                refund_no=r.refund_no,
                amount=r.amount,
                occurred_at=r.occurred_at,
                status=r.status,
                hospital_hint=r.hospital_hint,
            )  # fmt: skip
        )
        if len(batch) >= COPY_BATCH:
            StatementLine.objects.bulk_create(batch)
            batch.clear()
    StatementLine.objects.bulk_create(batch)


def statement_lines_attribute(*, statement_ids: Sequence[int]) -> None:
    """Give bill lines still without a hospital theirs: the ledger's, by Batch; else the code the
    platform put in 商户数据包/备注 (lines imported before their ledger entries were written)."""
    from django.db.models import OuterRef, Subquery

    if not statement_ids:
        return
    lines = StatementLine.objects.filter(statement_id__in=statement_ids, hospital__isnull=True)
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(StatementLine._meta.db_table)
        ledger = connection.ops.quote_name(LedgerEntry._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {table} AS line SET hospital_id = ledger.hospital_id
                FROM (SELECT batch, MIN(hospital_id) AS hospital_id FROM {ledger}
                      WHERE batch IN (SELECT batch FROM {table}
                                      WHERE statement_id = ANY(%s) AND hospital_id IS NULL)
                      GROUP BY batch) AS ledger
                WHERE line.statement_id = ANY(%s) AND line.hospital_id IS NULL AND line.batch = ledger.batch
                """,
                [list(statement_ids), list(statement_ids)],
            )
    else:
        by_ledger = LedgerEntry.objects.filter(batch=OuterRef("batch")).values("hospital_id")[:1]
        lines.update(hospital_id=Subquery(by_ledger))
    by_code = Hospital.objects.filter(hospital_no=OuterRef("hospital_hint")).values("pk")[:1]
    lines.filter(hospital__isnull=True).exclude(hospital_hint="").update(hospital_id=Subquery(by_code))


def statement_fetch(
    *, source: StatementSource, bill_date: dt.date, user=None, progress: Callable[[int], None] | None = None
) -> Statement:
    """Fetch the bill of `bill_date` through the source's adapter and import it.

    The download happens before, and outside, the import's transaction. The outcome is kept on
    the source (`last_fetched_at`, `last_error`) for staff to see.
    """
    try:
        file, name = adapter_for(source).fetch(source, bill_date)
    except DomainError as exc:
        StatementSource.objects.filter(pk=source.pk).update(last_error=exc.message[:500])
        raise
    try:
        statement, _ = statement_import(
            source=source,
            bill_date=bill_date,
            file=file,
            filename=name,
            origin=source.adapter,
            user=user,
            progress=progress,
        )
    except DomainError as exc:  # a bad file, mostly (StatementFileError)
        StatementSource.objects.filter(pk=source.pk).update(last_error=exc.message[:500])
        raise
    finally:
        file.close()
    StatementSource.objects.filter(pk=source.pk).update(last_fetched_at=timezone.now(), last_error="")
    return statement


def statements_fetch_due(*, bill_date: dt.date) -> dict[str, str]:
    """Fetch `bill_date`'s bill from every active source that has an adapter; per channel, "ok" or why not."""
    outcome: dict[str, str] = {}
    sources = StatementSource.objects.filter(is_active=True).exclude(adapter=StatementSource.UPLOAD)
    for source in sources:
        try:
            statement_fetch(source=source, bill_date=bill_date)
            outcome[source.pay_channel] = "ok"
        except DomainError as exc:  # StatementUnavailable, StatementFileError, a bad knob
            logger.warning("statement fetch failed for %s %s: %s", source.pay_channel, bill_date, exc.message)
            outcome[source.pay_channel] = exc.message
    return outcome
