"""The rules of finance reconciliation (财务对账, spec 2.5), called alike by the nightly task, the
admin, the SOAP handler and the tests.

- `statement_import` / `statement_fetch`: a channel's daily bill in, all or nothing.
- `reconciliation_request` (queue a run) / `reconciliation_run` (run now) / `reconciliation_execute`:
  three-way reconciliation of a date range. Per payment channel and day with a bill, the ledger
  and the bill are merged trade by trade (`engine.match`); differences at the edge of the day are
  looked up on the neighbouring days (跨日); orders whose money and states disagree are checked
  at their hospital (`GetOrderDetailInfo`, outside any transaction); then, in one transaction,
  the open discrepancies of the days reconciled are replaced by what was found. Discrepancies
  already explained with the same amounts are not raised again; resolved ones keep their history.
- `discrepancy_resolve`: open → explained / corrected, with who and why (and the audit trail).
- `reconciliation_info`: ReconciliationInfo's records for the calling hospital.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import BinaryIO

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from booking.hospital import ask
from booking.models import LedgerEntry, Order
from reconciliation import engine, selectors
from reconciliation.adapters import adapter_for
from reconciliation.engine import Finding, Tally
from reconciliation.models import (
    Discrepancy,
    EntryKind,
    PayChannel,
    ReconciliationRun,
    Statement,
    StatementLine,
    StatementSource,
)
from reconciliation.statements import StatementRow, encoding_label, open_bill
from regional.audit import audit_record, snapshot
from regional.errors import Conflict, DomainError
from regional.models import Hospital

logger = logging.getLogger("reconciliation")

T = Discrepancy.Type
Run = ReconciliationRun
ZERO = Decimal("0.00")
COPY_BATCH = 2000


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


# -- statements ------------------------------------------------------------------------------------


def statement_import(
    *,
    source: StatementSource,
    bill_date: dt.date,
    file: BinaryIO,
    filename: str = "",
    origin: str = StatementSource.UPLOAD,
    user=None,
) -> tuple[Statement, bool]:
    """Import one day's bill of `source` from `file` (binary, seekable). Returns (statement, replaced).

    The whole file is checked as it is written; any bad line refuses the file and nothing of it
    stays (one transaction). The same file again is a no-op; another file for the same day
    replaces the previous one and its lines.
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
            _write_lines(statement, bill.rows())
            if connection.vendor != "postgresql":
                _attribute_lines(statement_ids=[statement.pk])
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
    Elsewhere: batched inserts, then `_attribute_lines`.
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


def _attribute_lines(*, statement_ids: Sequence[int]) -> None:
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


def statement_fetch(*, source: StatementSource, bill_date: dt.date, user=None) -> Statement:
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
            source=source, bill_date=bill_date, file=file, filename=name, origin=source.adapter, user=user
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


# -- runs ------------------------------------------------------------------------------------------


def _check_range(date_from: dt.date, date_to: dt.date) -> None:
    if date_to < date_from:
        raise DomainError("结束日期不能早于开始日期")
    limit = _setting("RECONCILIATION_MAX_DAYS", 31)
    if (date_to - date_from).days + 1 > limit:
        raise DomainError(f"一次对账最多{limit}天，请缩小日期范围")
    if date_to >= timezone.localdate():
        raise DomainError("只能对已结束的日期对账（对账单次日生成）")


def reconciliation_request(
    *,
    date_from: dt.date,
    date_to: dt.date,
    hospital: Hospital | None = None,
    pay_channel: str = "",
    hospital_check: str = Run.HospitalCheck.DISPUTED,
    user=None,
    trigger: str = Run.Trigger.MANUAL,
    fetch: bool = False,
) -> ReconciliationRun:
    """Queue a run; a worker executes it after this transaction commits."""
    _check_range(date_from, date_to)
    with transaction.atomic():
        run = Run.objects.create(
            date_from=date_from,
            date_to=date_to,
            hospital=hospital,
            pay_channel=pay_channel,
            hospital_check=hospital_check,
            trigger=trigger,
            started_by=user if getattr(user, "is_authenticated", False) else None,
        )
        audit_record(action="发起对账", obj=run, after=snapshot(run), user=user, actor="" if user else "对账任务")
        from reconciliation import tasks

        transaction.on_commit(lambda: tasks.run_reconciliation.delay(run.pk, fetch))
    return run


def reconciliation_run(
    *,
    date_from: dt.date,
    date_to: dt.date,
    hospital: Hospital | None = None,
    pay_channel: str = "",
    hospital_check: str = Run.HospitalCheck.DISPUTED,
    user=None,
    trigger: str = Run.Trigger.MANUAL,
) -> ReconciliationRun:
    """Create a run and execute it now (the nightly task, tests, the benchmark)."""
    _check_range(date_from, date_to)
    run = Run.objects.create(
        date_from=date_from,
        date_to=date_to,
        hospital=hospital,
        pay_channel=pay_channel,
        hospital_check=hospital_check,
        trigger=trigger,
        started_by=user if getattr(user, "is_authenticated", False) else None,
    )
    audit_record(action="发起对账", obj=run, after=snapshot(run), user=user, actor="" if user else "对账任务")
    return reconciliation_execute(run=run)


def reconciliation_execute(*, run: ReconciliationRun, fetch: bool = False) -> ReconciliationRun:
    """Execute a queued run once (a redelivered task finds it taken and returns it as it is)."""
    taken = Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=timezone.now()
    )
    run.refresh_from_db()
    if not taken:
        return run
    try:
        if fetch:
            _fetch_missing(run)
        _reconcile(run)
    except Exception as exc:
        message = exc.message if isinstance(exc, DomainError) else f"内部错误（{type(exc).__name__}）"
        if not isinstance(exc, DomainError):
            logger.exception("reconciliation run %s failed", run.pk)
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.FAILED,
            result=Run.Result.FAILED,
            finished_at=timezone.now(),
            note=f"对账失败：{message}"[:2000],
        )
        run.refresh_from_db()
        audit_record(
            action="对账失败",
            obj=run,
            after=snapshot(run),
            user=run.started_by,
            actor="" if run.started_by else "对账任务",
            reason=message[:500],
        )
        if not isinstance(exc, DomainError):
            raise
    return run


def _fetch_missing(run: ReconciliationRun) -> None:
    channels = [run.pay_channel] if run.pay_channel else list(PayChannel.values)
    sources = StatementSource.objects.filter(pay_channel__in=channels, is_active=True).exclude(
        adapter=StatementSource.UPLOAD
    )
    for source in sources:
        for day in _days(run.date_from, run.date_to):
            if not Statement.objects.filter(source=source, bill_date=day).exists():
                try:
                    statement_fetch(source=source, bill_date=day, user=run.started_by)
                except DomainError as exc:
                    logger.warning("fetch before run %s: %s", run.pk, exc.message)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _reconcile(run: ReconciliationRun) -> None:
    days = _days(run.date_from, run.date_to)
    channels = [run.pay_channel] if run.pay_channel else list(PayChannel.values)
    billed = {
        (channel, day): pk
        for pk, channel, day in Statement.objects.filter(pay_channel__in=channels, bill_date__in=days).values_list(
            "pk", "pay_channel", "bill_date"
        )
    }
    # Bills imported before their ledger entries were written have lines without a hospital yet.
    _attribute_lines(statement_ids=list(billed.values()))
    limit = _setting("RECONCILIATION_MAX_DISCREPANCIES", 50_000)
    tally, findings, covered, missing = Tally(), [], [], []
    for channel in channels:
        for day in days:
            if (channel, day) not in billed:
                totals = selectors.ledger_day_totals(pay_channel=channel, day=day, hospital=run.hospital)
                if totals["pay_count"] or totals["refund_count"]:
                    missing.append((channel, day))
                    tally.ledger_payment_count += totals["pay_count"]
                    tally.ledger_payment_total += totals["pay_amount"]
                    tally.ledger_refund_count += totals["refund_count"]
                    tally.ledger_refund_total += totals["refund_amount"]
                continue
            covered.append((channel, day))
            for finding in engine.match(
                selectors.ledger_trades(pay_channel=channel, day=day, hospital=run.hospital),
                selectors.statement_trades(
                    statement_id=billed[(channel, day)], pay_channel=channel, day=day, hospital=run.hospital
                ),
                tally,
            ):
                findings.append(finding)
                if len(findings) > limit:
                    raise DomainError(
                        f"差异超过{limit}笔，已停止：请检查{PayChannel(channel).label}{day:%Y-%m-%d}的对账单是否选错日期或来源"
                    )
    findings = _cross_day(findings)
    checked, unchecked, findings = _check_hospitals(run, findings, covered)
    _store(run, tally, findings, covered, missing, checked, unchecked)


def _cross_day(findings: list[Finding]) -> list[Finding]:
    """A trade missing on one side of a day but present on the other side the day before or after
    (a payment at 23:59:59 billed the next day) is a timing difference, not a missing payment."""
    one_sided = {
        T.PLATFORM_ONLY: ("statement", EntryKind.PAYMENT),
        T.CHANNEL_ONLY: ("ledger", EntryKind.PAYMENT),
        T.REFUND_PLATFORM_ONLY: ("statement", EntryKind.REFUND),
        T.REFUND_CHANNEL_ONLY: ("ledger", EntryKind.REFUND),
    }
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        if f.type in one_sided:
            groups.setdefault((f.pay_channel, *one_sided[f.type]), []).append(f)
    moved: dict[tuple, Finding] = {}
    for (channel, side, kind), group in groups.items():
        days = sorted({d for f in group for d in (f.day - dt.timedelta(days=1), f.day + dt.timedelta(days=1))})
        found = selectors.neighbour_days(
            pay_channel=channel, batches=sorted({f.batch for f in group}), kind=kind, days=days, side=side
        )
        for f in group:
            for other in (f.day - dt.timedelta(days=1), f.day + dt.timedelta(days=1)):
                amount = found.get((f.batch, other))
                if amount is None:
                    continue
                where = "对账单" if side == "statement" else "平台流水"
                what = "支付" if kind == EntryKind.PAYMENT else "退款"
                same = (f.ledger_amount or f.statement_amount) == amount
                detail = f"{where}在{other:%Y-%m-%d}记有此笔{what}（{amount}元{'' if same else '，金额不同'}）"
                moved[f.key] = replace(f, type=T.CROSS_DAY, detail=detail)
                break
    return [moved.get(f.key, f) for f in findings]


# -- the hospital's view (GetOrderDetailInfo) -------------------------------------------------------

PAID_STATES = ("2", "4", "6")


def _check_hospitals(run: ReconciliationRun, findings: list[Finding], covered) -> tuple[int, set[str], list[Finding]]:
    """Ask hospitals about orders whose money and states disagree; never inside a transaction.

    Candidates: orders behind the differences found, orders whose platform status disagrees
    with their ledger (cancelled yet paid, paid yet refunded, never marked paid yet paid), and —
    when the run asks for it — every order paid in the range. At most
    RECONCILIATION_HOSPITAL_CHECK_LIMIT calls per run; the rest count as unchecked.
    """
    if run.hospital_check == Run.HospitalCheck.NONE or not covered:
        return 0, set(), findings
    limit = _setting("RECONCILIATION_HOSPITAL_CHECK_LIMIT", 500)
    channels = sorted({c for c, _ in covered})
    candidates: dict[int, None] = {}
    for f in findings:
        if f.order_id:
            candidates[f.order_id] = None
    unknown = [f.batch for f in findings if f.type == T.CHANNEL_ONLY and not f.order_id]
    for batch, order_id in selectors.orders_by_batch(unknown).items():
        candidates[order_id] = None
        findings = [replace(f, order_id=order_id) if f.batch == batch and not f.order_id else f for f in findings]
    for order_id in selectors.disputed_orders(
        date_from=run.date_from, date_to=run.date_to, hospital=run.hospital, pay_channels=channels, limit=limit
    ):
        candidates[order_id] = None
    if run.hospital_check == Run.HospitalCheck.ALL:
        for order_id in selectors.paid_orders(
            date_from=run.date_from, date_to=run.date_to, hospital=run.hospital, pay_channels=channels, limit=limit
        ):
            candidates[order_id] = None
    # The hospital client refuses to run inside a transaction (a call waits up to its timeout).
    order_ids = list(candidates)
    _, end = selectors.day_bounds(run.date_to)
    money = selectors.order_money(order_ids, until=end)
    orders = Order.objects.select_related("hospital").in_bulk(order_ids)
    checked, unchecked, extra = 0, set(), []
    statuses: dict[str, str] = {}
    for position, order_id in enumerate(order_ids):
        order, facts = orders.get(order_id), money.get(order_id)
        if order is None or facts is None:
            continue
        if position >= limit or not order.workflow_id:
            unchecked.add(facts["batch"])
            continue
        day = _finding_day(findings, facts["batch"], run.date_to)
        base = Finding(
            T.HOSPITAL_NO_ORDER,
            pay_channel=facts["pay_channel"] or order.pay_channel or channels[0],
            batch=facts["batch"],
            day=day,
            pay_trade_no=order.pay_trade_no,
            hospital_id=order.hospital_id,
            order_id=order.pk,
        )
        answer = ask(order.hospital, "GetOrderDetailInfo", {"WorkFlowId": order.workflow_id})
        if answer.refused:
            checked += 1
            extra.append(replace(base, detail=f"医院答复：{answer.refused}"[:500]))
            continue
        if not answer.ok:
            logger.warning("GetOrderDetailInfo for order %s failed: %s", order.pk, answer.problem)
            unchecked.add(facts["batch"])
            continue
        checked += 1
        statuses[facts["batch"]] = answer.fields["WorkFlowStatus"]
        extra.extend(compare_hospital(base, answer.fields, facts))
    findings = [replace(f, hospital_status=statuses[f.batch]) if f.batch in statuses else f for f in findings]
    return checked, unchecked, findings + extra


def _finding_day(findings: list[Finding], batch: str, default: dt.date) -> dt.date:
    return next((f.day for f in findings if f.batch == batch), default)


def compare_hospital(base: Finding, answer: dict, facts: dict) -> list[Finding]:
    """The differences between the money (the bills' if billed, else the ledger's) and what the
    hospital says about the order (WorkFlowStatus, Fee)."""
    status = answer["WorkFlowStatus"]
    if facts["billed"]:
        paid, refunded = facts["statement_paid"], facts["statement_refunded"]
    else:
        paid, refunded = facts["ledger_paid"], facts["ledger_refunded"]
    net = paid - refunded
    amounts = {
        "ledger_amount": facts["ledger_paid"] - facts["ledger_refunded"],
        "statement_amount": net if facts["billed"] else None,
        "hospital_status": status,
    }
    found = []
    if status == "3" and net > 0:
        found.append(
            replace(base, type=T.HOSPITAL_CANCELLED_PAID, detail=f"医院显示已退号，仍收款{net}元未退", **amounts)
        )
    elif status == "1" and net > 0:
        found.append(
            replace(base, type=T.HOSPITAL_UNPAID, detail=f"已收款{net}元，医院显示已预约（未支付）", **amounts)
        )
    elif status in PAID_STATES and net <= 0 and facts["refunds"]:
        label = {"2": "已支付", "4": "已履约", "6": "已爽约"}[status]
        found.append(
            replace(base, type=T.HOSPITAL_ACTIVE_REFUNDED, detail=f"款项已全额退回，医院显示{label}", **amounts)
        )
    fee = answer.get("Fee")
    if status in PAID_STATES and facts["type"] == LedgerEntry.TYPE_REGISTRATION and fee is not None and paid > 0:
        if Decimal(fee) != paid:
            found.append(
                replace(
                    base,
                    type=T.HOSPITAL_FEE_MISMATCH,
                    detail=f"医院挂号费{Decimal(fee):.2f}元，实收{paid}元",
                    **{**amounts, "ledger_amount": facts["ledger_paid"], "statement_amount": Decimal(fee)},
                )
            )
    return found


# -- storing a run ---------------------------------------------------------------------------------


def _store(run, tally: Tally, findings: list[Finding], covered, missing, checked: int, unchecked: set[str]) -> None:
    """Replace the open discrepancies of the channel-days reconciled by `findings`, atomically."""
    days = sorted({d for _, d in covered})
    scope = Q()
    for channel in sorted({c for c, _ in covered}):
        scope |= Q(pay_channel=channel, day__in=[d for c, d in covered if c == channel])
    with transaction.atomic():
        _lock_days(days)
        # A difference already explained or corrected, with the same amounts, is not raised again
        # (a correction is booked on the day it is made, so the original day keeps showing it).
        settled = set()
        if covered:
            resolved = Discrepancy.objects.filter(scope).exclude(status=Discrepancy.Status.OPEN)
            for d in resolved.values_list("day", "pay_channel", "batch", "type", "ledger_amount", "statement_amount"):
                settled.add(d)
            stale = Discrepancy.objects.filter(scope, status=Discrepancy.Status.OPEN)
            if run.hospital_id:
                stale = stale.filter(hospital_id=run.hospital_id)
            if unchecked:
                # A hospital that could not be asked this time keeps what it said last time.
                stale = stale.exclude(type__in=Discrepancy.HOSPITAL_TYPES, batch__in=unchecked)
            stale.delete()
        new, skipped, seen = [], 0, set()
        for f in findings:
            if f.key in seen:
                continue
            seen.add(f.key)
            if (*f.key, f.ledger_amount, f.statement_amount) in settled:
                skipped += 1
                continue
            new.append(_discrepancy(run, f))
        Discrepancy.objects.bulk_create(new, batch_size=1000)
        for name in (
            "ledger_payment_count", "ledger_payment_total", "ledger_refund_count", "ledger_refund_total",
            "statement_payment_count", "statement_payment_total", "statement_refund_count", "statement_refund_total",
            "matched_count",
        ):  # fmt: skip
            setattr(run, name, getattr(tally, name))
        run.discrepancy_count = Discrepancy.objects.filter(run=run).count()
        run.resolved_count = skipped
        run.hospital_checked, run.hospital_unchecked = checked, len(unchecked)
        run.missing_statements = "、".join(f"{PayChannel(c).label}{d:%Y-%m-%d}" for c, d in missing)
        run.status, run.finished_at = Run.Status.DONE, timezone.now()
        if missing or unchecked:
            run.result = Run.Result.INCOMPLETE
        else:
            run.result = Run.Result.DISCREPANCIES if run.discrepancy_count else Run.Result.BALANCED
        notes = []
        if missing:
            notes.append(f"缺少对账单：{run.missing_statements}（这些日期的平台流水未参与核对）")
        if unchecked:
            notes.append(f"{len(unchecked)}笔订单的医院状态未能核对（医院接口不可用或超出单次核对上限）")
        if not covered:
            notes.append("所选范围内没有可核对的对账单")
        run.note = "；".join(notes)
        run.save()
        audit_record(
            action="对账完成",
            obj=run,
            after={"结果": run.get_result_display(), "差异数": run.discrepancy_count, "一致笔数": run.matched_count},
            user=run.started_by,
            actor="" if run.started_by else "对账任务",
        )


def _lock_days(days: Sequence[dt.date]) -> None:
    """Serialise runs over the same days (two re-runs at once would both delete, then both insert)."""
    if connection.vendor != "postgresql":
        return  # SQLite serialises writers already
    with connection.cursor() as cursor:
        for day in sorted(days):  # always in the same order: no deadlock between overlapping ranges
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7_2_5, day.toordinal()])


def _discrepancy(run: ReconciliationRun, f: Finding) -> Discrepancy:
    return Discrepancy(
        run=run,
        day=f.day,
        type=f.type,
        entry_kind=f.entry_kind,
        pay_channel=f.pay_channel,
        hospital_id=f.hospital_id,
        order_id=f.order_id,
        batch=f.batch,
        pay_trade_no=f.pay_trade_no[:100],
        ledger_amount=f.ledger_amount,
        statement_amount=f.statement_amount,
        difference=f.difference,
        hospital_status=f.hospital_status,
        detail=f.detail[:500],
    )


# -- resolution ------------------------------------------------------------------------------------


def discrepancy_resolve(*, discrepancy: Discrepancy, status: str, reason: str, user) -> Discrepancy:
    """Close an open discrepancy as explained (说明: not an error) or corrected (已更正), with why."""
    if status not in (Discrepancy.Status.EXPLAINED, Discrepancy.Status.CORRECTED):
        raise DomainError("处理结果应为“已说明”或“已更正”")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("请填写处理意见（原因）")
    with transaction.atomic():
        current = Discrepancy.objects.select_for_update().get(pk=discrepancy.pk)
        if current.status != Discrepancy.Status.OPEN:
            raise Conflict(f"差异已处理（{current.get_status_display()}），不能重复处理")
        before = snapshot(current)
        current.status = status
        current.resolution = reason[:500]
        current.resolved_by = user if getattr(user, "is_authenticated", False) else None
        current.resolved_at = timezone.now()
        current.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        audit_record(
            action="差异" + current.get_status_display(),
            obj=current,
            before=before,
            after=snapshot(current),
            user=user,
            reason=reason,
        )
    return current


def discrepancies_resolve(*, discrepancies: Iterable[Discrepancy], status: str, reason: str, user) -> tuple[int, int]:
    """`discrepancy_resolve` for each; returns (resolved, already resolved)."""
    done = skipped = 0
    for discrepancy in discrepancies:
        try:
            discrepancy_resolve(discrepancy=discrepancy, status=status, reason=reason, user=user)
            done += 1
        except Conflict:
            skipped += 1
    return done, skipped


# -- ReconciliationInfo ------------------------------------------------------------------------------


def reconciliation_info(
    *, hospital: Hospital, batches: Sequence[str] | None, date_from: dt.date | None, date_to: dt.date | None
) -> list[dict]:
    """ReconciliationInfo (2.5) for `hospital`: one record per Batch, from its ledger, figures as
    decimals with two places, Total = PayAmount − RefundAmount."""
    batches = [b.strip() for b in (batches or []) if b.strip()]
    if not batches:
        if date_from is None or date_to is None:
            raise DomainError("OrderInfo 应填写Batch（交易流水号），或同时填写StartDate和EndDate")
        limit = _setting("RECONCILIATION_INFO_MAX_DAYS", 31)
        if (date_to - date_from).days + 1 > limit:
            raise DomainError(f"OrderInfo StartDate至EndDate不能超过{limit}天")
    max_records = _setting("RECONCILIATION_INFO_MAX_RECORDS", 20_000)
    rows = selectors.info_records(hospital=hospital, batches=batches or None, date_from=date_from, date_to=date_to)
    records = []
    for row in rows[: max_records + 1]:
        if len(records) == max_records:
            raise DomainError(f"查询结果超过{max_records}条，请缩小日期范围或按交易流水号查询")
        paid, refunded = selectors._money(row["paid"]), selectors._money(row["refunded"])
        records.append(
            {
                "Batch": row["batch"],
                "PayTradeNo": row["trade_no"] or "",
                "Type": row["type"],
                "HosOrgName": hospital.name,
                "AddTime": timezone.localtime(row["paid_at"] or row["first_at"]).replace(tzinfo=None, microsecond=0),
                "PatientName": row["patient"] or "",
                "PayAmount": paid,
                "RefundAmount": refunded,
                "Total": paid - refunded,
            }
        )
    return records
