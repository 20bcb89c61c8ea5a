"""Reads for reconciliation: the two sides of a day as sorted trade streams, the ledger as the
sandbox channel bills it, the hospital-check candidates, ReconciliationInfo's records and the
monthly summary.

The trade streams are grouped and sorted by the database (one GROUP BY per side) and read through
a server-side cursor, so matching a day of any size holds one chunk of each side at a time. They
are sorted on the binary value of Batch (`COLLATE "C"` on PostgreSQL; SQLite compares bytes by
default), which is the order Python compares strings in: the merge in `engine.match` relies on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, DecimalField, Exists, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Collate, TruncMonth
from django.utils import timezone

from booking.models import LedgerEntry, Order
from reconciliation.engine import Trade
from reconciliation.models import EntryKind, StatementLine, StatementSource
from regional.models import Hospital

CHUNK = 5000
ZERO = Decimal("0.00")
CENT = Decimal("0.01")
PAYMENT, REFUND = Q(kind=EntryKind.PAYMENT), Q(kind=EntryKind.REFUND)


def day_bounds(first: dt.date, last: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start of `first`, start of the day after `last`) in local time, as aware datetimes."""
    last = last or first
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min))
    return start, end


def _binary(field: str):
    return Collate(field, "C") if connection.vendor == "postgresql" else F(field)


def _money(value) -> Decimal:
    # None is no rows; SQLite's sums lose trailing zeros (12.5): two places, always.
    return ZERO if value is None else value.quantize(CENT)


# -- the two sides of a day -------------------------------------------------------------------------


def ledger_entries(*, pay_channel: str, day: dt.date, hospital: Hospital | None = None):
    start, end = day_bounds(day)
    entries = LedgerEntry.objects.filter(pay_channel=pay_channel, created_at__gte=start, created_at__lt=end)
    return entries.filter(hospital=hospital) if hospital is not None else entries


def _trades(rows: QuerySet, *, pay_channel: str, day: dt.date, orders: bool) -> Iterator[Trade]:
    """Per Batch of `rows` (ledger entries or bill lines), sorted by Batch: the payments' and refunds'
    counts and sums, the trade number, the hospital and (for the ledger) the order."""
    extra = {"order_ref": Min("order_id")} if orders else {}
    rows = (
        rows.values("batch")
        .annotate(
            pay_count=Count("id", filter=PAYMENT),
            pay_amount=Sum("amount", filter=PAYMENT),
            refund_count=Count("id", filter=REFUND),
            refund_amount=Sum("amount", filter=REFUND),
            trade_no=Max("pay_trade_no"),
            hospital_ref=Min("hospital_id"),
            **extra,
        )
        .order_by(_binary("batch"))
        .values_list(
            "batch", "pay_count", "pay_amount", "refund_count", "refund_amount", "trade_no", "hospital_ref", *extra
        )
    )
    for batch, pays, paid, refunds, refunded, trade_no, hospital_id, *order in rows.iterator(chunk_size=CHUNK):
        yield Trade(
            pay_channel, batch, pays, _money(paid), refunds, _money(refunded), trade_no or "", hospital_id,
            order[0] if order else None, day if pays else None, day if refunds else None,
        )  # fmt: skip


def ledger_trades(*, pay_channel: str, day: dt.date, hospital: Hospital | None = None) -> Iterator[Trade]:
    """The ledger's trades of one payment channel on one day, sorted by Batch."""
    entries = ledger_entries(pay_channel=pay_channel, day=day, hospital=hospital)
    return _trades(entries, pay_channel=pay_channel, day=day, orders=True)


def statement_trades(
    *, statement_id: int, pay_channel: str, day: dt.date, hospital: Hospital | None = None
) -> Iterator[Trade]:
    """The trades of one bill (one payment channel, one day), sorted by Batch."""
    lines = StatementLine.objects.filter(statement_id=statement_id)
    if hospital is not None:
        lines = lines.filter(hospital=hospital)
    return _trades(lines, pay_channel=pay_channel, day=day, orders=False)


def ledger_day_totals(*, pay_channel: str, day: dt.date, hospital: Hospital | None = None) -> dict:
    """Counts and totals of one channel-day of the ledger (for days without a bill)."""
    totals = ledger_entries(pay_channel=pay_channel, day=day, hospital=hospital).aggregate(
        pay_count=Count("id", filter=PAYMENT),
        pay_amount=Sum("amount", filter=PAYMENT),
        refund_count=Count("id", filter=REFUND),
        refund_amount=Sum("amount", filter=REFUND),
    )
    return {**totals, "pay_amount": _money(totals["pay_amount"]), "refund_amount": _money(totals["refund_amount"])}


def neighbour_days(
    *, pay_channel: str, batches: Sequence[str], kind: str, days: Sequence[dt.date], side: str
) -> dict[tuple[str, dt.date], Decimal]:
    """(batch, day) → amount of `kind` entries of `batches` on `days`, from the ledger or the bills."""
    found: dict[tuple[str, dt.date], Decimal] = {}
    if not batches or not days:
        return found
    if side == "statement":
        rows = (
            StatementLine.objects.filter(pay_channel=pay_channel, kind=kind, batch__in=batches, bill_date__in=days)
            .values("batch", "bill_date")
            .annotate(total=Sum("amount"))
        )
        return {(r["batch"], r["bill_date"]): _money(r["total"]) for r in rows}
    start, end = day_bounds(min(days), max(days))
    rows = LedgerEntry.objects.filter(
        pay_channel=pay_channel, kind=kind, batch__in=batches, created_at__gte=start, created_at__lt=end
    ).values_list("batch", "created_at", "amount")
    for batch, created_at, amount in rows:
        day = timezone.localdate(created_at)
        if day in days:
            found[(batch, day)] = found.get((batch, day), ZERO) + amount
    return found


# -- the hospital's view ------------------------------------------------------------------------------


def _net(entries) -> Subquery:
    return Subquery(
        entries.values("order")
        .annotate(net=Sum("amount", filter=PAYMENT, default=ZERO) - Sum("amount", filter=REFUND, default=ZERO))
        .values("net")[:1],
        output_field=DecimalField(max_digits=12, decimal_places=2),
    )


def disputed_orders(
    *, date_from: dt.date, date_to: dt.date, hospital: Hospital | None, pay_channels: Sequence[str], limit: int
) -> list[int]:
    """Ids of orders touched in the range whose platform status disagrees with their money:
    cancelled but still paid, paid/visited but refunded, or never marked paid but paid."""
    start, end = day_bounds(date_from, date_to)
    ledger = LedgerEntry.objects.filter(order=OuterRef("pk"), created_at__lt=end)
    orders = Order.objects.filter(pay_channel__in=pay_channels).filter(
        Q(paid_at__gte=start, paid_at__lt=end)
        | Q(cancelled_at__gte=start, cancelled_at__lt=end)
        | Q(Exists(LedgerEntry.objects.filter(order=OuterRef("pk"), created_at__gte=start, created_at__lt=end)))
    )
    if hospital is not None:
        orders = orders.filter(hospital=hospital)
    orders = orders.annotate(net=Coalesce(_net(ledger), Value(ZERO)), refunded=Exists(ledger.filter(REFUND)))
    disputed = (
        Q(status=Order.CANCELLED, net__gt=0)
        | Q(status__in=(Order.PAID, Order.VISITED, Order.NO_SHOW), net__lte=0, refunded=True)
        | Q(status__in=(Order.LOCKING, Order.BOOKED, Order.EXPIRED, Order.FAILED), net__gt=0)
    )
    return list(orders.filter(disputed).order_by("pk").values_list("pk", flat=True)[:limit])


def paid_orders(*, date_from: dt.date, date_to: dt.date, hospital: Hospital | None, pay_channels, limit: int):
    """Ids of orders paid in the range (for a run that checks every paid order at its hospital)."""
    start, end = day_bounds(date_from, date_to)
    orders = Order.objects.filter(pay_channel__in=pay_channels, paid_at__gte=start, paid_at__lt=end)
    if hospital is not None:
        orders = orders.filter(hospital=hospital)
    return list(orders.order_by("pk").values_list("pk", flat=True)[:limit])


def orders_by_batch(batches: Sequence[str]) -> dict[str, int]:
    """Order ids of type-1 trades known by their order number but absent from the ledger."""
    return dict(Order.objects.filter(order_no__in=batches).values_list("order_no", "pk"))


def order_money(order_ids: Sequence[int], *, until: dt.datetime) -> dict[int, dict]:
    """Per order, up to `until`: its Batch, type, ledger payments/refunds, and the bills' ones."""
    money: dict[int, dict] = {}
    ledger = (
        LedgerEntry.objects.filter(order_id__in=order_ids, created_at__lt=until)
        .values("order_id", "batch", "pay_channel")
        .annotate(
            paid=Sum("amount", filter=PAYMENT),
            refunded=Sum("amount", filter=REFUND),
            refunds=Count("id", filter=REFUND),
            type=Max("type"),
        )
    )
    for row in ledger:
        money[row["order_id"]] = {
            "batch": row["batch"],
            "pay_channel": row["pay_channel"],
            "type": row["type"],
            "ledger_paid": _money(row["paid"]),
            "ledger_refunded": _money(row["refunded"]),
            "refunds": row["refunds"],
        }
    orders = Order.objects.filter(pk__in=order_ids).values_list("pk", "order_no", "pay_channel")
    for pk, order_no, pay_channel in orders:
        money.setdefault(
            pk,
            {"batch": order_no, "pay_channel": pay_channel, "type": LedgerEntry.TYPE_REGISTRATION,
             "ledger_paid": ZERO, "ledger_refunded": ZERO, "refunds": 0},
        )  # fmt: skip
    batches = {m["batch"] for m in money.values()}
    billed = (
        StatementLine.objects.filter(batch__in=batches, occurred_at__lt=until)
        .values("batch")
        .annotate(
            paid=Sum("amount", filter=PAYMENT),
            refunded=Sum("amount", filter=REFUND),
            refunds=Count("id", filter=REFUND),
        )
    )
    by_batch = {r["batch"]: r for r in billed}
    for m in money.values():
        row = by_batch.get(m["batch"])
        m["billed"] = row is not None
        m["statement_paid"] = _money(row["paid"]) if row else ZERO
        m["statement_refunded"] = _money(row["refunded"]) if row else ZERO
        m["refunds"] = max(m["refunds"], row["refunds"] if row else 0)
    return money


# -- the sandbox channel's view of the ledger ----------------------------------------------------------


class BillRow(NamedTuple):
    """One ledger payment or refund, as a payment provider bills it."""

    batch: str
    pay_trade_no: str
    kind: str
    amount: Decimal
    occurred_at: dt.datetime
    hospital_no: str = ""
    type: str = "1"
    refunded: bool = False  # for a payment: the platform has recorded a refund of it (any day)
    refund_no: str = ""


def ledger_bill_entries(*, pay_channel: str, day: dt.date) -> Iterator[BillRow]:
    """The ledger of one channel-day in time order, as the sandbox channel bills it."""
    refunded = LedgerEntry.objects.filter(batch=OuterRef("batch"), kind=EntryKind.REFUND)
    rows = (
        ledger_entries(pay_channel=pay_channel, day=day)
        .annotate(refunded=Exists(refunded))
        .order_by("created_at", "pk")
        .values_list(
            "batch",
            "pay_trade_no",
            "kind",
            "amount",
            "created_at",
            "hospital__hospital_no",
            "type",
            "refunded",
            "entry_key",
        )
    )
    for batch, trade_no, kind, amount, created_at, hospital_no, type_, was_refunded, key in rows.iterator(CHUNK):
        refund_no = "R" + hashlib.sha1(key.encode()).hexdigest()[:20] if kind == EntryKind.REFUND else ""
        yield BillRow(batch, trade_no, kind, amount, created_at, hospital_no, type_, was_refunded, refund_no)


def sandbox_account(pay_channel: str) -> dict | None:
    """The platform's settings of `pay_channel` at the sandbox channel (its user name, secret, bill
    layout, merchant and difference knobs), or None when there is no source for it."""
    source = StatementSource.objects.filter(pay_channel=pay_channel).first()
    if source is None:
        return None
    return {
        "username": source.username,
        "secret": source.secret() if source.secret_encrypted else "",
        "layout": source.layout,
        "merchant_id": source.merchant_id,
        "options": dict(source.sandbox_options or {}),
    }


# -- ReconciliationInfo and reports -----------------------------------------------------------------------


def info_records(
    *, hospital: Hospital, batches: Sequence[str] | None, date_from: dt.date | None, date_to: dt.date | None
):
    """Per Batch of `hospital`: payments, refunds, first payment time, trade number, type and patient.

    With dates: the Batches with any entry in the range, their figures as of the end of the range
    (a refund today of last week's payment shows both, AddTime last week). With Batches: those.
    """
    entries = LedgerEntry.objects.filter(hospital=hospital)
    if date_from is not None and date_to is not None:
        start, end = day_bounds(date_from, date_to)
        touched = entries.filter(created_at__gte=start, created_at__lt=end).values("batch")
        entries = entries.filter(batch__in=touched, created_at__lt=end)
    if batches:
        entries = entries.filter(batch__in=batches)
    return (
        entries.values("batch")
        .annotate(
            paid=Sum("amount", filter=PAYMENT),
            refunded=Sum("amount", filter=REFUND),
            paid_at=Min("created_at", filter=PAYMENT),
            first_at=Min("created_at"),
            trade_no=Max("pay_trade_no"),
            type=Max("type"),
            # Every entry of a Batch names the same patient: any one ciphertext decrypts to the name.
            patient=Max("patient_name"),
        )
        .order_by("first_at", "batch")
    )


def monthly_summary(*, year: int, hospital: Hospital | None = None) -> list[dict]:
    """Per month and hospital: registrations paid, payments, paid, refunded and net (Decimal)."""
    start, end = day_bounds(dt.date(year, 1, 1), dt.date(year, 12, 31))
    entries = LedgerEntry.objects.filter(created_at__gte=start, created_at__lt=end)
    if hospital is not None:
        entries = entries.filter(hospital=hospital)
    rows = (
        entries.annotate(month=TruncMonth("created_at"))
        .values("month", "hospital_id", "hospital__name", "hospital__hospital_no")
        .annotate(
            bookings=Count("id", filter=PAYMENT & Q(type=LedgerEntry.TYPE_REGISTRATION)),
            payments=Count("id", filter=PAYMENT),
            refunds=Count("id", filter=REFUND),
            paid=Sum("amount", filter=PAYMENT),
            refunded=Sum("amount", filter=REFUND),
        )
        .order_by("month", "hospital__hospital_no")
    )
    table = []
    for row in rows:
        paid, refunded = _money(row["paid"]), _money(row["refunded"])
        table.append({**row, "paid": paid, "refunded": refunded, "net": paid - refunded})
    return table
