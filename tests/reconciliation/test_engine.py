"""The matching engine on plain rows: one pass over two sorted streams, a finding per difference."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from reconciliation.engine import Entry, OutOfOrder, Tally, Trade, match, trades
from reconciliation.models import Discrepancy

T = Discrepancy.Type
DAY = dt.date(2026, 11, 25)


def e(batch: str, kind: str = "payment", amount: str = "12.50", channel: str = "wepay", trade_no: str = "", **kw):
    return Entry(channel, batch, kind, Decimal(amount), DAY, trade_no or f"42{batch}", **kw)


def run(ledger: list[Entry], statement: list[Entry]) -> tuple[list, Tally]:
    tally = Tally()
    found = list(match(trades(ledger), trades(statement), tally))
    return found, tally


class MatchTests:
    def test_identical_sides_match_every_trade_and_count_both_totals(self):
        rows = [e("A"), e("B", amount="30.00"), e("B", "refund", "30.00"), e("C", amount="0.01")]
        found, tally = run(rows, rows)
        assert found == []
        assert tally.matched_count == 3 and tally.trades == 3
        assert (tally.ledger_payment_count, tally.ledger_payment_total) == (3, Decimal("42.51"))
        assert (tally.statement_refund_count, tally.statement_refund_total) == (1, Decimal("30.00"))

    def test_each_one_sided_difference_is_its_own_type(self):
        ledger = [e("A"), e("B"), e("C"), e("C", "refund"), e("E")]
        statement = [e("B"), e("C"), e("D"), e("E"), e("E", "refund")]
        found, tally = run(ledger, statement)
        assert {(f.batch, f.type) for f in found} == {
            ("A", T.PLATFORM_ONLY),
            ("C", T.REFUND_PLATFORM_ONLY),
            ("D", T.CHANNEL_ONLY),
            ("E", T.REFUND_CHANNEL_ONLY),
        }
        assert tally.matched_count == 1  # B
        a = next(f for f in found if f.batch == "A")
        assert a.ledger_amount == Decimal("12.50") and a.statement_amount is None and a.difference == Decimal("12.50")
        d = next(f for f in found if f.batch == "D")
        assert d.difference == Decimal("-12.50") and d.entry_kind == "payment"
        assert next(f for f in found if f.batch == "E").entry_kind == "refund"

    def test_amounts_that_differ_are_a_mismatch_with_both_amounts(self):
        found, _ = run(
            [e("A"), e("B"), e("B", "refund", "5.00")], [e("A", amount="13.50"), e("B"), e("B", "refund", "6.00")]
        )
        assert [(f.batch, f.type, f.ledger_amount, f.statement_amount) for f in found] == [
            ("A", T.AMOUNT_MISMATCH, Decimal("12.50"), Decimal("13.50")),
            ("B", T.REFUND_AMOUNT_MISMATCH, Decimal("5.00"), Decimal("6.00")),
        ]

    def test_partial_refunds_compare_as_sums(self):
        ledger = [e("A", amount="50.00"), e("A", "refund", "20.00"), e("A", "refund", "10.00")]
        statement = [e("A", amount="50.00"), e("A", "refund", "30.00")]
        found, tally = run(ledger, statement)
        assert found == [] and tally.matched_count == 1

    def test_a_duplicate_charge_says_how_many_on_each_side(self):
        found, _ = run([e("A")], [e("A"), e("A")])
        assert found[0].type == T.AMOUNT_MISMATCH and found[0].detail == "平台1笔支付，对账单2笔"

    def test_a_different_channel_trade_number_is_reported(self):
        found, _ = run([e("A", trade_no="4201")], [e("A", trade_no="4202")])
        assert found[0].type == T.TRADE_NO_MISMATCH and "4201" in found[0].detail

    def test_channels_are_matched_separately(self):
        found, _ = run([e("A", channel="alipay"), e("A", channel="wepay")], [e("A", channel="wepay")])
        assert [(f.pay_channel, f.type) for f in found] == [("alipay", T.PLATFORM_ONLY)]

    def test_a_stream_out_of_order_stops_the_match(self):
        with pytest.raises(OutOfOrder):
            list(match(iter([Trade("wepay", "B"), Trade("wepay", "A")]), iter([]), Tally()))

    def test_it_holds_one_trade_per_side_at_a_time(self):
        def endless(prefix: str, n: int):
            for i in range(n):
                yield Trade("wepay", f"{prefix}{i:08d}", 1, Decimal("1.00"), pay_day=DAY)

        tally = Tally()
        found = match(endless("A", 200_000), endless("A", 200_000), tally)
        assert next(found, None) is None and tally.matched_count == 200_000
