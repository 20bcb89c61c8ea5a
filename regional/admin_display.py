"""Small display pieces shared by every admin list, so lists fit a 1366 px screen the same way."""

from __future__ import annotations

from django.utils.html import format_html


def shortened(value: object, keep: int = 10) -> str:
    """A long identifier cut to its first `keep` characters, the whole value on hover (title)."""
    text = "" if value is None else str(value)
    if len(text) <= keep + 1:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[:keep])
