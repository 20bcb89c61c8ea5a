"""Fixed-window rate limits in the shared cache (Redis in production, so every worker counts together)."""

from __future__ import annotations

import time

from django.core.cache import cache


def allow(key: str, *, limit: int, window: int = 60) -> bool:
    """Count one hit against `key`; False once more than `limit` hits fell in the current window.

    A limit of 0 or less switches the limit off.
    """
    if limit <= 0:
        return True
    return hits(key, window=window, add=1) <= limit


def hits(key: str, *, window: int = 60, add: int = 0) -> int:
    bucket = f"rl:{key}:{int(time.time() // window)}"
    if not add:
        return int(cache.get(bucket) or 0)
    cache.add(bucket, 0, timeout=window + 5)
    try:
        return cache.incr(bucket, add)
    except ValueError:  # expired between add and incr
        cache.set(bucket, add, timeout=window + 5)
        return add


def retry_after(window: int = 60) -> int:
    return window - int(time.time()) % window
