"""Channels (the booking apps that call the REST API): their API tokens."""

from __future__ import annotations

from django.db import transaction

from booking.models import Channel


@transaction.atomic
def channel_issue_token(*, code: str, name: str | None = None) -> tuple[Channel, str]:
    """Create the channel if needed and give it a new API token (the old one stops working)."""
    channel = Channel.objects.filter(code=code).first() or Channel(code=code, name=name or code)
    if name:
        channel.name = name
    token = channel.issue_token()
    channel.save()
    return channel, token
