"""The one way the platform calls a hospital: the hospital-side operations 3.1–3.8 and 6.1–6.2.

    from regional import hospital_client
    answer = hospital_client.call(hospital, "confirmRegistration", {"WorkId": ..., "Name": ...})

- Messages are built and checked from the catalog descriptions (side HOSPITAL). What is sent is
  validated before any network I/O (MessageInvalid); elements newer than the hospital's interface
  version are left out; TransactionId is generated when the message has one and none was given;
  HospitalNo is the hospital's. What comes back is validated too.
- Outcomes: the parsed response dict, or one of
  HospitalRefused (ResultCode ≠ 0; the hospital's ErrorMsg), HospitalUnavailable (timeout,
  connection error, HTTP 5xx, circuit open; temporary), HospitalBadAnswer (not XML, not the
  interface, HTTP 4xx). All are HospitalError(DomainError) with a Chinese message.
- Transport: zeep (`regional.hospital_wsdl`: one Client per hospital WSDL or generated WSDL, one
  shared requests.Session), a timeout on every call (HOSPITAL_CALL_TIMEOUT unless given).
- A circuit breaker per hospital (regional.circuit; HOSPITAL_CIRCUIT_FAILURES consecutive failures
  open it for HOSPITAL_CIRCUIT_RESET_SECONDS) makes a dead hospital fail fast. A refusal is an
  answer: it does not count as a failure.
- Every call, refused and failed ones included, is written to the message log (direction out,
  `regional.messagelog`) with personal data masked.
- A HospitalUnavailable says whether the call may nevertheless have reached the hospital
  (`may_have_arrived`): a lock that may exist there must be looked for and undone.

Never inside a database transaction: a call waits on the network for up to its timeout while row
locks would be held. `call` and `send_raw` refuse to start inside one (CalledInTransaction);
write the outbox row in the transaction and call after commit (`transaction.on_commit`, or a
Celery task).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from decimal import InvalidOperation

import requests
from django.conf import settings
from django.db import connection
from lxml import etree
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from zeep.exceptions import Error as ZeepError

from regional import hospital_wsdl
from regional.circuit import CircuitBreaker, CircuitOpen
from regional.errors import DomainError
from regional.messagelog import log_message
from regional.messages import MessageInvalid, Violation, XmlReadError, read_xml
from regional.messages.catalog import HOSPITAL, RESULT_CODE, Interface, interface
from regional.messages.reader import local_name
from regional.messages.schema import Field, Message
from regional.models import Hospital, MessageLog

__all__ = [
    "CalledInTransaction",
    "HospitalBadAnswer",
    "HospitalError",
    "HospitalRefused",
    "HospitalUnavailable",
    "call",
    "circuit_for",
    "new_transaction_id",
    "send_raw",
]

logger = logging.getLogger("regional.hospital_client")

# ResultCode and ErrorMsg only: read first, because a refusal often leaves required fields empty.
_STATUS = Message("Response", (RESULT_CODE, Field("ErrorMsg", "对错误/异常的详细描述信息")))


class HospitalError(DomainError):
    """A hospital-side call did not give a usable answer."""

    code = "hospital_error"
    http_status = 502
    temporary = False

    def __init__(self, message: str, *, hospital_no: str = "", interface: str = "", transaction_id: str = ""):
        super().__init__(message)
        self.hospital_no = hospital_no
        self.interface = interface
        self.transaction_id = transaction_id


class HospitalRefused(HospitalError):
    """The hospital answered ResultCode ≠ 0; `error_msg` is its reason, as it gave it."""

    code = "hospital_refused"
    http_status = 409

    def __init__(self, message: str, *, error_msg: str = "", result_code: int = 1, response: dict | None = None, **kw):
        super().__init__(message, **kw)
        self.error_msg = error_msg
        self.result_code = result_code
        self.response = response or {}


class HospitalUnavailable(HospitalError):
    """Timeout, connection error, HTTP 5xx or an open circuit: try again later.

    `may_have_arrived`: whether the call may nevertheless have reached the hospital (so a lock
    may exist there). An open circuit, a missing address or a connection never established sent
    nothing; a read timeout or an HTTP 5xx may have been applied by the hospital after all.
    """

    code = "hospital_unavailable"
    http_status = 503
    temporary = True

    def __init__(self, message: str, *, may_have_arrived: bool = True, **kw):
        super().__init__(message, **kw)
        self.may_have_arrived = may_have_arrived


class HospitalBadAnswer(HospitalError):
    """The hospital answered something that is not its interface (not XML, wrong shape, HTTP 4xx)."""

    code = "hospital_bad_answer"
    http_status = 502


class CalledInTransaction(RuntimeError):
    """A hospital was about to be called inside a database transaction: a programming error."""


# -- public API -----------------------------------------------------------------------------------


def call(hospital: Hospital, name: str, data: dict, *, timeout: float | None = None) -> dict:
    """Call hospital-side operation `name` (spec name; getPromiseNotice is 3.5) with `data`.

    `data` keys are the specification's element names. Returns the validated response fields.
    Raises MessageInvalid (nothing sent) or a HospitalError; CalledInTransaction inside a transaction.
    """
    _refuse_in_transaction()
    iface = _interface(name)
    payload = dict(data)
    fields = {f.name for f in iface.request.fields}
    if "TransactionId" in fields and not payload.get("TransactionId"):
        payload["TransactionId"] = new_transaction_id()
    if "HospitalNo" in fields:
        payload["HospitalNo"] = hospital.hospital_no
    version = hospital.interface_version or None
    encoding = hospital.soap_encoding or "UTF-8"
    try:
        text = iface.request.render(payload, version=version, encoding=encoding)
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise MessageInvalid([Violation("", f"无法生成{name}报文：{exc}")]) from exc
    # What goes on the wire obeys the description, in the hospital's byte lengths and interface
    # version (no 居民健康卡 to a V2.0 hospital), or nothing goes.
    iface.request.parse(read_xml(text), encoding=encoding, version=version)
    return _exchange(hospital, iface, text, payload.get("TransactionId") or "", timeout)


def send_raw(hospital: Hospital, name: str, text: str, *, timeout: float | None = None) -> dict:
    """Send `text` as the message of operation `name` without validating it (conformance checks
    send deliberately invalid messages). Outcomes, logging and the circuit are as for `call`."""
    _refuse_in_transaction()
    iface = _interface(name)
    match = re.search(r"<TransactionId>\s*([^<\s]{1,64})\s*</TransactionId>", text, re.IGNORECASE)
    return _exchange(hospital, iface, text, match.group(1) if match else "", timeout)


def circuit_for(hospital: Hospital) -> CircuitBreaker:
    """The circuit breaker guarding calls to `hospital`."""
    call_timeout = float(settings.HOSPITAL_CALL_TIMEOUT)
    return CircuitBreaker(
        f"hospital:{hospital.hospital_no}",
        failures=max(int(settings.HOSPITAL_CIRCUIT_FAILURES), 1),
        reset_seconds=float(settings.HOSPITAL_CIRCUIT_RESET_SECONDS),
        trial_seconds=call_timeout + 5,
    )


def new_transaction_id() -> str:
    return uuid.uuid4().hex


# -- the exchange ---------------------------------------------------------------------------------


def _refuse_in_transaction() -> None:
    # Row locks would be held for as long as the hospital takes to answer (up to the timeout).
    # pytest-django's non-transactional `db` tests run inside a transaction too: tests that reach
    # a hospital use `transactional_db` / `django_db(transaction=True)`.
    if connection.in_atomic_block:
        raise CalledInTransaction("医院接口调用不能在数据库事务中进行（请在提交后调用）")


def _interface(name: str) -> Interface:
    try:
        return interface(HOSPITAL, name)
    except KeyError:
        raise ValueError(f"不是医院端接口：{name}") from None


def _exchange(hospital: Hospital, iface: Interface, text: str, tx_id: str, timeout: float | None) -> dict:
    started = time.monotonic()
    timeout = float(timeout if timeout is not None else settings.HOSPITAL_CALL_TIMEOUT)
    context = {"hospital_no": hospital.hospital_no, "interface": iface.name, "transaction_id": tx_id}
    breaker = circuit_for(hospital)
    answer: str | None = None
    try:
        if not hospital.endpoint_url and not hospital.wsdl_url:
            raise HospitalUnavailable(
                f"医院{hospital.hospital_no}未配置医院端接口地址", may_have_arrived=False, **context
            )
        try:
            breaker.before_call()
        except CircuitOpen as exc:
            raise HospitalUnavailable(
                f"医院{hospital.hospital_no}接口连续失败，已暂停调用（熔断中，约{max(exc.retry_after, 1):.0f}秒后重试）",
                may_have_arrived=False,
                **context,
            ) from exc
        try:
            answer = _post(hospital, iface, text, timeout, context)
            result = _read(iface, answer, context)
        except HospitalRefused:
            breaker.record_success()  # a refusal is an answer: the hospital works
            raise
        except HospitalError:
            breaker.record_failure()
            raise
        except Exception as exc:  # noqa: BLE001 — callers handle the HospitalError family only
            reference = uuid.uuid4().hex[:12]
            logger.exception("call %s to %s failed, reference %s", iface.name, hospital.hospital_no, reference)
            breaker.record_failure()
            raise HospitalBadAnswer(f"调用医院接口{iface.name}时发生意外错误（参考号{reference}）", **context) from exc
        breaker.record_success()
    except HospitalError as exc:
        refused = isinstance(exc, HospitalRefused)
        code = str(exc.result_code) if refused else ""
        failure = MessageLog.Failure.REFUSED if refused else MessageLog.Failure.HOSPITAL
        _log(
            hospital,
            iface,
            tx_id,
            started,
            text,
            answer,
            ok=False,
            error=exc.message,
            result_code=code,
            failure=failure,
        )
        raise
    _log(hospital, iface, tx_id, started, text, answer, ok=True, error="", result_code="0")
    return result


def _log(hospital, iface, tx_id, started, text, answer, *, ok, error, result_code, failure="") -> None:
    log_message(
        direction=MessageLog.OUTBOUND,
        interface=iface,
        hospital=hospital,
        hospital_no=hospital.hospital_no,
        transaction_id=tx_id,
        ok=ok,
        error=error,
        started=started,
        remote_addr=hospital.endpoint_url or hospital.wsdl_url,
        request=text,
        response=answer,
        result_code=result_code,
        failure=failure,
    )


def _post(hospital: Hospital, iface: Interface, text: str, timeout: float, context: dict) -> str:
    try:
        service = hospital_wsdl.service(hospital, timeout)
    except hospital_wsdl.WsdlUnavailable as exc:
        cause = exc.__cause__
        arrived = not (isinstance(cause, requests.ConnectionError) and _never_connected(cause))
        raise HospitalUnavailable(exc.message, may_have_arrived=arrived, **context) from cause
    except hospital_wsdl.WsdlUnusable as exc:
        raise HospitalBadAnswer(exc.message, **context) from exc.__cause__
    try:
        operation = getattr(service, iface.name)
    except AttributeError:
        raise HospitalBadAnswer(f"医院WSDL中没有接口{iface.name}", **context) from None
    token = hospital_wsdl.call_timeout.set(timeout)
    try:
        response = operation(text)
    except requests.ConnectionError as exc:
        arrived = not _never_connected(exc)
        if _is_timeout(exc):
            raise HospitalUnavailable(
                f"调用医院接口{iface.name}超时（{timeout:g}秒）", may_have_arrived=arrived, **context
            ) from exc
        raise HospitalUnavailable(
            f"无法连接医院接口{iface.name}（{_reason(exc)}）", may_have_arrived=arrived, **context
        ) from exc
    except requests.Timeout as exc:
        raise HospitalUnavailable(f"调用医院接口{iface.name}超时（{timeout:g}秒）", **context) from exc
    except requests.RequestException as exc:
        raise HospitalUnavailable(f"调用医院接口{iface.name}失败（{type(exc).__name__}）", **context) from exc
    except (ZeepError, ValueError, TypeError) as exc:
        raise HospitalBadAnswer(f"无法按医院WSDL生成{iface.name}请求（{exc}）", **context) from exc
    finally:
        hospital_wsdl.call_timeout.reset(token)
    status = response.status_code
    if status >= 400:
        code, fault = _fault(response.content)
        # SOAP 1.1 says 500 for every fault; many servers (ours included) answer a client fault with 400.
        if code.rsplit(":", 1)[-1].split(".")[0] in {"Client", "Sender"}:
            # The hospital says our envelope is wrong for it: its namespace or part name is misconfigured.
            raise HospitalBadAnswer(
                f"医院接口{iface.name}拒绝了SOAP请求（SOAP Fault：{fault}），请检查命名空间、参数名和SOAP版本配置",
                **context,
            )
    if status >= 500:
        detail = f"（SOAP Fault：{fault}）" if fault else ""
        raise HospitalUnavailable(f"医院接口{iface.name}返回HTTP {status}{detail}", **context)
    if status >= 400:
        raise HospitalBadAnswer(f"医院接口{iface.name}返回HTTP {status}（请检查接口地址和认证）", **context)
    return _result_string(response.content, context)


def _read(iface: Interface, text: str, context: dict) -> dict:
    try:
        root = read_xml(text)
    except XmlReadError as exc:
        raise HospitalBadAnswer(f"医院应答不是格式正确的XML：{exc.message}", **context) from exc
    try:
        status = _STATUS.parse(root)
    except MessageInvalid as exc:
        raise HospitalBadAnswer(f"医院应答不符合接口规范：{exc.summary()}", **context) from exc
    if status["ResultCode"] != 0:
        reason = (status["ErrorMsg"] or "医院未说明原因")[:256]
        raise HospitalRefused(
            f"医院拒绝了{iface.name}请求：{reason}",
            error_msg=status["ErrorMsg"] or "",
            result_code=status["ResultCode"],
            response=status,
            **context,
        )
    try:
        return iface.response.parse(root)
    except MessageInvalid as exc:
        raise HospitalBadAnswer(f"医院应答不符合接口规范：{exc.summary()}", **context) from exc


# -- SOAP envelopes -------------------------------------------------------------------------------

_SOAP_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def _envelope(content: bytes, context: dict) -> etree._Element:
    if re.search(rb"<!(DOCTYPE|ENTITY)", content[:4096], re.IGNORECASE):
        raise HospitalBadAnswer("医院应答包含DTD或实体声明，已拒绝", **context)
    try:
        return etree.fromstring(content, etree.XMLParser(**_SOAP_PARSER_OPTIONS))
    except etree.XMLSyntaxError as exc:
        raise HospitalBadAnswer(f"医院应答不是SOAP报文（{(exc.msg or '').split(',')[0]}）", **context) from exc


def _body(root: etree._Element) -> etree._Element | None:
    return next((e for e in root if isinstance(e.tag, str) and local_name(e) == "Body"), None)


def _result_string(content: bytes, context: dict) -> str:
    """The single string a `String op(String xml)` operation returns, whatever its element is named."""
    body = _body(_envelope(content, context))
    wrapper = next((e for e in body if isinstance(e.tag, str)), None) if body is not None else None
    if wrapper is None:
        raise HospitalBadAnswer("医院应答的SOAP Body为空", **context)
    if local_name(wrapper) == "Fault":
        raise HospitalBadAnswer(f"医院应答为SOAP Fault：{_fault_text(wrapper)}", **context)
    part = next((e for e in wrapper if isinstance(e.tag, str)), None)
    if part is None:
        raise HospitalBadAnswer("医院应答中没有返回值", **context)
    if len(part):  # the message as elements rather than as a string
        return etree.tostring(next(e for e in part if isinstance(e.tag, str)), encoding="unicode")
    return part.text or ""


def _fault_text(fault: etree._Element) -> str:
    for element in fault.iter():
        if isinstance(element.tag, str) and local_name(element) in {"faultstring", "Text"}:
            return (element.text or "").strip()[:200]
    return ""


def _fault_code(fault: etree._Element) -> str:
    for element in fault.iter():
        if isinstance(element.tag, str) and local_name(element) in {"faultcode", "Value"}:
            return (element.text or "").strip()
    return ""


def _fault(content: bytes) -> tuple[str, str]:
    """(faultcode, faultstring) of a SOAP 1.1 or 1.2 fault envelope; empty strings otherwise."""
    try:
        root = etree.fromstring(content, etree.XMLParser(**_SOAP_PARSER_OPTIONS))
    except etree.XMLSyntaxError:
        return "", ""
    body = _body(root)
    fault = (
        next((e for e in body if isinstance(e.tag, str) and local_name(e) == "Fault"), None)
        if body is not None
        else None
    )
    return (_fault_code(fault), _fault_text(fault)) if fault is not None else ("", "")


def _is_timeout(exc: requests.ConnectionError) -> bool:
    # With urllib3 retries configured, requests reports a read timeout as a ConnectionError
    # wrapping MaxRetryError(reason=ReadTimeoutError).
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError):  # urllib3 derives it from ConnectTimeoutError
        return False
    return isinstance(reason, TimeoutError | ReadTimeoutError | ConnectTimeoutError)


def _never_connected(exc: requests.ConnectionError) -> bool:
    # Refused or timed out while connecting (NewConnectionError derives from ConnectTimeoutError):
    # nothing was sent. Any other connection error may have lost the answer, not the request.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ConnectTimeoutError)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "连接被拒绝"
    if "name or service not known" in text.lower() or "nodename" in text.lower():
        return "域名无法解析"
    return "连接失败"
