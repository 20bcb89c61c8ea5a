"""The hospital's view of disputed orders (GetOrderDetailInfo), asked outside any transaction."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from decimal import Decimal

from django.conf import settings

from booking.hospital import ask
from booking.models import LedgerEntry, Order
from reconciliation import selectors
from reconciliation.engine import Finding
from reconciliation.models import Discrepancy, ReconciliationRun
from regional.messages.codes import WorkFlowStatus

logger = logging.getLogger("reconciliation")

T = Discrepancy.Type
Run = ReconciliationRun


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


PAID_STATES = (WorkFlowStatus.PAID, WorkFlowStatus.VISITED, WorkFlowStatus.NO_SHOW)


def hospitals_check(run: ReconciliationRun, findings: list[Finding], covered) -> tuple[int, set[str], list[Finding]]:
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
    if status == WorkFlowStatus.CANCELLED and net > 0:
        found.append(
            replace(base, type=T.HOSPITAL_CANCELLED_PAID, detail=f"医院显示已退号，仍收款{net}元未退", **amounts)
        )
    elif status == WorkFlowStatus.BOOKED and net > 0:
        found.append(
            replace(base, type=T.HOSPITAL_UNPAID, detail=f"已收款{net}元，医院显示已预约（未支付）", **amounts)
        )
    elif status in PAID_STATES and net <= 0 and facts["refunds"]:
        found.append(
            replace(
                base,
                type=T.HOSPITAL_ACTIVE_REFUNDED,
                detail=f"款项已全额退回，医院显示{WorkFlowStatus(status).label}",
                **amounts,
            )
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
