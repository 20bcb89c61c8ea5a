"""The channel behind a token, kept per process and invalidated at once across processes.

Every channel request began with a query for its token (booking.api.auth). The answer is now kept in
each process, stamped with a generation read from the shared cache (Redis in production). Saving or
deleting a channel (a token issued or rotated, the channel switched off) sets a new generation once
the change commits, so the next request in every worker sees a stamp that no longer matches and asks
the database again: a revoked or rotated token stops at once, not after a timeout. When the
generation cannot be read (Redis away) the database is asked every time.
"""

from __future__ import annotations

import secrets
import time

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from booking.models import Channel

GENERATION_KEY = "booking:channel-tokens:generation"
# Belt and braces beside the generation: an entry is asked again after this many seconds anyway.
MAX_AGE = 300.0
# Only tokens that matched a channel are kept (a flood of wrong tokens must not grow memory);
# a handful of channels exist, the bound only guards against churn.
MAX_ENTRIES = 1000
FIELDS = tuple(field.attname for field in Channel._meta.concrete_fields)

# token hash -> (generation, monotonic time cached, the channel row's values)
_entries: dict[str, tuple[str, float, tuple]] = {}


def channel_by_token_hash(token_hash: str) -> Channel | None:
    """The channel holding this token hash (active or not), or None; a fresh instance per call."""
    generation = _generation()
    if generation is not None:
        entry = _entries.get(token_hash)
        if entry is not None and entry[0] == generation and time.monotonic() - entry[1] < MAX_AGE:
            return Channel.from_db(DEFAULT_DB_ALIAS, FIELDS, entry[2])
    values = Channel.objects.filter(token_hash=token_hash).values_list(*FIELDS).first()
    if values is None:
        return None
    if generation is not None:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        # Stamped with the generation read *before* the query: a change committed in between has
        # already set a newer one, so this entry is never trusted past it.
        _entries[token_hash] = (generation, time.monotonic(), values)
    return Channel.from_db(DEFAULT_DB_ALIAS, FIELDS, values)


def _generation() -> str | None:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        # First use, or Redis lost its keys: start a new generation (whatever was kept is stale).
        cache.add(GENERATION_KEY, secrets.token_hex(8), timeout=None)
        generation = cache.get(GENERATION_KEY)
    return generation


def channel_tokens_changed() -> None:
    """Make every process ask the database again for every token. This process forgets at once;
    the shared generation moves once the current transaction commits (moved before, another worker
    could read the old row and keep it under the new stamp)."""
    _entries.clear()

    def bump() -> None:
        _entries.clear()
        cache.set(GENERATION_KEY, secrets.token_hex(8), timeout=None)

    transaction.on_commit(bump)


@receiver(post_save, sender=Channel, dispatch_uid="booking.channel_tokens_changed.save")
@receiver(post_delete, sender=Channel, dispatch_uid="booking.channel_tokens_changed.delete")
def _channel_changed(sender, **kwargs) -> None:
    channel_tokens_changed()
