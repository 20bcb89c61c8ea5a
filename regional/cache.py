"""The Redis cache, made so that Redis being down never fails a request.

Rate limits, circuit breakers and short-lived caches live in Redis; while it restarts, reads miss
and writes are dropped (logged), so limits fail open and breakers count nothing, instead of
answering patients and hospitals with a 500.
"""

from __future__ import annotations

import functools
import logging

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

logger = logging.getLogger("regional.cache")


def _resilient(fallback):
    def wrap(method):
        @functools.wraps(method)
        def safe(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except RedisError as exc:
                logger.warning("cache %s skipped, Redis unavailable: %s", method.__name__, type(exc).__name__)
                if isinstance(fallback, type) and issubclass(fallback, Exception):
                    raise fallback("cache unavailable") from exc
                return fallback(args, kwargs) if callable(fallback) else fallback

        return safe

    return wrap


class _ReusedClients(RedisCacheClient):
    """Django builds a new Redis client around the same pool for every cache call; building one
    (its table of response callbacks) cost more than the round trip it was for. Clients are safe to
    share between threads; the pool underneath is the one Django keeps."""

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusedClients

    get = _resilient(lambda args, kwargs: kwargs.get("default", args[1] if len(args) > 1 else None))(RedisCache.get)
    get_many = _resilient({})(RedisCache.get_many)
    has_key = _resilient(False)(RedisCache.has_key)
    add = _resilient(True)(RedisCache.add)
    set = _resilient(None)(RedisCache.set)
    set_many = _resilient([])(RedisCache.set_many)
    touch = _resilient(False)(RedisCache.touch)
    delete = _resilient(False)(RedisCache.delete)
    delete_many = _resilient(None)(RedisCache.delete_many)
    # Callers treat ValueError as "no such key" and fall back to set(), which is dropped too.
    incr = _resilient(ValueError)(RedisCache.incr)
    decr = _resilient(ValueError)(RedisCache.decr)
    clear = _resilient(None)(RedisCache.clear)


class SharedRedis:
    """The Redis client behind a Django Redis cache, for what needs Redis itself in one round trip
    (pipelines: the rate limit with the credential generation) rather than Django's one-call-per-value
    API. Keys go through the cache's own prefixing (`key`), so both see the same values."""

    def __init__(self, backend: RedisCache):
        self.backend = backend
        self.client = backend._cache.get_client(write=True)

    def key(self, name: str) -> str:
        return self.backend.make_and_validate_key(name)

    def __getattr__(self, name: str):
        return getattr(self.client, name)


def shared_redis(backend=None) -> SharedRedis | None:
    """The shared Redis of the default cache (or of `backend`), or None when the cache is not Redis
    (the embedded mode's in-process cache, which other processes do not see)."""
    if backend is None:
        from django.core.cache import caches

        backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    # One per backend instance (Django keeps one per thread): building a Redis client costs more than
    # the round trip it is for.
    shared = backend.__dict__.get("_regional_shared")
    if shared is None:
        shared = backend.__dict__["_regional_shared"] = SharedRedis(backend)
    return shared
