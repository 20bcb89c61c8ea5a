"""Center-side handler of 2.5 财务对账 (ReconciliationInfo): message fields → service → response fields."""

from __future__ import annotations

from reconciliation import services
from regional.inbound import register
from regional.messages.catalog import RECONCILIATION_INFO
from regional.models import Hospital


@register(RECONCILIATION_INFO)
def reconciliation_info(*, hospital: Hospital, data: dict) -> dict:
    query = data["OrderInfo"]
    records = services.reconciliation_info(
        hospital=hospital,
        batches=(query.get("Batch") or "").replace("，", ",").split(","),
        date_from=query.get("StartDate"),
        date_to=query.get("EndDate"),
    )
    return {"List": records}
