"""The booking rules' clock: `timezone.now()`, unless a test has frozen it.

The rules (release window, cut-offs, cancellation deadline, bans) read the time through `now()`, so
a test driving the REST API over the live server (same process, another thread) can set the hour
without sleeping and without patching Django.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    return _frozen or timezone.now()


@contextmanager
def frozen(at: dt.datetime) -> Iterator[None]:
    """Hold the rules' clock at `at` (aware) for the duration of the block (tests only)."""
    global _frozen
    saved, _frozen = _frozen, at
    try:
        yield
    finally:
        _frozen = saved
