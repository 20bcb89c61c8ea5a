"""The message log: one row per message exchanged with a hospital, in either direction (the
inbound pipeline and the hospital client both write it), with personal data masked.

A failure to write the log never fails the exchange itself.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import re
import time

from django.db import transaction
from lxml import etree

from regional.messages import XmlReadError, read_xml
from regional.messages.catalog import Interface
from regional.messages.reader import local_name
from regional.messages.schema import Message
from regional.models import Hospital, MessageLog
from regional.observability import record_interface_call
from regional.pii import mask, mask_text

logger = logging.getLogger("regional.messagelog")

LOG_TEXT_LIMIT = 64 * 1024


def masked_xml(source: etree._Element | str | bytes, message: Message | None) -> str:
    """The text of a message with every personal-data element masked, for the message log.

    The log keeps at most LOG_TEXT_LIMIT characters, so of a big message (a 10,000-record schedule
    push) only its head is copied, masked and serialised, and a note says how much was left out: the
    cost follows what is kept, not the size of the message. The whole message is still identified by
    its TransactionId, whose body hash the replay check stores (InboundTransaction.body_hash).
    """
    sensitive = message.sensitive_names() if message else {}
    root = source
    if not isinstance(source, etree._Element):
        try:
            root = read_xml(source)
        except XmlReadError:
            text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
            return _cap(mask_text(_mask_unparsed(text, sensitive)))
    budget = LOG_TEXT_LIMIT // 32  # elements: about what the log keeps of a record list
    note = ""
    small = sum(1 for _ in itertools.islice(root.iter(), budget + 1)) <= budget
    if small and not sensitive:  # nothing to mask by element: the tree as it is
        return _cap(mask_text(etree.tostring(root, encoding="unicode")))
    if small:
        root = etree.fromstring(etree.tostring(root))  # a copy: the caller's tree is never altered
    else:
        # Whole children while they fit the budget; a big container that does not fit is entered,
        # and from the first child that does not fit on, the message is left out of the log.
        head = etree.Element(root.tag, dict(root.attrib), nsmap=root.nsmap)
        head.text = root.text
        target, current, kept = head, root, 1
        while current is not None:
            container, copied = None, 0
            for child in current:
                room = budget - kept
                size = sum(1 for _ in itertools.islice(child.iter(), room + 1)) if len(child) else 1
                if size <= room:
                    target.append(copy.deepcopy(child))
                    kept, copied = kept + size, copied + 1
                    continue
                if size > budget // 2 and room > 1:  # a record list, not one of its records
                    container = child
                    shell = etree.SubElement(target, child.tag, dict(child.attrib), nsmap=child.nsmap)
                    shell.text = child.text
                    target, kept = shell, kept + 1
                break
            if container is None:
                note = f"\n…（报文过长，日志只保留开头部分：<{local_name(current)}>的{len(current)}项中记录了前{copied}项，其后的内容未记录）"
            current = container
        root = head
    for element in root.iter():
        if isinstance(element.tag, str) and element.text and element.tag.lower() in sensitive:
            element.text = mask(element.text.strip(), sensitive[element.tag.lower()])
    return _cap(mask_text(etree.tostring(root, encoding="unicode"))) + note


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
    failure: str = "",
) -> None:
    """Store one call in the message log; a failure here never fails the call itself.

    `failure` is a MessageLog.Failure: whose fault a failed call was (the dashboard counts a
    hospital's own invalid messages apart from broken interfaces)."""
    seconds = time.monotonic() - started
    record_call(interface=interface, hospital=hospital, hospital_no=hospital_no, direction=direction, ok=ok,
                seconds=seconds)  # fmt: skip
    try:
        entry = log_entry(
            direction=direction, interface=interface, hospital=hospital, hospital_no=hospital_no,
            transaction_id=transaction_id, ok=ok, error=error, seconds=seconds, remote_addr=remote_addr,
            request=request, response=response, result_code=result_code, failure="" if ok else failure,
        )  # fmt: skip
        # Inside a caller's transaction, a savepoint: a failed log write must not poison it.
        # Outside one, a plain autocommit insert (no BEGIN/COMMIT round trips on the hot path).
        in_transaction = transaction.get_connection().in_atomic_block
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            entry.save(force_insert=True)
    except Exception:
        logger.exception("message log write failed for %s", interface.name)


def record_call(
    *, interface: Interface, hospital: Hospital | None, hospital_no: str, direction: str, ok: bool, seconds: float
) -> None:
    """The call's metrics (Prometheus), for a log entry written by `log_message` or by its caller."""
    record_interface_call(
        side=interface.side,
        interface=interface.name,
        hospital=hospital.hospital_no if hospital else hospital_no,
        direction=direction,
        ok=ok,
        seconds=seconds,
    )


def log_entry(
    *, direction, interface, hospital, hospital_no, transaction_id, ok, error, seconds, remote_addr, request, response,
    result_code=None, failure="",
) -> MessageLog:  # fmt: skip
    """The unsaved log entry of one call, masked and capped: `log_message` saves it, and the inbound
    pipeline writes it in the same statement as the call's replay record (regional.inbound)."""
    return MessageLog(
        direction=direction,
        side=interface.side,
        interface=interface.name,
        hospital=hospital,
        hospital_no=(hospital.hospital_no if hospital else hospital_no)[:36],
        transaction_id=(transaction_id or "")[:64],
        ok=ok,
        result_code=result_code if result_code is not None else ("0" if ok else "1"),
        error=_cap(mask_text(error))[:2000],
        failure=failure,
        duration_ms=int(seconds * 1000),
        remote_addr=remote_addr[:300],
        request_text=masked_xml(request, interface.request) if request is not None else "",
        response_text=masked_xml(response, interface.response) if response is not None else "",
    )
