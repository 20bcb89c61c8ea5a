"""Personal data at rest and on display (CONTRACT.md section 6).

Values are encrypted with Fernet (AES-128-CBC + HMAC, authenticated), under the first key of
PII_ENCRYPTION_KEYS; older keys still decrypt, so keys rotate by prepending a new one and running
`manage.py rotate_pii_keys`. Where a lookup needs the value (ID numbers, card numbers), a keyed
HMAC-SHA256 stored beside the ciphertext serves it. Displays use `mask()`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

KINDS = ("id", "phone", "card", "address", "clinical", "name")


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def _cipher() -> MultiFernet:
    return _fernet(tuple(settings.PII_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return _cipher().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise ValueError("个人信息密文无法解密（密钥不匹配或数据损坏）") from exc


def rotate(token: str) -> str:
    return _cipher().rotate(token.encode("ascii")).decode("ascii")


def normalise(value: str) -> str:
    return re.sub(r"\s+", "", value or "").upper()


def lookup_hash(value: str | None) -> str:
    """Keyed hash for equality lookups; normalised so `3306...x` and `3306...X` match."""
    if not value:
        return ""
    key = settings.PII_HASH_KEY.encode()
    return hmac.new(key, normalise(value).encode("utf-8"), hashlib.sha256).hexdigest()


def mask(value: str | None, kind: str = "id") -> str:
    """`3306**********1234`, `134****1234`, `张**`: the display form of personal data. A name keeps
    its first character and a fixed mask: 并** for both 并某 and 并某某, so the mask gives no length away."""
    if not value:
        return ""
    v = str(value)
    n = len(v)
    if kind == "id":
        return v[:4] + "*" * max(n - 8, 0) + v[-4:] if n > 8 else "*" * n
    if kind == "phone":
        return v[:3] + "*" * max(n - 7, 0) + v[-4:] if n > 7 else "*" * n
    if kind == "card":
        return v[:2] + "*" * max(n - 6, 0) + v[-4:] if n > 6 else "*" * n
    if kind == "name":
        return v[0] + "**" if n > 1 else "**"
    if kind == "address":
        return v[:6] + "****" if n > 6 else "****"
    return f"***（{n}字）"


# Digit runs that look like ID, phone or card numbers, for free text such as log lines.
_NUMBERISH = re.compile(r"(?<![\w])(\d{3,6})(\d{4,})(\d{4}|\d{3}[Xx])(?![\w])")


def mask_text(text: str) -> str:
    """Mask anything number-like of 11+ digits in free text (log lines, exception text)."""
    if not text:
        return text
    return _NUMBERISH.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


class EncryptedTextField(models.TextField):
    """A text column holding ciphertext; Python sees the plaintext.

    With `hash_field`, saving also fills that sibling column with `lookup_hash(value)`.
    """

    description = "Encrypted personal data"

    def __init__(self, *args, kind: str = "id", hash_field: str | None = None, **kwargs):
        if kind not in KINDS:
            raise ValueError(f"unknown personal-data kind {kind!r}")
        self.kind = kind
        self.hash_field = hash_field
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["kind"] = self.kind
        if self.hash_field:
            kwargs["hash_field"] = self.hash_field
        return name, path, args, kwargs

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if self.hash_field:
            setattr(model_instance, self.hash_field, lookup_hash(value))
        return value


class LookupHashField(models.CharField):
    """The keyed hash beside an EncryptedTextField."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)
