"""Shared pieces of the booking-rules tests: the rules rows, a local-time helper and the lock call."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from booking.models import BookingRules
from booking.rules import rules_cache_clear


def region_rules(**values) -> BookingRules:
    rules, _ = BookingRules.objects.update_or_create(hospital=None, defaults=values)
    rules_cache_clear()
    return rules


def hospital_rules(hospital, **values) -> BookingRules:
    rules, _ = BookingRules.objects.update_or_create(hospital=hospital, defaults=values)
    rules_cache_clear()
    return rules


def local(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute, second)))


def lock(api, schedule, n: int = 1) -> dict:
    response = api.lock(schedule, n)
    assert response.status_code == 201, response.text
    return response.json()
