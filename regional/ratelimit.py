"""Fixed-window rate limits in the shared cache (Redis in production, so every worker counts together)."""

from __future__ import annotations

import time

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError


class LimiterUnavailable(Exception):
    """The counters cannot be reached: a limit that must fail closed refuses instead."""


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


def strict_hits(key: str, *, window: int = 60, add: int = 0) -> int:
    """Like `hits`, but raises LimiterUnavailable when Redis is down instead of counting nothing.

    For limits that protect against guessing (the admin login), where failing open would hand an
    attacker unlimited tries for as long as Redis is away.
    """
    backend = caches["default"]
    if not isinstance(backend, RedisCache):  # the in-process cache of the embedded mode is never away
        return hits(key, window=window, add=add)
    bucket = backend.make_and_validate_key(f"rl:{key}:{int(time.time() // window)}")
    try:
        # Past the resilient wrappers of regional.cache, straight to the Redis client; Django
        # stores integers unpickled, so `hits` reads these counters too.
        client = backend._cache.get_client(bucket, write=bool(add))
        if not add:
            return int(client.get(bucket) or 0)
        with client.pipeline() as pipe:
            pipe.incrby(bucket, add)
            pipe.expire(bucket, window + 5)
            count, _ = pipe.execute()
        return int(count)
    except RedisError as exc:
        raise LimiterUnavailable(str(type(exc).__name__)) from exc
