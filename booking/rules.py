"""The effective booking rules of a hospital: the region's row overridden by the hospital's own.

`rules_for(hospital)` is the one read of BookingRules; it is cached briefly (RULES_CACHE_SECONDS)
because every lock reads it, and dropped when staff save a rule (`rules_cache_clear`). The date
arithmetic of the rules (release time, cut-offs, working days) lives here as pure functions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from booking.models import BookingRules
from regional.models import Hospital

RULES_CACHE_SECONDS = 30
_CACHE_KEY = "booking:rules:v1:{}"
_FIELDS = (
    "release_days",
    "release_time",
    "booking_cutoff_minutes",
    "limit_per_day",
    "limit_per_week",
    "limit_per_month",
    "forbid_same_doctor_session",
    "forbid_overlap",
    "cancel_deadline_time",
    "cancel_deadline_working_days",
    "ban_tiers",
    "waitlist_close_minutes",
    "reminder_time",
    "channel_quotas",
    "quota_release_minutes",
)


@dataclasses.dataclass(frozen=True)
class BanTier:
    no_shows: int
    within_days: int
    ban_days: int


@dataclasses.dataclass(frozen=True)
class EffectiveRules:
    """The rules in force for one hospital; None (or empty) means the rule is off."""

    release_days: int | None = None
    release_time: dt.time | None = None
    booking_cutoff_minutes: int | None = None
    limit_per_day: int | None = None
    limit_per_week: int | None = None
    limit_per_month: int | None = None
    forbid_same_doctor_session: bool | None = None
    forbid_overlap: bool | None = None
    cancel_deadline_time: dt.time | None = None
    cancel_deadline_working_days: int | None = None
    ban_tiers: tuple[BanTier, ...] = ()
    waitlist_close_minutes: int | None = None
    reminder_time: dt.time | None = None
    channel_quotas: dict | None = None
    quota_release_minutes: int | None = None
    holidays: frozenset[dt.date] = frozenset()


def parse_holidays(text: str) -> frozenset[dt.date]:
    """One `yyyy-mm-dd` per line (commas and spaces also separate); anything else raises ValueError."""
    days = set()
    for part in (text or "").replace(",", "\n").split():
        days.add(dt.date.fromisoformat(part.strip()))
    return frozenset(days)


def parse_ban_tiers(value) -> tuple[BanTier, ...]:
    """The tiers as staff typed them (a JSON list of objects), lowest threshold first; raises ValueError."""
    if not value:
        return ()
    if not isinstance(value, list):
        raise ValueError("应为列表")
    tiers = []
    for item in value:
        try:
            tier = BanTier(int(item["no_shows"]), int(item["within_days"]), int(item["ban_days"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("每一档需要 no_shows、within_days、ban_days 三个正整数") from exc
        if min(tier.no_shows, tier.within_days, tier.ban_days) <= 0:
            raise ValueError("no_shows、within_days、ban_days 均应为正整数")
        tiers.append(tier)
    return tuple(sorted(tiers, key=lambda t: (t.no_shows, t.ban_days)))


def _merge(rows: list[BookingRules]) -> EffectiveRules:
    values: dict = {}
    holidays: set[dt.date] = set()
    for row in rows:  # the region's first, then the hospital's: a filled-in field overrides
        for name in _FIELDS:
            value = getattr(row, name)
            if value is not None:
                values[name] = value
        holidays |= parse_holidays(row.holidays)
    values["ban_tiers"] = parse_ban_tiers(values.get("ban_tiers"))
    return EffectiveRules(**values, holidays=frozenset(holidays))


def rules_for(hospital: Hospital | int | None) -> EffectiveRules:
    """The rules in force at `hospital` (None: the region's own)."""
    hospital_id = hospital.pk if isinstance(hospital, Hospital) else hospital
    key = _CACHE_KEY.format(hospital_id or 0)
    cached = cache.get(key)
    if cached is not None:
        return cached
    scope = Q(hospital__isnull=True) | Q(hospital_id=hospital_id) if hospital_id else Q(hospital__isnull=True)
    rows = sorted(BookingRules.objects.filter(scope), key=lambda row: row.hospital_id is not None)
    rules = _merge(rows)
    cache.set(key, rules, RULES_CACHE_SECONDS)
    return rules


def rules_cache_clear() -> None:
    """Staff changed a rule: the next read sees it (every hospital may inherit from the region)."""
    cache.delete_many([_CACHE_KEY.format(pk) for pk in [0, *Hospital.objects.values_list("pk", flat=True)]])


# -- the rules' arithmetic -------------------------------------------------------------------------


def _aware(day: dt.date, at: dt.time) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, at))


def release_at(rules: EffectiveRules, work_date: dt.date) -> dt.datetime | None:
    """When the session's numbers open (放号), or None when there is no release rule."""
    if rules.release_days is None:
        return None
    return _aware(work_date - dt.timedelta(days=rules.release_days), rules.release_time or dt.time(0, 0))


def booking_cutoff_at(rules: EffectiveRules, work_date: dt.date, start_time: dt.time) -> dt.datetime | None:
    """From this moment on the session can no longer be booked (None without a cut-off rule)."""
    if rules.booking_cutoff_minutes is None:
        return None
    return _aware(work_date, start_time) - dt.timedelta(minutes=rules.booking_cutoff_minutes)


def working_day_before(day: dt.date, count: int, holidays: frozenset[dt.date]) -> dt.date:
    """The `count`-th working day before `day` (weekends and holidays skipped); `day` itself for 0."""
    while count > 0:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            count -= 1
    return day


def cancel_deadline_at(rules: EffectiveRules, work_date: dt.date) -> dt.datetime | None:
    """From this moment on the patient can no longer cancel (None without a deadline rule)."""
    if rules.cancel_deadline_time is None:
        return None
    days = 1 if rules.cancel_deadline_working_days is None else rules.cancel_deadline_working_days
    return _aware(working_day_before(work_date, days, rules.holidays), rules.cancel_deadline_time)


def when_text(moment: dt.datetime) -> str:
    return f"{timezone.localtime(moment):%Y年%m月%d日%H:%M}"


def waitlist_closes_at(rules: EffectiveRules, work_date: dt.date, start_time: dt.time) -> dt.datetime | None:
    """From this moment on the session's waitlist is closed; None: the region offers no waitlist."""
    if rules.waitlist_close_minutes is None:
        return None
    return _aware(work_date, start_time) - dt.timedelta(minutes=rules.waitlist_close_minutes)


def parse_channel_quotas(value) -> dict[str, int]:
    """{channel code: percentage 0–100}; raises ValueError on anything else."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ValueError('应为对象，例如 {"JKMZWX": 60}')
    quotas = {}
    for code, percent in value.items():
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
            raise ValueError(f"渠道{code}的百分比应为0到100之间的数")
        quotas[str(code)] = percent
    return quotas


def channel_quota(rules: EffectiveRules, *, channel_code: str, bookable: int) -> int | None:
    """How many of the schedule's `bookable` numbers the channel may hold; None: no quota applies
    (no quotas, or a channel that has no share)."""
    quotas = parse_channel_quotas(rules.channel_quotas)
    if channel_code not in quotas:
        # A channel without a share (a referral, say) is not held back by the others' quotas.
        return None
    return int(bookable * quotas[channel_code] // 100)


def quota_released_at(rules: EffectiveRules, work_date: dt.date, start_time: dt.time) -> dt.datetime | None:
    """From this moment on, the channels' unsold quotas are shared (None: never released early)."""
    if rules.quota_release_minutes is None:
        return None
    return _aware(work_date, start_time) - dt.timedelta(minutes=rules.quota_release_minutes)
