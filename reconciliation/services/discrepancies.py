"""Resolving discrepancies: open → explained / corrected, with who and why."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from reconciliation.models import Discrepancy
from regional.audit import audit_record, snapshot
from regional.errors import Conflict, DomainError


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
