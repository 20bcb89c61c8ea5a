"""A circuit breaker whose state lives in the Django cache, so every worker process shares it.

closed → (N consecutive failures) → open for `reset_seconds`, every call refused at once →
half-open: one trial call goes through; success closes the circuit, failure opens it again.
With the Redis cache (REDIS_URL) all web and Celery workers see one state; with the local
memory cache (embedded mode) each process has its own, which is still correct, only less shared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
STATE_LABELS = {CLOSED: "正常", OPEN: "熔断中", HALF_OPEN: "试探恢复中"}


class CircuitOpen(Exception):
    """The circuit is open: the call was refused without being attempted."""

    def __init__(self, name: str, retry_after: float):
        super().__init__(f"circuit {name} open, retry after {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


@dataclass(frozen=True)
class CircuitBreaker:
    name: str
    failures: int
    reset_seconds: float
    # How long one half-open trial may take before another caller may try (longer than a call).
    trial_seconds: float = 60.0

    def _key(self, part: str) -> str:
        return f"circuit:{self.name}:{part}"

    def state(self) -> str:
        opened_until = cache.get(self._key("open_until"))
        if opened_until is None:
            return CLOSED
        return OPEN if time.time() < opened_until else HALF_OPEN

    def failure_count(self) -> int:
        return int(cache.get(self._key("failures")) or 0)

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        opened_until = cache.get(self._key("open_until"))
        if opened_until is None:
            return
        now = time.time()
        if now < opened_until:
            raise CircuitOpen(self.name, opened_until - now)
        # Half-open: `add` is atomic in every cache backend, so exactly one caller gets the trial.
        if not cache.add(self._key("trial"), 1, timeout=max(self.trial_seconds, 1)):
            raise CircuitOpen(self.name, self.reset_seconds)

    def record_success(self) -> None:
        cache.delete_many([self._key("failures"), self._key("open_until"), self._key("trial")])

    def record_failure(self) -> None:
        key = self._key("failures")
        cache.add(key, 0, timeout=None)
        try:
            count = cache.incr(key)
        except ValueError:  # expired or deleted between add and incr
            cache.set(key, 1, timeout=None)
            count = 1
        if count >= self.failures:
            cache.set(self._key("open_until"), time.time() + self.reset_seconds, timeout=None)
            cache.delete(self._key("trial"))

    def reset(self) -> None:
        self.record_success()
