"""Who is calling (CONTRACT.md section 4): HTTP Basic, WS-Security UsernameToken, the referral
`token`, or an address on a hospital's allow-list; and whether the message's hospital is theirs.

Credentials are cached per process (no database round trip per call) under a generation token kept
in the shared Redis: any change of a credential, or a staff change of a hospital, sets a new token
(`bump_generation`, connected in `connect_signals`), and every call reads the token (in the same
Redis round trip as its rate limit), so a rotated or revoked secret is refused at once by every
worker. Without Redis (the embedded mode's in-process cache, or Redis away) nothing is cached.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import copy
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from redis.exceptions import RedisError

from regional.cache import shared_redis
from regional.errors import Forbidden
from regional.models import Hospital, HospitalCredential

logger = logging.getLogger("regional.auth")

GENERATION_KEY = "auth:generation"
# Bounds what a lost invalidation (Redis unreachable at that moment) or another worker's HospitalInfo
# (see _hospital_saved) can leave stale.
CACHE_MAX_AGE = 60.0
# What a hospital sends about itself in HospitalInfo (5.1); the handler sets every one of them from
# the message (the image only when sent, and the cache never holds it), so a cached copy that is
# older in these fields never writes them back.
MASTER_DATA_FIELDS = frozenset(
    {"name", "short_name", "degree_code", "degree_name", "phone", "address", "description", "website",
     "bus_route", "seq_no", "updated_at"}
)  # fmt: skip
# The hospital whose own message is being applied (set by regional.inbound around the handler).
acting_hospital: contextvars.ContextVar[int | None] = contextvars.ContextVar("acting_hospital", default=None)


@dataclass(frozen=True)
class Caller:
    """An authenticated party: a hospital proven by its secret, or an address to be checked
    against the allow-list of the hospital its message names."""

    address: str
    method: str
    hospital: Hospital | None = None
    generation: str | None = None

    def hospital_for(self, hospital_no: str | None) -> Hospital:
        """The hospital this caller may act for, given the code inside its message."""
        if not hospital_no:
            raise Forbidden("报文未填写医院编号，无法确认调用方")
        if self.hospital is not None:
            if self.hospital.hospital_no != hospital_no:
                raise Forbidden(f"报文中的医院编号{hospital_no}与认证的医院{self.hospital.hospital_no}不一致")
            return self.hospital
        credential = _credential(hospital_no, self.generation)
        if credential is None or not credential.allows_address(self.address):
            raise Forbidden(f"未授权：地址{self.address}不在医院{hospital_no}的白名单中")
        return copy.copy(credential.hospital)


# -- the per-process cache ---------------------------------------------------------------------------
@dataclass
class _Entry:
    generation: str
    loaded_at: float
    value: object


_credentials: dict[str, _Entry] = {}
_allow_lists: dict[str, _Entry] = {}


def read_generation() -> str | None:
    """The current generation token, or None when there is no shared Redis (then nothing is cached)."""
    client = shared_redis()
    if client is None:
        return None
    try:
        return decode_generation(client.get(client.key(GENERATION_KEY)), client)
    except RedisError:
        return None


def decode_generation(raw: bytes | None, client=None) -> str | None:
    """The token as read from Redis; a missing one (Redis flushed or restarted) is set afresh and
    this call goes to the database: tokens are random, so a restarted Redis never brings back one
    that a worker still holds."""
    if raw is not None:
        return raw.decode()
    client = client or shared_redis()
    if client is not None:
        try:
            client.set(client.key(GENERATION_KEY), uuid.uuid4().hex, nx=True)
        except RedisError:
            pass
    return None


def bump_generation() -> None:
    """Invalidate every worker's cached credentials: a new token in Redis, and this process's cache."""
    _credentials.clear()
    _allow_lists.clear()
    client = shared_redis()
    if client is None:
        return
    try:
        client.set(client.key(GENERATION_KEY), uuid.uuid4().hex)
    except RedisError as exc:
        # Other workers keep what they hold for at most CACHE_MAX_AGE.
        logger.error("credential cache invalidation not shared, Redis unavailable: %s", type(exc).__name__)


def _fresh(entry: _Entry | None, generation: str | None) -> bool:
    return (
        entry is not None
        and generation is not None
        and entry.generation == generation
        and time.monotonic() - entry.loaded_at < CACHE_MAX_AGE
    )


def _credential(hospital_no: str, generation: str | None) -> HospitalCredential | None:
    entry = _credentials.get(hospital_no)
    if _fresh(entry, generation):
        return entry.value
    # The token was read before the database: a change committed in between comes with a newer token,
    # so what is stored here under the older one is dropped at the next call.
    credential = (
        HospitalCredential.objects.select_related("hospital")
        .filter(hospital__hospital_no=hospital_no, is_active=True)
        .first()
    )
    if generation is not None:
        _credentials[hospital_no] = _Entry(generation, time.monotonic(), credential)
    return credential


def _address_lists(generation: str | None) -> list[HospitalCredential]:
    entry = _allow_lists.get("all")
    if _fresh(entry, generation):
        return entry.value
    lists = list(HospitalCredential.objects.filter(is_active=True).exclude(allowed_networks=""))
    if generation is not None:
        _allow_lists["all"] = _Entry(generation, time.monotonic(), lists)
    return lists


def _credential_changed(sender, **kwargs) -> None:
    # At once (this process, and the tests' never-committed transactions) and again after the commit:
    # a worker that read the old row between the two holds it under the first token only.
    bump_generation()
    transaction.on_commit(bump_generation)


def _hospital_saved(sender, instance: Hospital, **kwargs) -> None:
    """A staff change of a hospital invalidates every worker's cache; the hospital's own HospitalInfo
    does not (it would on every call): it changes only MASTER_DATA_FIELDS, which this process's copy
    takes on after the commit and other workers' copies within CACHE_MAX_AGE."""
    entry = _credentials.get(instance.hospital_no)
    cached = entry.value.hospital if entry is not None and entry.value is not None else None
    if acting_hospital.get() == instance.pk and cached is not None and cached.pk == instance.pk:
        names = [f.attname for f in Hospital._meta.concrete_fields if f.name not in MASTER_DATA_FIELDS]
        if all(getattr(cached, name) == getattr(instance, name) for name in names):
            values = {f: getattr(instance, f) for f in MASTER_DATA_FIELDS}
            transaction.on_commit(lambda: cached.__dict__.update(values))
            return
    _credential_changed(sender)


def connect_signals() -> None:
    post_save.connect(_credential_changed, sender=HospitalCredential, dispatch_uid="auth-credential-saved")
    post_delete.connect(_credential_changed, sender=HospitalCredential, dispatch_uid="auth-credential-deleted")
    post_save.connect(_hospital_saved, sender=Hospital, dispatch_uid="auth-hospital-saved")
    post_delete.connect(_credential_changed, sender=Hospital, dispatch_uid="auth-hospital-deleted")


# -- authentication ------------------------------------------------------------------------------------
def client_address(request: HttpRequest) -> str:
    """The caller's address; X-Real-IP is believed only from a proxy listed in TRUSTED_PROXIES,
    so nobody can claim an allow-listed address by sending the header themselves."""
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
    if forwarded and peer in settings.TRUSTED_PROXIES:
        return forwarded
    return peer


_UNREAD = "unread"


def check_secret(hospital_no: str, secret: str, *, generation: str | None = _UNREAD) -> Hospital | None:
    """The hospital whose secret this is (a copy of the cached one: the caller may change it), or None."""
    if generation is _UNREAD:
        generation = read_generation()
    credential = _credential(hospital_no, generation)
    if credential is None or not credential.check_secret(secret):
        return None
    return copy.copy(credential.hospital)


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """The user and secret of an HTTP Basic header; None without one, and ("", "") when it cannot
    be read, which matches no credential (so a garbled header never falls back to the allow-list)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ("", "")
    user, _, secret = decoded.partition(":")
    return (user, secret)


def any_allow_list_matches(address: str, *, generation: str | None = None) -> bool:
    return any(credential.allows_address(address) for credential in _address_lists(generation))


def claimed_identity(request: HttpRequest, *, username_token: tuple[str, str] | None = None) -> str:
    """Who the caller says it is before it is checked (the rate limit's key): the hospital of its
    credentials, or its address."""
    basic = basic_credentials(request)
    if basic is not None:
        return basic[0]
    if username_token is not None:
        return username_token[0]
    return client_address(request)


def authenticate(
    request: HttpRequest, *, username_token: tuple[str, str] | None = None, generation: str | None = _UNREAD
) -> Caller | None:
    """The caller, or None: wrong credentials never fall back to the allow-list.

    `generation` is the credential cache's token when the caller has already read it (center.py reads
    it with the rate limit); otherwise it is read here.
    """
    if generation is _UNREAD:
        generation = read_generation()
    address = client_address(request)
    basic = basic_credentials(request)
    if basic is not None:
        hospital = check_secret(*basic, generation=generation)
        return Caller(address, "basic", hospital, generation) if hospital else None
    if username_token is not None:
        hospital = check_secret(*username_token, generation=generation)
        return Caller(address, "wsse", hospital, generation) if hospital else None
    if any_allow_list_matches(address, generation=generation):
        return Caller(address, "ip", None, generation)
    return None
