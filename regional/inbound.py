"""The one pipeline every inbound message goes through, whatever its transport.

read (hardened) → validate against its description → authorise the hospital → the registered
handler, in one transaction, with its TransactionId's replay record and its message log entry
(masked, `regional.messagelog`, which the hospital client writes too) written in one statement at
the end of it → render. A repeated TransactionId finds the first one's record there and is answered
with the first answer, the handler's work rolled back.
Handlers are registered by the app that owns the rule, so this module imports none of them.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, transaction
from lxml import etree

from regional.auth import Caller, acting_hospital
from regional.errors import DomainError, NotOpen
from regional.messagelog import log_entry, log_message, record_call
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
    failure: str = ""  # a MessageLog.Failure, when not ok
    logged: bool = False  # its message log entry was written with its work


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
        log = _log_for(interface, hospital, data, tx_id, caller, started, root)
        text, logged = _apply(interface, handler, hospital, data, raw, success, log)
        outcome = Outcome(text, True, hospital, logged=logged)
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
    if outcome.logged:
        record_call(interface=interface, hospital=hospital, hospital_no=hospital.hospital_no, direction=MessageLog.INBOUND,
                    ok=True, seconds=time.monotonic() - started)  # fmt: skip
        return outcome
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


class _Repeat(Exception):
    """The TransactionId was applied before: the handler's work is rolled back."""


class _LogNotWritten(Exception):
    """The statement with the message log entry failed: the call is applied again without it."""


def _apply(interface, handler, hospital, data, raw, success, log) -> tuple[str, bool]:
    """Apply the message; the answer, and whether its message log entry was written with it."""
    tx_id = data.get("TransactionId")
    token = acting_hospital.set(hospital.pk)
    try:
        if not tx_id:
            with transaction.atomic():
                return interface.response.render(success(handler(hospital=hospital, data=data))), False
        body = raw.encode("utf-8") if isinstance(raw, str) else raw
        digest = hashlib.sha256(body.strip()).hexdigest()
        for entry in (log, None):  # without the log entry only when the statement with it failed
            try:
                return _apply_once(interface, handler, hospital, data, success, tx_id, digest, entry), entry is not None
            except _LogNotWritten:
                continue
            except _Repeat:
                break
            except (DomainError, IntegrityError):
                # A repeat that the handler refuses (already applied, or applied concurrently) is still
                # answered as the repeat it is; anything else is the handler's own answer.
                if _replay(interface, hospital, tx_id, digest) is None:
                    raise
                break
        stored = _replay(interface, hospital, tx_id, digest)
        if stored is None:  # the first attempt's record went away in between
            raise DomainError(f"访问流水号{tx_id}正在处理中，请稍后重试")
        return stored, False
    finally:
        acting_hospital.reset(token)


def _apply_once(interface, handler, hospital, data, success, tx_id, digest, log) -> str:
    with transaction.atomic():
        text = interface.response.render(success(handler(hospital=hospital, data=data)))
        record = InboundTransaction(
            hospital=hospital, transaction_id=tx_id, interface=interface.name, body_hash=digest, response_text=text
        )
        if log is None:
            if not _insert(record, None):
                raise _Repeat
            return text
        try:
            entry = log(text)
        except Exception:  # noqa: BLE001 - masking failed: the call goes on, logged without its texts
            logger.exception("message log entry of %s could not be prepared", interface.name)
            raise _LogNotWritten from None
        try:  # raised out of the atomic block, an error here rolls the whole call back
            inserted = _insert(record, entry)
        except (OperationalError, InterfaceError, IntegrityError):
            raise
        except DatabaseError:
            logger.exception("message log write failed for %s", interface.name)
            raise _LogNotWritten from None
        if not inserted:
            raise _Repeat
        return text


REPLAY_CONSTRAINT = "uniq_transaction_per_hospital"


def _insert(record: InboundTransaction, entry: MessageLog | None) -> bool:
    """Write the replay record and the log entry; False when the TransactionId was there already.

    On PostgreSQL in one statement; and when this is the outermost transaction, in the same round trip
    as its COMMIT (psycopg's pipeline mode): the row the handler updated stays locked for one round
    trip, as in a bare update, instead of two (a hot row, a hospital's own, serialises its callers).
    Django's commit at the end of the block then finds nothing left to commit, and runs the
    on-commit hooks as usual.
    """
    if connection.vendor != "postgresql":  # the embedded mode's SQLite has no INSERT inside WITH
        try:
            with transaction.atomic():
                record.save(force_insert=True)
        except IntegrityError:
            return False
        if entry is not None:
            entry.save(force_insert=True)
        return True
    commit_now = len(connection.atomic_blocks) == 1 and not connection.savepoint_ids
    tx_sql, params = _insert_sql(record)
    # A repeat is an error when committed at once (the transaction is then rolled back whole), and a
    # row not inserted otherwise (ON CONFLICT waits for a concurrent first attempt, then sees it).
    sql = f"WITH tx AS ({tx_sql}{'' if commit_now else ' ON CONFLICT (hospital_id, transaction_id) DO NOTHING'} RETURNING 1)"
    if entry is not None:
        log_sql, log_params = _insert_sql(entry)
        sql += f", entry AS ({log_sql} RETURNING 1)"
        params += log_params
    sql += " SELECT count(*) FROM tx"
    if not commit_now:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0] == 1
    raw = connection.connection
    try:
        with connection.wrap_database_errors, raw.pipeline(), psycopg.Cursor(raw) as cursor:
            # Server-side binding and a prepared statement: the text is the same for every call.
            cursor.execute(sql, params, prepare=True)
            raw.commit()
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) == REPLAY_CONSTRAINT:
            return False
        raise
    return True


_INSERTS: dict[type, tuple[str, list]] = {}


def _insert_sql(obj) -> tuple[str, list]:
    known = _INSERTS.get(type(obj))
    if known is None:  # the statement's text, once per model
        meta = obj._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        known = _INSERTS[type(obj)] = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})",
            fields,
        )
    sql, fields = known
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _log_for(interface, hospital, data, tx_id, caller, started, root) -> Callable[[str], MessageLog]:
    """The message log entry of a successful call, given its answer."""

    def entry(response_text: str) -> MessageLog:
        seconds = time.monotonic() - started
        hospital_no = (data.get(interface.hospital_field) if interface.hospital_field else "") or ""
        return log_entry(
            direction=MessageLog.INBOUND, interface=interface, hospital=hospital, hospital_no=hospital_no,
            transaction_id=tx_id, ok=True, error="", seconds=seconds, remote_addr=caller.address, request=root,
            response=response_text,
        )  # fmt: skip

    return entry


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
