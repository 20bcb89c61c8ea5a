"""ReconciliationInfo (2.5): the calling hospital's records from its ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.utils import timezone

from reconciliation import selectors
from regional.errors import DomainError
from regional.models import Hospital


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


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
