"""The referral servlet's protocol (`/referral/api/SxzzAppServlet`): which service a body asks for,
who is calling, and the answers. Handlers only translate message fields to service calls.

Answers keep the request's root element: `referral` and `referral-apply` answer `result`
true/false, `referral-query` true (found) / false (none) / error (bad input), with `message` in
Chinese naming the fields (CONTRACT.md sections 3-5).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from lxml import etree

from referral import services
from regional import auth, inbound, messagelog, ratelimit
from regional.auth import Caller
from regional.messages import XmlReadError, read_xml
from regional.messages.catalog import REFERRAL_APPLY, REFERRAL_INTERFACES, REFERRAL_QUERY, REFERRAL_START, Interface
from regional.messages.reader import local_name
from regional.models import Hospital, MessageLog

BY_ROOT: dict[str, Interface] = {i.request.root.lower(): i for i in REFERRAL_INTERFACES}
UNAUTHORISED = "未授权：请使用HTTP Basic认证、在token中填写本院访问码，或从医院登记的IP地址调用"
REDACTED = "******"
# What the message log keeps of a refused call from nobody known: enough to recognise a partner's
# misconfiguration, too little for anyone to fill the database by posting.
ANONYMOUS_LOG_CHARS = 512
logger = logging.getLogger("referral.servlet")


class UnknownService(XmlReadError):
    """A well-formed body whose root element names no referral service."""


@dataclass
class Request:
    """A readable body: the service it asks for and its root element."""

    interface: Interface
    root: etree._Element

    def child_text(self, name: str) -> str:
        for child in self.root:
            if isinstance(child.tag, str) and local_name(child).lower() == name.lower():
                return (child.text or "").strip()
        return ""

    @property
    def hospital_no(self) -> str:
        return self.child_text(self.interface.hospital_field or "")

    def redacted_text(self) -> str:
        """The body with the `token` (a hospital's secret) blanked, for the pipeline and its log."""
        for child in self.root:
            if isinstance(child.tag, str) and local_name(child).lower() == "token" and (child.text or "").strip():
                child.text = REDACTED
        return etree.tostring(self.root, encoding="unicode")


def read_request(raw: bytes, *, charset: str | None) -> Request:
    """Parse the body (any declared encoding) and pick the service by its root element."""
    root = read_xml(raw, charset=charset)
    name = local_name(root)
    interface = BY_ROOT.get(name.lower())
    if interface is None:
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise UnknownService(f"不支持的服务：根元素<{shown}>，应为<referral>、<referral-query>或<referral-apply>")
    return Request(interface, root)


def caller_for(request: HttpRequest, message: Request) -> Caller | None:
    """HTTP Basic when sent; else the `token` element as the hospital's access code; else the
    allow-list. Wrong credentials never fall back to the allow-list (regional.auth)."""
    if auth.basic_credentials(request) is not None:
        return auth.authenticate(request)
    token = message.child_text("token")
    if token:
        hospital = auth.check_secret(message.hospital_no, token)
        return Caller(auth.client_address(request), "token", hospital) if hospital else None
    return auth.authenticate(request)


def failure(interface: Interface, message: str, data: dict | None = None) -> dict:
    return {"result": "error" if interface is REFERRAL_QUERY else "false", "message": message, "parm": ""}


def refuse(
    interface: Interface,
    message: str,
    *,
    address: str,
    body,
    started: float,
    hospital_no: str = "",
    hospital: Hospital | None = None,
    anonymous: bool = False,
) -> str:
    """An answer refusing the call before the pipeline runs (unreadable, unknown, unauthenticated), logged.

    For a caller nobody authenticated (`anonymous`) only the first ANONYMOUS_LOG_CHARS characters
    are kept, and the hospital number it claims is not believed.
    """
    text = interface.response.render(failure(interface, message))
    if isinstance(body, bytes):
        # Unreadable bytes are logged as text; PostgreSQL text columns refuse NUL characters.
        body = (
            body[: ANONYMOUS_LOG_CHARS * 4 if anonymous else None].decode("utf-8", "replace").replace("\x00", "\ufffd")
        )
    if anonymous and len(body) > ANONYMOUS_LOG_CHARS:
        body = messagelog.masked_xml(body, interface.request)  # masked before the cut: no half number survives
        body = f"{body[:ANONYMOUS_LOG_CHARS]}…（未认证的调用，仅保留前{ANONYMOUS_LOG_CHARS}个字符，共{len(body)}个）"
    messagelog.log_message(
        direction=MessageLog.INBOUND,
        interface=interface,
        hospital=hospital,
        hospital_no=hospital_no,
        transaction_id="",
        ok=False,
        error=message,
        started=started,
        remote_addr=address,
        request=body,
        response=text,
        failure=MessageLog.Failure.INPUT,  # the caller's message was refused, the servlet works
    )
    return text


def handle(request: HttpRequest, raw: bytes, *, charset: str | None) -> tuple[str, int]:
    """Body in, answer text and HTTP status out: read → pick the service → authenticate → rate
    limit → regional.inbound.process. Whatever happens, the answer is well-formed XML."""
    started = time.monotonic()
    address = auth.client_address(request)
    interface = REFERRAL_START
    try:
        message = read_request(raw, charset=charset)
        interface = message.interface
        caller = caller_for(request, message)
        body = message.redacted_text()
        if caller is None:
            text = refuse(
                interface, UNAUTHORISED, address=address, body=body, started=started,
                hospital_no=message.hospital_no[:36], anonymous=True,
            )  # fmt: skip
            return text, 200
        who = caller.hospital.hospital_no if caller.hospital else caller.address
        if not ratelimit.allow(f"hospital:{who}", limit=getattr(settings, "RATE_LIMIT_HOSPITAL_PER_MINUTE", 1200)):
            text = refuse(
                interface, "请求过于频繁：超过每分钟调用上限，请稍后重试", address=address, body=body,
                started=started, hospital_no=message.hospital_no, hospital=caller.hospital,
            )  # fmt: skip
            return text, 429
        outcome = inbound.process(interface, body, caller=caller, on_error=failure, success=lambda fields: fields)
        return outcome.response_text, 200
    except XmlReadError as exc:
        return refuse(interface, exc.message, address=address, body=raw, started=started, anonymous=True), 200
    except Exception:
        # Never a 500 page to a HIS: a well-formed answer with a reference to find the log entry.
        reference = uuid.uuid4().hex[:12]
        logger.exception("referral servlet failed, reference %s", reference)
        return interface.response.render(failure(interface, f"平台内部错误，请稍后重试（参考号{reference}）")), 200


# -- handlers: message fields → services → response fields ------------------------------------------


@inbound.register(REFERRAL_START)
def referral_start(*, hospital: Hospital, data: dict) -> dict:
    referral, code = services.referral_start(hospital=hospital, data=data)
    return {"result": "true", "message": "", "parm": services.referral_parm(code=code, referral=referral)}


@inbound.register(REFERRAL_QUERY)
def referral_query(*, hospital: Hospital, data: dict) -> dict:
    found = services.referral_query(hospital=hospital, data=data)
    if found is None:
        return {"result": "false", "message": "未查询到该患者转诊到本院的转诊单", "parm": ""}
    referral, code = found
    return {"result": "true", "message": "", "parm": services.referral_parm(code=code, referral=referral)}


@inbound.register(REFERRAL_APPLY)
def referral_apply(*, hospital: Hospital, data: dict) -> dict:
    services.referral_apply(hospital=hospital, data=data)
    return {"result": "true", "message": ""}
