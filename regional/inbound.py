"""The one pipeline every inbound message goes through, whatever its transport.

read (hardened) → validate against its description → authorise the hospital → replay check by
TransactionId → the registered handler, in one transaction → render → message log (masked).
Handlers are registered by the app that owns the rule, so this module imports none of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from lxml import etree

from regional.auth import Caller
from regional.errors import DomainError, NotOpen
from regional.messages import MessageInvalid, XmlReadError, read_xml
from regional.messages.catalog import Interface
from regional.messages.schema import Message
from regional.models import Hospital, InboundTransaction, MessageLog
from regional.observability import record_interface_call, transaction_id_var
from regional.pii import mask, mask_text

logger = logging.getLogger("regional.inbound")

Handler = Callable[..., dict]
HANDLERS: dict[tuple[str, str], Handler] = {}
LOG_TEXT_LIMIT = 64 * 1024


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
        outcome = Outcome(interface.response.render(on_error(interface, message, data)), False, hospital, message)
    except (OperationalError, InterfaceError) as exc:  # PostgreSQL away: the hospital retries later
        logger.warning("inbound %s: database unavailable (%s)", interface.name, type(exc).__name__)
        message = "平台数据库暂时不可用，请稍后重试"
        outcome = Outcome(interface.response.render(on_error(interface, message, data)), False, hospital, message)
    except Exception:
        reference = uuid.uuid4().hex[:12]
        logger.exception("inbound %s failed, reference %s", interface.name, reference)
        message = f"平台内部错误，请稍后重试（参考号{reference}）"
        outcome = Outcome(interface.response.render(on_error(interface, message, data)), False, hospital, message)
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


def masked_xml(source: etree._Element | str | bytes, message: Message | None) -> str:
    """The text of a message with every personal-data element masked, for the message log."""
    sensitive = message.sensitive_names() if message else {}
    root = source
    if not isinstance(source, etree._Element):
        try:
            root = read_xml(source)
        except XmlReadError:
            text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
            return _cap(mask_text(_mask_unparsed(text, sensitive)))
    else:
        root = etree.fromstring(etree.tostring(source))  # never alter the caller's tree
    for element in root.iter():
        if isinstance(element.tag, str) and element.text and element.tag.lower() in sensitive:
            element.text = mask(element.text.strip(), sensitive[element.tag.lower()])
    return _cap(mask_text(etree.tostring(root, encoding="unicode")))


def _mask_unparsed(text: str, sensitive: dict[str, str]) -> str:
    """Mask the personal elements of a message that does not parse, by their tags."""
    if not sensitive:
        return text
    names = "|".join(re.escape(name) for name in sensitive)
    pattern = re.compile(rf"(<\s*({names})\s*>)([^<]*)", re.IGNORECASE)
    return pattern.sub(lambda m: m.group(1) + mask(m.group(3).strip(), sensitive[m.group(2).lower()]), text)


def _cap(text: str) -> str:
    text = text.replace("\x00", "\\0")  # PostgreSQL text cannot hold NUL
    return text if len(text) <= LOG_TEXT_LIMIT else text[:LOG_TEXT_LIMIT] + "\n…（报文过长，已截断）"


def log_message(
    *,
    direction: str,
    interface: Interface,
    hospital: Hospital | None,
    hospital_no: str,
    transaction_id: str,
    ok: bool,
    error: str,
    started: float,
    remote_addr: str,
    request,
    response,
    result_code: str | None = None,
) -> None:
    """Store one call in the message log; a failure here never fails the call itself."""
    seconds = time.monotonic() - started
    record_interface_call(
        side=interface.side,
        interface=interface.name,
        hospital=hospital.hospital_no if hospital else hospital_no,
        direction=direction,
        ok=ok,
        seconds=seconds,
    )
    try:
        # Inside a caller's transaction, a savepoint: a failed log write must not poison it.
        # Outside one, a plain autocommit insert (no BEGIN/COMMIT round trips on the hot path).
        in_transaction = transaction.get_connection().in_atomic_block
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            _write_log(
                direction=direction,
                interface=interface,
                hospital=hospital,
                hospital_no=hospital_no,
                transaction_id=transaction_id,
                ok=ok,
                error=error,
                seconds=seconds,
                remote_addr=remote_addr,
                request=request,
                response=response,
                result_code=result_code,
            )
    except Exception:
        logger.exception("message log write failed for %s", interface.name)


def _write_log(
    *, direction, interface, hospital, hospital_no, transaction_id, ok, error, seconds, remote_addr, request, response,
    result_code,
) -> None:  # fmt: skip
    MessageLog.objects.create(
        direction=direction,
        side=interface.side,
        interface=interface.name,
        hospital=hospital,
        hospital_no=(hospital.hospital_no if hospital else hospital_no)[:36],
        transaction_id=(transaction_id or "")[:64],
        ok=ok,
        result_code=result_code if result_code is not None else ("0" if ok else "1"),
        error=_cap(mask_text(error))[:2000],
        duration_ms=int(seconds * 1000),
        remote_addr=remote_addr[:300],
        request_text=masked_xml(request, interface.request) if request is not None else "",
        response_text=masked_xml(response, interface.response) if response is not None else "",
    )
