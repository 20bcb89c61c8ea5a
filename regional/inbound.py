"""The one pipeline every inbound message goes through, whatever its transport.

read (hardened) → validate against its description → authorise the hospital → replay check by
TransactionId → the registered handler, in one transaction → render → message log (masked,
`regional.messagelog`, which the hospital client writes too).
Handlers are registered by the app that owns the rule, so this module imports none of them.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from lxml import etree

from regional.auth import Caller
from regional.errors import DomainError, NotOpen
from regional.messagelog import log_message
from regional.messages import MessageInvalid, XmlReadError, read_xml
from regional.messages.catalog import Interface
from regional.models import Hospital, InboundTransaction, MessageLog
from regional.observability import transaction_id_var

logger = logging.getLogger("regional.inbound")

Handler = Callable[..., dict]
HANDLERS: dict[tuple[str, str], Handler] = {}


def register(interface: Interface) -> Callable[[Handler], Handler]:
    """Declare the function that applies `interface`: `fn(*, hospital, data) -> response fields`."""

    def decorator(fn: Handler) -> Handler:
        HANDLERS[interface.key] = fn
        return fn

    return decorator


@dataclass
class Outcome:
    response_text: str
    ok: bool
    hospital: Hospital | None
    error: str = ""
    failure: str = ""


ErrorRenderer = Callable[[Interface, str, dict], dict]


def center_error(interface: Interface, message: str, data: dict) -> dict:
    fields = {"ResultCode": 1, "ErrorMsg": message}
    if data.get("HospitalNo"):
        fields["HospitalNo"] = data["HospitalNo"]
    return fields


def process(
    interface: Interface,
    raw: str | bytes,
    *,
    caller: Caller,
    charset: str | None = None,
    on_error: ErrorRenderer = center_error,
    success: Callable[[dict], dict] = lambda fields: {"ResultCode": 0, "ErrorMsg": "", **fields},
) -> Outcome:
    started = time.monotonic()
    data: dict = {}
    root = None
    hospital: Hospital | None = caller.hospital
    tx_id = ""
    try:
        root = read_xml(raw, charset=charset)
        handler = HANDLERS.get(interface.key)
        if handler is None:
            raise NotOpen(f"接口{interface.name}（{interface.section} {interface.title}）未开通")
        data = interface.request.parse(root)
        tx_id = data.get("TransactionId") or ""
        transaction_id_var.set(tx_id)
        hospital = caller.hospital_for(data.get(interface.hospital_field) if interface.hospital_field else None)
        text = _apply(interface, handler, hospital, data, raw, success)
        outcome = Outcome(text, True, hospital)
    except (XmlReadError, MessageInvalid, DomainError) as exc:
        message = exc.summary() if isinstance(exc, MessageInvalid) else exc.message
        if root is not None and not data:
            data = _best_effort_header(root)
        # The hospital's own message was refused; an interface not switched on is the platform's doing.
        failure = MessageLog.Failure.PLATFORM if isinstance(exc, NotOpen) else MessageLog.Failure.INPUT
        outcome = Outcome(
            interface.response.render(on_error(interface, message, data)), False, hospital, message, failure
        )
    except (OperationalError, InterfaceError) as exc:  # PostgreSQL away: the hospital retries later
        logger.warning("inbound %s: database unavailable (%s)", interface.name, type(exc).__name__)
        message = "平台数据库暂时不可用，请稍后重试"
        outcome = Outcome(
            interface.response.render(on_error(interface, message, data)), False, hospital, message,
            MessageLog.Failure.PLATFORM,
        )  # fmt: skip
    except Exception:
        reference = uuid.uuid4().hex[:12]
        logger.exception("inbound %s failed, reference %s", interface.name, reference)
        message = f"平台内部错误，请稍后重试（参考号{reference}）"
        outcome = Outcome(
            interface.response.render(on_error(interface, message, data)), False, hospital, message,
            MessageLog.Failure.PLATFORM,
        )  # fmt: skip
    log_message(
        direction=MessageLog.INBOUND,
        interface=interface,
        hospital=outcome.hospital,
        hospital_no=(data.get(interface.hospital_field) if interface.hospital_field else "") or "",
        transaction_id=tx_id,
        ok=outcome.ok,
        error=outcome.error,
        started=started,
        remote_addr=caller.address,
        request=root if root is not None else raw,
        response=outcome.response_text,
        failure=outcome.failure,
    )
    return outcome


def _apply(interface, handler, hospital, data, raw, success) -> str:
    tx_id = data.get("TransactionId")
    if not tx_id:
        with transaction.atomic():
            return interface.response.render(success(handler(hospital=hospital, data=data)))
    body = raw.encode("utf-8") if isinstance(raw, str) else raw
    digest = hashlib.sha256(body.strip()).hexdigest()
    stored = _replay(interface, hospital, tx_id, digest)
    if stored is not None:
        return stored
    try:
        with transaction.atomic():
            text = interface.response.render(success(handler(hospital=hospital, data=data)))
            InboundTransaction.objects.create(
                hospital=hospital, transaction_id=tx_id, interface=interface.name, body_hash=digest, response_text=text
            )
            return text
    except IntegrityError:
        # The same TransactionId committed concurrently: answer as a repeat of it.
        stored = _replay(interface, hospital, tx_id, digest)
        if stored is None:
            raise
        return stored


def _replay(interface: Interface, hospital: Hospital, tx_id: str, digest: str) -> str | None:
    previous = InboundTransaction.objects.filter(hospital=hospital, transaction_id=tx_id).first()
    if previous is None:
        return None
    if previous.body_hash != digest or previous.interface != interface.name:
        raise DomainError(f"访问流水号{tx_id}已用于另一报文（{previous.interface}），请使用新的访问流水号")
    return previous.response_text


def _best_effort_header(root: etree._Element) -> dict:
    found = {}
    for child in root:
        if isinstance(child.tag, str) and child.tag.lower() in {"hospitalno", "transactionid"}:
            key = "HospitalNo" if child.tag.lower() == "hospitalno" else "TransactionId"
            found[key] = (child.text or "").strip()[:36]
    return found
