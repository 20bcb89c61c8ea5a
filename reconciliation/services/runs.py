"""Three-way reconciliation runs: queue, execute, match ledger and bill per channel and day, store the findings."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from reconciliation import engine, selectors
from reconciliation.engine import Finding, Tally
from reconciliation.models import Discrepancy, EntryKind, ReconciliationRun, Statement, StatementSource
from reconciliation.services.hospital_check import hospitals_check
from reconciliation.services.statements import statement_fetch, statement_lines_attribute
from regional.audit import audit_record, snapshot
from regional.errors import DomainError
from regional.messages.codes import PayChannel
from regional.models import Hospital

logger = logging.getLogger("reconciliation")

T = Discrepancy.Type
Run = ReconciliationRun


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def _check_range(date_from: dt.date, date_to: dt.date) -> None:
    if date_to < date_from:
        raise DomainError("结束日期不能早于开始日期")
    limit = _setting("RECONCILIATION_MAX_DAYS", 31)
    if (date_to - date_from).days + 1 > limit:
        raise DomainError(f"一次对账最多{limit}天，请缩小日期范围")
    if date_to >= timezone.localdate():
        raise DomainError("只能对已结束的日期对账（对账单次日生成）")


def _run_create(
    *,
    date_from: dt.date,
    date_to: dt.date,
    hospital: Hospital | None,
    pay_channel: str,
    hospital_check: str,
    user,
    trigger: str,
) -> ReconciliationRun:
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
    return run


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
    with transaction.atomic():
        run = _run_create(
            date_from=date_from,
            date_to=date_to,
            hospital=hospital,
            pay_channel=pay_channel,
            hospital_check=hospital_check,
            user=user,
            trigger=trigger,
        )
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
    run = _run_create(
        date_from=date_from,
        date_to=date_to,
        hospital=hospital,
        pay_channel=pay_channel,
        hospital_check=hospital_check,
        user=user,
        trigger=trigger,
    )
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
            _progress(run, phase="正在从渠道获取缺少的对账单")
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
            phase="已停止（未保存任何差异）",
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


def _progress(run: ReconciliationRun, **fields) -> None:
    """Record how far the run is. The run executes outside a transaction (only `_store` opens one),
    so each update commits at once and the run's page, which refreshes itself, reads it."""
    Run.objects.filter(pk=run.pk).update(**fields)


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
    statement_lines_attribute(statement_ids=list(billed.values()))
    limit = _setting("RECONCILIATION_MAX_DISCREPANCIES", 50_000)
    tally, findings, covered, missing = Tally(), [], [], []
    total, done = len(channels) * len(days), 0
    _progress(run, phase="正在核对平台流水与渠道对账单", checks_total=total, checks_done=0, rows_read=0)
    for channel in channels:
        for day in days:
            if done:
                _progress(run, checks_done=done, rows_read=_rows(tally))
            done += 1
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
                        f"差异超过{limit}笔，已停止：请检查{PayChannel(channel).provider}{day:%Y-%m-%d}的对账单是否选错日期或来源"
                    )
    _progress(run, checks_done=done, rows_read=_rows(tally), phase="正在识别跨日入账")
    findings = _cross_day(findings)
    _progress(run, phase=f"正在向医院核对订单状态（{len(findings)}条待定差异）")
    checked, unchecked, findings = hospitals_check(run, findings, covered)
    _progress(run, phase="正在保存对账结果")
    _store(run, tally, findings, covered, missing, checked, unchecked)


def _rows(tally: Tally) -> int:
    """Trades read so far on both sides (the ledger's and the bills')."""
    return (
        tally.ledger_payment_count
        + tally.ledger_refund_count
        + tally.statement_payment_count
        + tally.statement_refund_count
    )


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
        run.missing_statements = "、".join(f"{PayChannel(c).provider}{d:%Y-%m-%d}" for c, d in missing)
        run.status, run.finished_at = Run.Status.DONE, timezone.now()
        run.phase, run.rows_read = "已完成", _rows(tally)
        channels = 1 if run.pay_channel else len(PayChannel.values)
        run.checks_total = run.checks_done = len(_days(run.date_from, run.date_to)) * channels
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
