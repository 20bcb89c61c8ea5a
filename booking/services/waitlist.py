"""The waitlist (候补, rule 5): joining a full schedule, leaving it, and offering freed numbers
to the first in line through the normal lock.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction

from booking import clock
from booking.errors import (
    DuplicateBooking,
    HospitalAnswerError,
    HospitalUnavailableForBooking,
    OrderStateConflict,
    ScheduleFull,
    WaitlistClosed,
    WaitlistEntryNotFound,
    WaitlistNotNeeded,
)
from booking.models import Channel, Order, PatientNotification, Schedule, WaitlistEntry
from booking.notify import notify_patient
from booking.rules import rules_for, waitlist_closes_at, when_text
from booking.selectors import schedule_get
from booking.services._common import _check_bookable, _session_text
from booking.services.orders import order_lock
from booking.services.patients import Patient, _check_not_banned, _patient_clean, refuse_naming_only_own
from regional.errors import DomainError, InvalidInput
from regional.pii import lookup_hash


def _waitlist_schedule(schedule_id: int, now: dt.datetime) -> tuple[Schedule, dt.datetime]:
    schedule = schedule_get(schedule_id=schedule_id)
    _check_bookable(schedule, now)
    closes = waitlist_closes_at(rules_for(schedule.hospital_id), schedule.work_date, schedule.start_time)
    if closes is None:
        # Say which rule opens it and where staff set it: a channel cannot tell otherwise.
        raise WaitlistClosed(
            f"该排班未开放候补：{schedule.hospital.name}及全区域的预约规则均未设置“候补截止（开诊前分钟数）”，"
            "由区域管理员在管理后台“预约挂号 › 预约规则”中为该医院或全区域设置后开放"
        )
    if now >= closes:
        raise WaitlistClosed(f"排班{schedule.work_id}的候补已于{when_text(closes)}截止")
    return schedule, closes


def waitlist_join(
    *, channel: Channel, schedule_id: int, patient: Patient, now: dt.datetime | None = None
) -> WaitlistEntry:
    """A patient joins a full schedule's waitlist (rule 5): only when no number is left, before the
    waitlist's cut-off, once per patient and schedule, and never while banned."""
    now = now or clock.now()
    patient, violations = _patient_clean(patient)
    if violations:
        raise InvalidInput(violations)
    schedule, _closes = _waitlist_schedule(schedule_id, now)
    id_hash = lookup_hash(patient.id_card)
    _check_not_banned(id_hash, now)
    if (
        schedule.remaining > 0
        and not WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING).exists()
    ):
        raise WaitlistNotNeeded(f"排班{schedule.work_id}尚有号源，请直接预约")
    holders = list(
        Order.objects.filter(schedule=schedule, id_card_hash=id_hash, status__in=Order.ACTIVE).values_list(
            "channel_id", flat=True
        )
    )
    if holders:
        refuse_naming_only_own(channel.pk, holders, DuplicateBooking("该患者已预约此排班，无需候补"))
    try:
        with transaction.atomic():
            entry = WaitlistEntry.objects.create(
                schedule=schedule,
                channel=channel,
                **patient.row_fields(),
                created_at=now,
            )
    except IntegrityError:
        waiting = WaitlistEntry.objects.filter(schedule=schedule, id_card_hash=id_hash).values_list(
            "channel_id", flat=True
        )
        refuse_naming_only_own(channel.pk, list(waiting), DuplicateBooking("该患者已在此排班候补，请勿重复加入"))
    return entry


@transaction.atomic
def waitlist_leave(*, channel: Channel, schedule_id: int, entry_id: int) -> WaitlistEntry:
    """The patient leaves the waitlist (an offered lock is an order: cancel the order instead)."""
    entry = (
        WaitlistEntry.objects.select_for_update().filter(pk=entry_id, schedule_id=schedule_id, channel=channel).first()
    )
    if entry is None:
        raise WaitlistEntryNotFound(f"候补{entry_id}不存在")
    if entry.status == WaitlistEntry.CANCELLED:
        return entry
    if entry.status != WaitlistEntry.WAITING:
        raise OrderStateConflict(f"候补{entry_id}{entry.get_status_display()}，不能取消候补")
    entry.status = WaitlistEntry.CANCELLED
    entry.save(update_fields=["status", "updated_at"])
    return entry


def waitlist_offer(*, schedule_id: int, now: dt.datetime | None = None) -> int:
    """Offer the schedule's free numbers to its waitlist, first in line first, each through the
    normal lock (order_lock: rules, hospital lock, lock time as the payment deadline). Called by a
    task after the commit that freed a number, and by the beat sweeper. Returns the offers made."""
    now = now or clock.now()
    offers = 0
    while True:
        schedule = Schedule.objects.select_related("hospital").filter(pk=schedule_id).first()
        if schedule is None:
            return offers
        closes = waitlist_closes_at(rules_for(schedule.hospital_id), schedule.work_date, schedule.start_time)
        if schedule.status != Schedule.NORMAL or closes is None or now >= closes:
            WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING).update(
                status=WaitlistEntry.CLOSED, note="候补已截止，未能候补成功"
            )
            return offers
        if schedule.remaining <= 0:
            return offers
        with transaction.atomic():
            # Claimed under a row lock (SKIP LOCKED): a task and the sweeper never offer to the same entry.
            entry = (
                WaitlistEntry.objects.select_for_update(skip_locked=True)
                .filter(schedule=schedule, status=WaitlistEntry.WAITING)
                .select_related("channel")
                .order_by("created_at", "pk")
                .first()
            )
            if entry is None:
                return offers
            entry.status = WaitlistEntry.OFFERED
            entry.save(update_fields=["status", "updated_at"])
        patient = Patient.of(entry)
        try:
            order, _created = order_lock(
                channel=entry.channel,
                hospital_no=schedule.hospital.hospital_no,
                work_id=schedule.work_id,
                patient=patient,
                idempotency_key=f"waitlist-{entry.pk}",
                now=now,
                waitlist=True,
            )
        except (ScheduleFull, HospitalUnavailableForBooking, HospitalAnswerError):
            # Taken meanwhile, or the hospital is away: the entry keeps its place for the next try.
            WaitlistEntry.objects.filter(pk=entry.pk).update(status=WaitlistEntry.WAITING)
            return offers
        except DomainError as exc:
            WaitlistEntry.objects.filter(pk=entry.pk).update(status=WaitlistEntry.FAILED, note=exc.message[:300])
            continue
        WaitlistEntry.objects.filter(pk=entry.pk).update(order=order, note="已为候补患者锁号，待支付")
        deadline = (
            f"，请于{when_text(order.lock_expires_at)}前支付，逾期号源将顺延给下一位候补患者"
            if order.lock_expires_at
            else ""
        )
        notify_patient(
            order=order,
            kind=PatientNotification.LOCKED,
            key="waitlist",
            message=f"您候补的{_session_text(order)}已为您锁号{deadline}。订单号{order.order_no}。",
        )
        offers += 1


def waitlists_offer_due(*, now: dt.datetime | None = None) -> int:
    """The beat sweeper: offer free numbers of schedules with a waiting list (a lost task), and close
    lists past their cut-off. Returns the offers made."""
    ids = set(
        WaitlistEntry.objects.filter(status=WaitlistEntry.WAITING).values_list("schedule_id", flat=True).distinct()
    )
    return sum(waitlist_offer(schedule_id=pk, now=now) for pk in ids)
