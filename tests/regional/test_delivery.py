"""The delivery engine's backoff: exponential from DELIVERY_BACKOFF_SECONDS, capped at
DELIVERY_BACKOFF_MAX_SECONDS (the claim, lease, sweep and retry are exercised through the outbox,
the patient notifications and the referral reminders in their own tests)."""

from __future__ import annotations

from regional.delivery import backoff


class BackoffTests:
    def test_it_doubles_from_the_base_and_stops_at_the_cap(self, settings):
        settings.DELIVERY_BACKOFF_SECONDS = 5
        settings.DELIVERY_BACKOFF_MAX_SECONDS = 600
        assert [backoff(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
        assert backoff(8) == 600 and backoff(30) == 600
