"""Fixed-window rate limits in the shared cache (Redis in production, so every worker counts together).

A hit is one Redis round trip (INCRBY and EXPIRE in one pipeline); `allow_reading` adds a read of
another key to the same round trip (the SOAP endpoint reads the credential cache's generation so).
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from regional.cache import shared_redis

logger = logging.getLogger("regional.cache")


class LimiterUnavailable(Exception):
    """The counters cannot be reached: a limit that must fail closed refuses instead."""


def _backend() -> BaseCache:
    # `cache` is Django's proxy to the default cache, or a backend put in its place (the tests do).
    return cache if isinstance(cache, BaseCache) else caches["default"]


def _bucket(key: str, window: int) -> str:
    return f"rl:{key}:{int(time.time() // window)}"


def allow(key: str, *, limit: int, window: int = 60) -> bool:
    """Count one hit against `key`; False once more than `limit` hits fell in the current window.

    A limit of 0 or less switches the limit off.
    """
    if limit <= 0:
        return True
    return hits(key, window=window, add=1) <= limit


def allow_reading(key: str, *, limit: int, read: str, window: int = 60) -> tuple[bool, bytes | None]:
    """`allow(key, limit=…)` and the raw Redis value of the cache key `read`, in one round trip.

    Without Redis (or with Redis away) the limit is open and the value None, as `allow` fails open.
    """
    redis = shared_redis(_backend())
    if redis is None:
        return allow(key, limit=limit, window=window), None
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.get(redis.key(read))
            if limit > 0:
                _count(pipe, redis.key(_bucket(key, window)), 1, window)
            results = pipe.execute()
    except RedisError as exc:
        logger.warning("rate limit skipped, Redis unavailable: %s", type(exc).__name__)
        return True, None
    return (limit <= 0 or int(results[1]) <= limit), results[0]


def forgive(key: str, *, window: int = 60) -> None:
    """Take back one hit counted by `allow_reading` for a caller that then failed to authenticate
    (the count is taken before the check, in the same round trip as the credential generation)."""
    redis = shared_redis(_backend())
    try:
        if redis is None:
            _backend().decr(_bucket(key, window))
        else:
            redis.decr(redis.key(_bucket(key, window)))
    except (RedisError, ValueError):
        pass


def _count(pipe, bucket: str, add: int, window: int) -> None:
    pipe.incrby(bucket, add)
    pipe.expire(bucket, window + 5)


def hits(key: str, *, window: int = 60, add: int = 0) -> int:
    backend = _backend()
    bucket = _bucket(key, window)
    if not add:
        return int(backend.get(bucket) or 0)
    redis = shared_redis(backend)
    if redis is None:  # the in-process cache of the embedded mode
        backend.add(bucket, 0, timeout=window + 5)
        try:
            return backend.incr(bucket, add)
        except ValueError:  # expired between add and incr
            backend.set(bucket, add, timeout=window + 5)
            return add
    try:
        with redis.pipeline(transaction=False) as pipe:
            _count(pipe, redis.key(bucket), add, window)
            count, _ = pipe.execute()
    except RedisError as exc:  # fail open: a Redis restart must not refuse every caller
        logger.warning("rate limit skipped, Redis unavailable: %s", type(exc).__name__)
        return 0
    return int(count)


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
    bucket = backend.make_and_validate_key(_bucket(key, window))
    try:
        # Past the resilient wrappers of regional.cache, straight to the Redis client; Django
        # stores integers unpickled, so `hits` reads these counters too.
        client = backend._cache.get_client(bucket, write=bool(add))
        if not add:
            return int(client.get(bucket) or 0)
        with client.pipeline() as pipe:
            _count(pipe, bucket, add, window)
            count, _ = pipe.execute()
        return int(count)
    except RedisError as exc:
        raise LimiterUnavailable(str(type(exc).__name__)) from exc
