"""Who is calling (CONTRACT.md section 4): HTTP Basic, WS-Security UsernameToken, the referral
`token`, or an address on a hospital's allow-list; and whether the message's hospital is theirs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from regional.errors import Forbidden
from regional.models import Hospital, HospitalCredential


@dataclass(frozen=True)
class Caller:
    """An authenticated party: a hospital proven by its secret, or an address to be checked
    against the allow-list of the hospital its message names."""

    address: str
    method: str
    hospital: Hospital | None = None

    def hospital_for(self, hospital_no: str | None) -> Hospital:
        """The hospital this caller may act for, given the code inside its message."""
        if not hospital_no:
            raise Forbidden("报文未填写医院编号，无法确认调用方")
        if self.hospital is not None:
            if self.hospital.hospital_no != hospital_no:
                raise Forbidden(f"报文中的医院编号{hospital_no}与认证的医院{self.hospital.hospital_no}不一致")
            return self.hospital
        credential = (
            HospitalCredential.objects.select_related("hospital")
            .filter(hospital__hospital_no=hospital_no, is_active=True)
            .first()
        )
        if credential is None or not credential.allows_address(self.address):
            raise Forbidden(f"未授权：地址{self.address}不在医院{hospital_no}的白名单中")
        return credential.hospital


def client_address(request: HttpRequest) -> str:
    """The caller's address; X-Real-IP is believed only from a proxy listed in TRUSTED_PROXIES,
    so nobody can claim an allow-listed address by sending the header themselves."""
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
    if forwarded and peer in settings.TRUSTED_PROXIES:
        return forwarded
    return peer


def check_secret(hospital_no: str, secret: str) -> Hospital | None:
    credential = (
        HospitalCredential.objects.select_related("hospital")
        .filter(hospital__hospital_no=hospital_no, is_active=True)
        .first()
    )
    if credential is None or not credential.check_secret(secret):
        return None
    return credential.hospital


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


def any_allow_list_matches(address: str) -> bool:
    for credential in HospitalCredential.objects.filter(is_active=True).exclude(allowed_networks=""):
        if credential.allows_address(address):
            return True
    return False


def authenticate(request: HttpRequest, *, username_token: tuple[str, str] | None = None) -> Caller | None:
    """The caller, or None: wrong credentials never fall back to the allow-list."""
    address = client_address(request)
    basic = basic_credentials(request)
    if basic is not None:
        hospital = check_secret(*basic)
        return Caller(address, "basic", hospital) if hospital else None
    if username_token is not None:
        hospital = check_secret(*username_token)
        return Caller(address, "wsse", hospital) if hospital else None
    if any_allow_list_matches(address):
        return Caller(address, "ip")
    return None
