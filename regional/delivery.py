"""The one delivery engine: rows written in a transaction and sent after the commit, at least once.

Every message the platform owes someone — a notice to a hospital (booking's outbox), a text to a
patient, a referral reminder — is a row of a model built on `DeliveryRow`, written in the
transaction of the change it reports. A `Courier` (one small class per kind of row) says only how
to send one row; the engine does the rest, the same way for every kind:

- **claim**: a conditional UPDATE takes a lease (`claimed_until`) on a pending row, so two workers
  holding the same id (the task after commit and the sweep) never send it twice at once; a worker
  that crashes mid-send loses its lease and the row is picked up again;
- **send** outside any transaction (a courier may call out over the network);
- **backoff**: a temporary failure is retried after DELIVERY_BACKOFF_SECONDS · 2^(attempts-1),
  capped at DELIVERY_BACKOFF_MAX_SECONDS; after DELIVERY_MAX_ATTEMPTS the row fails;
- **sweep**: the periodic sweep queues again what a lost task or a failed attempt left behind;
- **retry**: staff send failed (or waiting) rows again, with a fresh budget, audited.

A courier's `send()` raises `TryLater` (temporary: backoff), `Refused` (permanent: the row fails
and staff look at it) or `Superseded` (no longer needed); returning means delivered.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from regional.audit import audit_record
from regional.pii import mask_text

logger = logging.getLogger("regional.delivery")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "待发送"
    SENT = "sent", "已送达"
    FAILED = "failed", "发送失败"
    SUPERSEDED = "superseded", "无需发送"


class DeliveryRow(models.Model):
    """The delivery columns every owed message carries: its state, the attempts made, when to try
    next, the lease of the worker sending it, the last error and when it was delivered."""

    PENDING, SENT, FAILED, SUPERSEDED = (
        DeliveryStatus.PENDING,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SUPERSEDED,
    )
    STATUSES = DeliveryStatus.choices

    status = models.CharField("状态", max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField("尝试次数", default=0)
    last_error = models.CharField("最近错误", max_length=1000, blank=True)
    next_attempt_at = models.DateTimeField("下次尝试时间", default=timezone.now)
    claimed_until = models.DateTimeField("发送租约到期", null=True, blank=True)
    sent_at = models.DateTimeField("送达时间", null=True, blank=True)

    class Meta:
        abstract = True


Row = TypeVar("Row", bound=DeliveryRow)


class NotDelivered(Exception):
    """A row was not delivered; `note` says why (for staff; masked before it is stored)."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class TryLater(NotDelivered):
    """Not delivered this time (no answer, a gateway down): try again after the backoff."""


class Refused(NotDelivered):
    """The recipient answered no: the row fails and staff look at it (retrying would change nothing)."""


class Superseded(NotDelivered):
    """The message is no longer owed (the order it reports on changed meanwhile)."""


@dataclass(frozen=True)
class Sent:
    """What a courier reports about a delivered row: a note for staff, extra columns to record."""

    note: str = ""
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery attempt: sent, failed (staff must look), superseded, skipped
    (another worker holds it, or it is no longer pending) or retry (after `retry_in` seconds)."""

    outcome: str
    retry_in: float = 0.0

    SENT, FAILED, SUPERSEDED, SKIPPED, RETRY = "sent", "failed", "superseded", "skipped", "retry"


def backoff(attempts: int) -> float:
    """Seconds to wait after the attempts made so far: exponential, capped."""
    base = float(settings.DELIVERY_BACKOFF_SECONDS)
    cap = float(settings.DELIVERY_BACKOFF_MAX_SECONDS)
    return min(base * 2 ** max(attempts - 1, 0), cap)


class Courier(Generic[Row]):
    """How to deliver one kind of row. A subclass names its `model`, `enqueue()`s its Celery task
    and implements `send()`; it may narrow `queryset()`, set `sweep_order` or a longer `lease()`,
    and make a row wait for an earlier one (`wait_for_earlier()`)."""

    model: ClassVar[type[DeliveryRow]]
    retry_action: ClassVar[str] = "重新发送"
    # The order the sweep queues rows in (the outbox: by id, so an order's messages keep their order).
    sweep_order: ClassVar[tuple[str, ...]] = ("next_attempt_at", "pk")
    sweep_limit: ClassVar[int] = 500

    # -- what a kind says ---------------------------------------------------------------------

    def enqueue(self, pk: int) -> None:
        """Hand one row's id to the kind's Celery task."""
        raise NotImplementedError

    def send(self, row: Row) -> Sent | None:
        """Send one claimed row; raise TryLater, Refused or Superseded when it was not delivered."""
        raise NotImplementedError

    def queryset(self) -> QuerySet:
        """The query a claimed row is loaded with (select_related what send() reads)."""
        return self.model.objects.all()

    def lease(self) -> dt.timedelta:
        """How long a claim holds: longer than the slowest send, so no second worker starts one."""
        return dt.timedelta(seconds=float(settings.DELIVERY_LEASE_SECONDS))

    def wait_for_earlier(self, row: Row) -> float | None:
        """Seconds this row must wait for an earlier one that goes first; None to send it now."""
        return None

    # -- the loop -----------------------------------------------------------------------------

    def queue(self, row: Row) -> None:
        """Ask for delivery once the caller's transaction commits (a failed publish is left to the sweep)."""
        pk = row.pk
        transaction.on_commit(lambda: self.enqueue(pk), robust=True)

    def deliver(self, pk: int) -> Delivery:
        """Claim, send and record one row (at least once: the recipient may see a repeat)."""
        model = self.model
        row = model.objects.filter(pk=pk).first()
        if row is None or row.status != DeliveryStatus.PENDING:
            return Delivery(Delivery.SKIPPED)
        wait = self.wait_for_earlier(row)
        if wait is not None:
            model.objects.filter(pk=pk, status=DeliveryStatus.PENDING).update(
                next_attempt_at=timezone.now() + dt.timedelta(seconds=wait)
            )
            return Delivery(Delivery.RETRY, wait)
        now = timezone.now()
        # The lease: of the workers holding this id (the task, the sweep, a staff retry) one sends.
        claimed = (
            model.objects.filter(pk=pk, status=DeliveryStatus.PENDING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .update(claimed_until=now + self.lease())
        )
        if not claimed:
            return Delivery(Delivery.SKIPPED)
        row = self.queryset().get(pk=pk)
        try:
            sent = self.send(row) or Sent()
        except Superseded as exc:
            self._finish(row, DeliveryStatus.SUPERSEDED, exc.note)
            return Delivery(Delivery.SUPERSEDED)
        except Refused as exc:
            self._finish(row, DeliveryStatus.FAILED, exc.note)
            return Delivery(Delivery.FAILED)
        except TryLater as exc:
            attempts = row.attempts + 1
            logger.warning("%s %s 发送失败（第%s次）", model._meta.verbose_name, pk, attempts)
            if attempts >= int(settings.DELIVERY_MAX_ATTEMPTS):
                self._finish(row, DeliveryStatus.FAILED, f"重试{attempts}次仍未送达：{exc.note}")
                return Delivery(Delivery.FAILED)
            wait = backoff(attempts)
            model.objects.filter(pk=pk).update(
                attempts=attempts,
                last_error=mask_text(exc.note)[:1000],
                next_attempt_at=timezone.now() + dt.timedelta(seconds=wait),
                claimed_until=None,
            )
            return Delivery(Delivery.RETRY, wait)
        self._finish(row, DeliveryStatus.SENT, sent.note, **sent.columns)
        return Delivery(Delivery.SENT)

    def _finish(self, row: Row, status: str, note: str, **columns: Any) -> None:
        self.model.objects.filter(pk=row.pk).update(
            status=status,
            attempts=row.attempts + 1,
            last_error=mask_text(note)[:1000],
            sent_at=timezone.now() if status == DeliveryStatus.SENT else None,
            claimed_until=None,
            **columns,
        )

    def sweep(self, *, now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(seconds=60)) -> int:
        """Queue again the pending rows whose delivery is overdue (a lost task, a crashed worker, a
        failed attempt whose backoff has passed). `grace` leaves fresh rows to their own task."""
        now = now or timezone.now()
        due = list(
            self.model.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now - grace)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by(*self.sweep_order)
            .values_list("pk", flat=True)[: self.sweep_limit]
        )
        for pk in due:
            self.enqueue(pk)
        return len(due)

    @transaction.atomic
    def retry(self, pks: Sequence[int], *, user=None) -> int:
        """Staff: send failed (or waiting) rows again now, with a fresh retry budget."""
        rows = list(
            self.model.objects.select_for_update()
            .filter(pk__in=list(pks), status__in=[DeliveryStatus.FAILED, DeliveryStatus.PENDING])
            .order_by("pk")
        )
        for row in rows:
            before = {"status": row.status, "attempts": row.attempts}
            self.model.objects.filter(pk=row.pk).update(
                status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_until=None
            )
            audit_record(
                action=self.retry_action,
                obj=row,
                before=before,
                after={"status": DeliveryStatus.PENDING, "attempts": 0},
                user=user,
                reason=row.last_error,
            )
            self.queue(row)
        return len(rows)


# Within Redis' visibility timeout (STACK-NOTES: a longer countdown would run twice).
MAX_COUNTDOWN = 600


def task_outcome(task, result: Delivery) -> str:
    """The end of every delivery task: a row to retry is retried by Celery after its backoff; in
    process (no broker) and after the task's max_retries the sweep takes over (the row stays
    pending with its next attempt time)."""
    if result.outcome == Delivery.RETRY and not task.request.is_eager and task.request.retries < task.max_retries:
        raise task.retry(countdown=min(result.retry_in, MAX_COUNTDOWN))
    return result.outcome
