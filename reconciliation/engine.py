"""The matching engine: the platform's ledger against a payment channel's bill, trade by trade.

Both sides arrive as streams of `Trade`s — one per (pay channel, Batch), its payments and refunds
summed — sorted by that key, and are merged like a sort-merge join: one pass, constant memory,
whatever the number of trades. The database produces the streams already grouped and sorted
(`reconciliation.selectors`); `trades()` builds them from plain rows for tests and the sandbox.

A Batch is the platform's trade number: the merchant order number (商户订单号) the channel
reports back. Refunds carry their order's Batch, so a partial refund and several refunds of one
order compare as sums.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from reconciliation.models import Discrepancy, EntryKind

ZERO = Decimal("0.00")
T = Discrepancy.Type


@dataclass(slots=True)
class Trade:
    """One trade as one side saw it within the range reconciled."""

    pay_channel: str
    batch: str
    pay_count: int = 0
    pay_amount: Decimal = ZERO
    refund_count: int = 0
    refund_amount: Decimal = ZERO
    pay_trade_no: str = ""
    hospital_id: int | None = None
    order_id: int | None = None
    pay_day: dt.date | None = None
    refund_day: dt.date | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.pay_channel, self.batch)

    @property
    def net(self) -> Decimal:
        return self.pay_amount - self.refund_amount


@dataclass(frozen=True, slots=True)
class Entry:
    """One payment or refund, from either side, before grouping."""

    pay_channel: str
    batch: str
    kind: str
    amount: Decimal
    day: dt.date
    pay_trade_no: str = ""
    hospital_id: int | None = None
    order_id: int | None = None


def trades(entries: Iterable[Entry]) -> Iterator[Trade]:
    """Group entries sorted by (pay_channel, batch) into trades."""
    current: Trade | None = None
    for entry in entries:
        if current is None or (entry.pay_channel, entry.batch) != current.key:
            if current is not None:
                yield current
            current = Trade(entry.pay_channel, entry.batch)
        if entry.kind == EntryKind.PAYMENT:
            current.pay_count += 1
            current.pay_amount += entry.amount
            current.pay_day = min(current.pay_day or entry.day, entry.day)
        else:
            current.refund_count += 1
            current.refund_amount += entry.amount
            current.refund_day = min(current.refund_day or entry.day, entry.day)
        current.pay_trade_no = current.pay_trade_no or entry.pay_trade_no
        current.hospital_id = current.hospital_id or entry.hospital_id
        current.order_id = current.order_id or entry.order_id
    if current is not None:
        yield current


@dataclass(frozen=True, slots=True)
class Finding:
    """A difference for one trade, before it is stored as a Discrepancy."""

    type: str
    pay_channel: str
    batch: str
    day: dt.date
    entry_kind: str = EntryKind.PAYMENT
    ledger_amount: Decimal | None = None
    statement_amount: Decimal | None = None
    pay_trade_no: str = ""
    hospital_id: int | None = None
    order_id: int | None = None
    hospital_status: str = ""
    detail: str = ""

    @property
    def difference(self) -> Decimal:
        return (self.ledger_amount or ZERO) - (self.statement_amount or ZERO)

    @property
    def key(self) -> tuple:
        return (self.day, self.pay_channel, self.batch, self.type)


@dataclass
class Tally:
    """Counts and totals on each side, accumulated while matching."""

    ledger_payment_count: int = 0
    ledger_payment_total: Decimal = ZERO
    ledger_refund_count: int = 0
    ledger_refund_total: Decimal = ZERO
    statement_payment_count: int = 0
    statement_payment_total: Decimal = ZERO
    statement_refund_count: int = 0
    statement_refund_total: Decimal = ZERO
    matched_count: int = 0
    trades: int = 0
    _seen: dict = field(default_factory=dict, repr=False)

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            if not name.startswith("_"):
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def count(self, ledger: Trade | None, statement: Trade | None) -> None:
        self.trades += 1
        if ledger is not None:
            self.ledger_payment_count += ledger.pay_count
            self.ledger_payment_total += ledger.pay_amount
            self.ledger_refund_count += ledger.refund_count
            self.ledger_refund_total += ledger.refund_amount
        if statement is not None:
            self.statement_payment_count += statement.pay_count
            self.statement_payment_total += statement.pay_amount
            self.statement_refund_count += statement.refund_count
            self.statement_refund_total += statement.refund_amount


class OutOfOrder(ValueError):
    """A side's stream was not sorted by (pay_channel, batch): matching would be wrong."""


def _sorted(stream: Iterable[Trade], side: str) -> Iterator[Trade]:
    previous: tuple[str, str] | None = None
    for trade in stream:
        if previous is not None and trade.key <= previous:
            raise OutOfOrder(f"{side}: {trade.key} after {previous}")
        previous = trade.key
        yield trade


def match(ledger: Iterable[Trade], statement: Iterable[Trade], tally: Tally) -> Iterator[Finding]:
    """Merge the two sorted streams; yield a Finding per difference, count everything in `tally`."""
    left, right = _sorted(ledger, "ledger"), _sorted(statement, "statement")
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            pair, a = (a, None), next(left, None)
        elif a is None or b.key < a.key:
            pair, b = (None, b), next(right, None)
        else:
            pair, a, b = (a, b), next(left, None), next(right, None)
        tally.count(*pair)
        findings = compare(*pair)
        if findings:
            yield from findings
        else:
            tally.matched_count += 1


def compare(ledger: Trade | None, statement: Trade | None) -> list[Finding]:
    """The differences of one trade between the ledger and the bill (both within the range)."""
    both = ledger or statement
    assert both is not None
    empty = Trade(both.pay_channel, both.batch)
    lg, st = ledger or empty, statement or empty
    common = {
        "pay_channel": both.pay_channel,
        "batch": both.batch,
        "pay_trade_no": lg.pay_trade_no or st.pay_trade_no,
        "hospital_id": lg.hospital_id or st.hospital_id,
        "order_id": lg.order_id,
    }
    found: list[Finding] = []
    pay_day = lg.pay_day or st.pay_day
    if lg.pay_count and not st.pay_count:
        found.append(Finding(T.PLATFORM_ONLY, day=pay_day, ledger_amount=lg.pay_amount, **common))
    elif st.pay_count and not lg.pay_count:
        found.append(Finding(T.CHANNEL_ONLY, day=pay_day, statement_amount=st.pay_amount, **common))
    elif lg.pay_count and lg.pay_amount != st.pay_amount:
        detail = _counts(lg.pay_count, st.pay_count, "支付")
        found.append(
            Finding(
                T.AMOUNT_MISMATCH,
                day=pay_day,
                ledger_amount=lg.pay_amount,
                statement_amount=st.pay_amount,
                detail=detail,
                **common,
            )
        )
    elif lg.pay_count and lg.pay_trade_no and st.pay_trade_no and lg.pay_trade_no != st.pay_trade_no:
        found.append(
            Finding(
                T.TRADE_NO_MISMATCH,
                day=pay_day,
                ledger_amount=lg.pay_amount,
                statement_amount=st.pay_amount,
                detail=f"平台记录的渠道交易号为{lg.pay_trade_no}，对账单为{st.pay_trade_no}",
                **common,
            )
        )
    refund_day = lg.refund_day or st.refund_day
    refund = {**common, "entry_kind": EntryKind.REFUND, "day": refund_day}
    if lg.refund_count and not st.refund_count:
        found.append(Finding(T.REFUND_PLATFORM_ONLY, ledger_amount=lg.refund_amount, **refund))
    elif st.refund_count and not lg.refund_count:
        found.append(Finding(T.REFUND_CHANNEL_ONLY, statement_amount=st.refund_amount, **refund))
    elif lg.refund_count and lg.refund_amount != st.refund_amount:
        found.append(
            Finding(
                T.REFUND_AMOUNT_MISMATCH,
                ledger_amount=lg.refund_amount,
                statement_amount=st.refund_amount,
                detail=_counts(lg.refund_count, st.refund_count, "退款"),
                **refund,
            )
        )
    return found


def _counts(ledger: int, statement: int, what: str) -> str:
    return "" if ledger == statement else f"平台{ledger}笔{what}，对账单{statement}笔"
