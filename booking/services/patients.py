"""The patient of a booking: cleaning what a channel sends, the region's limits per patient
(rule 2) and the no-show bans (rule 4).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from django.db import connection, transaction
from django.utils import timezone

from booking.errors import DuplicateBooking, PatientBanned, PatientLimitReached, RegionRuleRefused, SessionOverlap
from booking.models import NoShowBan, NoShowRecord, Order, Schedule
from booking.rules import EffectiveRules, rules_for
from booking.services._common import SYSTEM
from regional import idnumber
from regional.audit import audit_record
from regional.errors import DomainError, InvalidInput
from regional.messages import Violation
from regional.messages.codes import CardType, SexCode


@dataclass(frozen=True)
class Patient:
    """The patient of a booking, as a channel sends it (all strings; empty when not given)."""

    name: str
    id_card: str
    phone: str
    card_no: str = ""
    card_type: str = ""
    sex: str = ""
    age: str = ""
    address: str = ""

    def row_fields(self) -> dict[str, str]:
        """The patient as the columns of a booking row (Order, WaitlistEntry)."""
        return {column: getattr(self, attr) for attr, column in _ROW_COLUMNS.items()}

    @classmethod
    def of(cls, row) -> Patient:
        """The patient of a booking row (Order, WaitlistEntry)."""
        return cls(**{attr: getattr(row, column) for attr, column in _ROW_COLUMNS.items()})


# Patient attribute → the column of a booking row that holds it.
_ROW_COLUMNS = {
    "name": "patient_name", "id_card": "id_card", "phone": "phone", "card_no": "card_no", "card_type": "card_type",
    "sex": "sex", "age": "age", "address": "address",
}  # fmt: skip


_PHONE = re.compile(r"^[0-9+\-]{7,20}$")


def _patient_clean(patient: Patient) -> tuple[Patient, list[Violation]]:
    """Normalised patient data and every broken rule (the values themselves never appear in messages)."""
    p = Patient(
        name=(patient.name or "").strip(),
        id_card=re.sub(r"\s+", "", patient.id_card or "").upper(),
        phone=re.sub(r"\s+", "", patient.phone or ""),
        card_no=(patient.card_no or "").strip(),
        card_type=(patient.card_type or "").strip(),
        sex=(patient.sex or "").strip(),
        age=(patient.age or "").strip(),
        address=(patient.address or "").strip(),
    )
    out: list[Violation] = []
    if not p.name:
        out.append(Violation("patient.name", "为必填项（患者姓名）"))
    elif len(p.name) > 50:
        out.append(Violation("patient.name", "长度不能超过50个字符"))
    if not p.id_card:
        out.append(Violation("patient.id_card", "为必填项（身份证号）"))
    elif why := idnumber.problem(p.id_card):
        # GB 11643: check digit, birth date, length; placeholders such as 3306XXXX… are refused
        # (they would never match the same patient later). 15-digit first-generation numbers are
        # still valid documents under the standard and carry no check digit: accepted when the
        # birth date is real.
        out.append(Violation("patient.id_card", why))
    if not p.phone:
        out.append(Violation("patient.phone", "为必填项（手机号码）"))
    elif not _PHONE.match(p.phone):
        out.append(Violation("patient.phone", "格式不正确（7–20位数字）"))
    if len(p.card_no) > 20:
        out.append(Violation("patient.card_no", "长度不能超过20个字符"))
    if p.card_type and p.card_type not in CardType.values:
        out.append(Violation("patient.card_type", "应为01（院内就诊卡）或02（居民健康卡）"))
    if p.sex and p.sex not in SexCode.values:
        out.append(Violation("patient.sex", "应为0、1、2、5、6或9（GB/T 2261.1 性别代码）"))
    if len(p.age) > 30:
        out.append(Violation("patient.age", "长度不能超过30个字符"))
    if len(p.address) > 200:
        out.append(Violation("patient.address", "长度不能超过200个字符"))
    if p.card_no and not p.card_type:
        p = dataclasses.replace(p, card_type="01")
    return p, out


def _check_not_banned(id_hash: str, now: dt.datetime) -> None:
    """Rule 4: a patient under a no-show ban (爽约黑名单) cannot book until the ban ends."""
    today = timezone.localtime(now).date()
    ban = (
        NoShowBan.objects.filter(id_card_hash=id_hash, lifted_at__isnull=True, starts_on__lte=today, ends_on__gte=today)
        .order_by("-ends_on")
        .first()
    )
    if ban is not None:
        raise PatientBanned(
            f"该患者{ban.within_days}天内爽约{ban.no_shows}次，暂停预约至{ban.ends_on:%Y年%m月%d日}（含），期满后可再预约"
        )


def _lock_patient(id_hash: str) -> None:
    # Two requests of one patient (two channels, two hospitals) must not both pass a limit: a
    # transaction-scoped advisory lock keyed by the ID hash serialises them until commit, and the
    # second one's counts (READ COMMITTED, one snapshot per statement) then see the first's order.
    # SQLite (development only) serialises writers by itself.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [PATIENT_LOCK_SPACE, id_hash])


PATIENT_LOCK_SPACE = 5105  # the advisory-lock namespace of "one patient's bookings"


NOT_ELIGIBLE = "该患者当前不符合全区预约规则，不能预约此排班"


def refuse_naming_only_own(channel_id: int | None, holders: Iterable[int], error: DomainError) -> NoReturn:
    """Raise `error` if the conflicting bookings include the calling channel's own; otherwise a
    generic refusal, so that no channel learns from a 409 what the patient booked elsewhere."""
    if channel_id is None or channel_id in set(holders):
        raise error
    raise RegionRuleRefused(NOT_ELIGIBLE)


def _check_patient_limits(
    *, schedule: Schedule, id_hash: str, rules: EffectiveRules, channel_id: int | None = None
) -> None:
    """Rule 2, inside the reservation transaction: the patient's day / week / month limits across
    the region (active and visited orders, by visit date), one order per doctor and session, and
    no overlapping sessions at any hospital."""
    limits = (rules.limit_per_day, rules.limit_per_week, rules.limit_per_month)
    if not any(v is not None for v in limits) and not rules.forbid_same_doctor_session and not rules.forbid_overlap:
        return
    _lock_patient(id_hash)
    day = schedule.work_date
    week = day - dt.timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    held = Order.objects.filter(id_card_hash=id_hash, status__in=(*Order.ACTIVE, Order.VISITED))
    for limit, start, end, label in (
        (rules.limit_per_day, day, day + dt.timedelta(days=1), f"{day:%m月%d日}当天"),
        (rules.limit_per_week, week, week + dt.timedelta(days=7), "当周"),
        (rules.limit_per_month, month, next_month, f"{month:%Y年%m月}"),
    ):
        if limit is None:
            continue
        in_range = held.filter(schedule__work_date__gte=start, schedule__work_date__lt=end)
        if in_range.count() >= limit:
            if channel_id is not None and in_range.filter(channel_id=channel_id).count() < limit:
                raise RegionRuleRefused(NOT_ELIGIBLE)  # reached only with other channels' bookings
            raise PatientLimitReached(f"该患者{label}的预约已达上限（{limit}次），不能再预约")
    active = Order.objects.filter(id_card_hash=id_hash, status__in=Order.ACTIVE, schedule__work_date=day)
    if rules.forbid_same_doctor_session:
        same = active.filter(schedule__doctor_id=schedule.doctor_id, schedule__time_code=schedule.time_code).exclude(
            schedule=schedule
        )
        holders = list(same.values_list("channel_id", flat=True))
        if holders:
            refuse_naming_only_own(channel_id, holders, DuplicateBooking("该患者已预约同一医生同一时段，请勿重复预约"))
    if rules.forbid_overlap:
        other = (
            active.filter(schedule__start_time__lt=schedule.stop_time, schedule__stop_time__gt=schedule.start_time)
            .exclude(schedule=schedule)
            .select_related("schedule")
            .first()
        )
        if other is not None and channel_id is not None and other.channel_id != channel_id:
            raise RegionRuleRefused(NOT_ELIGIBLE)  # the other booking's time is not this channel's to know
        if other is not None:
            raise SessionOverlap(
                f"该患者{day:%m月%d日}{other.schedule.start_time:%H:%M}-{other.schedule.stop_time:%H:%M}"
                "已有其他预约，时间重叠，不能预约"
            )


def no_show_ban_impose(*, record: NoShowRecord, now: dt.datetime) -> NoShowBan | None:
    """Rule 4: after a no-show, the region's tiers (e.g. 3 in 90 days → 90 days, 6 in 180 → 180)
    decide a ban on the patient, counted region-wide from NoShowRecord by visit date. The highest
    tier reached applies; nothing new when a longer ban already runs."""
    tiers = rules_for(None).ban_tiers
    today = timezone.localtime(now).date()
    best: tuple[int, int, int] | None = None
    for tier in tiers:
        since = record.work_date - dt.timedelta(days=tier.within_days - 1)
        count = NoShowRecord.objects.filter(
            id_card_hash=record.id_card_hash, work_date__gte=since, work_date__lte=record.work_date
        ).count()
        if count >= tier.no_shows and (best is None or tier.ban_days > best[2]):
            best = (count, tier.within_days, tier.ban_days)
    if best is None:
        return None
    ends_on = today + dt.timedelta(days=best[2] - 1)
    running = NoShowBan.objects.filter(
        id_card_hash=record.id_card_hash, lifted_at__isnull=True, ends_on__gte=ends_on
    ).exists()
    if running:
        return None
    ban = NoShowBan.objects.create(
        id_card_hash=record.id_card_hash,
        no_shows=best[0],
        within_days=best[1],
        starts_on=today,
        ends_on=ends_on,
        trigger=record,
        created_at=now,
    )
    audit_record(
        action="爽约禁约",
        obj=ban,
        after={"starts_on": str(ban.starts_on), "ends_on": str(ban.ends_on), "no_shows": ban.no_shows},
        actor=SYSTEM,
        reason=f"{best[1]}天内爽约{best[0]}次",
    )
    return ban


@transaction.atomic
def no_show_ban_change(*, ban_id: int, ends_on: dt.date | None, reason: str, user=None) -> NoShowBan:
    """Staff lift a ban (`ends_on` None) or shorten it, with a reason (audited)."""
    reason = (reason or "").strip()[:300]
    if not reason:
        raise InvalidInput([Violation("reason", "为必填项（解除或缩短禁约的原因）")])
    ban = NoShowBan.objects.select_for_update().get(pk=ban_id)
    before = {"ends_on": str(ban.ends_on), "lifted": ban.lifted_at is not None}
    if ends_on is None:
        ban.lifted_at = timezone.now()
        action = "解除爽约禁约"
    else:
        if ends_on > ban.ends_on:
            raise InvalidInput([Violation("ends_on", "只能缩短禁约，不能延长")])
        ban.ends_on = ends_on
        action = "缩短爽约禁约"
    ban.change_reason = reason
    ban.changed_by = user if getattr(user, "is_authenticated", False) else None
    ban.save()
    audit_record(
        action=action,
        obj=ban,
        before=before,
        after={"ends_on": str(ban.ends_on), "lifted": ban.lifted_at is not None},
        user=user,
        reason=reason,
    )
    return ban
