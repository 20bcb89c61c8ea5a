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
- Transport: zeep, one Client per hospital WSDL (or per generated WSDL, when the hospital has none
  and is configured by namespace / part name / SOAP version / encoding), one shared
  requests.Session (connection reuse), a timeout on every call (HOSPITAL_CALL_TIMEOUT unless given).
- A circuit breaker per hospital (regional.circuit; HOSPITAL_CIRCUIT_FAILURES consecutive failures
  open it for HOSPITAL_CIRCUIT_RESET_SECONDS) makes a dead hospital fail fast. A refusal is an
  answer: it does not count as a failure.
- Every call, refused and failed ones included, is written to the message log (direction out)
  with personal data masked.

Callers' rule: never call a hospital inside a database transaction. A call waits on the network
for up to its timeout while row locks would be held; write the outbox row in the transaction and
call after commit (`transaction.on_commit`, or a Celery task).
"""

from __future__ import annotations

import contextvars
import io
import logging
import re
import threading
import time
import uuid
from decimal import InvalidOperation
from xml.sax.saxutils import quoteattr

import requests
import zeep
from django.conf import settings
from lxml import etree
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry
from zeep.exceptions import Error as ZeepError
from zeep.transports import Transport
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

from regional.circuit import CircuitBreaker, CircuitOpen
from regional.errors import DomainError
from regional.inbound import log_message
from regional.messages import MessageInvalid, Violation, XmlReadError, read_xml
from regional.messages.catalog import HOSPITAL, RESULT_CODE, Interface, interface
from regional.messages.reader import local_name
from regional.messages.schema import Field, Message
from regional.models import Hospital, MessageLog

__all__ = [
    "DEFAULT_NAMESPACE",
    "HospitalBadAnswer",
    "HospitalError",
    "HospitalRefused",
    "HospitalUnavailable",
    "call",
    "circuit_for",
    "clear_clients",
    "generated_wsdl",
    "new_transaction_id",
    "send_raw",
]

logger = logging.getLogger("regional.hospital_client")

# The namespace of the reference hospital interface (the sandbox hospital serves it); assumed for
# a hospital configured with neither a WSDL nor a namespace.
DEFAULT_NAMESPACE = "http://regional.health/ws/his"

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
    """Timeout, connection error, HTTP 5xx or an open circuit: try again later."""

    code = "hospital_unavailable"
    http_status = 503
    temporary = True


class HospitalBadAnswer(HospitalError):
    """The hospital answered something that is not its interface (not XML, wrong shape, HTTP 4xx)."""

    code = "hospital_bad_answer"
    http_status = 502


# -- public API -----------------------------------------------------------------------------------


def call(hospital: Hospital, name: str, data: dict, *, timeout: float | None = None) -> dict:
    """Call hospital-side operation `name` (spec name; getPromiseNotice is 3.5) with `data`.

    `data` keys are the specification's element names. Returns the validated response fields.
    Raises MessageInvalid (nothing sent) or a HospitalError.
    """
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


def clear_clients() -> None:
    """Forget the cached zeep clients (each holds its hospital's WSDL); they are rebuilt on the next call."""
    with _lock:
        _clients.clear()
        _services.clear()


# -- the exchange ---------------------------------------------------------------------------------


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
            raise HospitalUnavailable(f"医院{hospital.hospital_no}未配置医院端接口地址", **context)
        try:
            breaker.before_call()
        except CircuitOpen as exc:
            raise HospitalUnavailable(
                f"医院{hospital.hospital_no}接口连续失败，已暂停调用（熔断中，约{max(exc.retry_after, 1):.0f}秒后重试）",
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
        code = str(exc.result_code) if isinstance(exc, HospitalRefused) else ""
        _log(hospital, iface, tx_id, started, text, answer, ok=False, error=exc.message, result_code=code)
        raise
    _log(hospital, iface, tx_id, started, text, answer, ok=True, error="", result_code="0")
    return result


def _log(hospital, iface, tx_id, started, text, answer, *, ok, error, result_code) -> None:
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
    )


def _post(hospital: Hospital, iface: Interface, text: str, timeout: float, context: dict) -> str:
    service = _service(hospital, timeout, context)
    try:
        operation = getattr(service, iface.name)
    except AttributeError:
        raise HospitalBadAnswer(f"医院WSDL中没有接口{iface.name}", **context) from None
    token = _call_timeout.set(timeout)
    try:
        response = operation(text)
    except requests.ConnectionError as exc:
        if _is_timeout(exc):
            raise HospitalUnavailable(f"调用医院接口{iface.name}超时（{timeout:g}秒）", **context) from exc
        raise HospitalUnavailable(f"无法连接医院接口{iface.name}（{_reason(exc)}）", **context) from exc
    except requests.Timeout as exc:
        raise HospitalUnavailable(f"调用医院接口{iface.name}超时（{timeout:g}秒）", **context) from exc
    except requests.RequestException as exc:
        raise HospitalUnavailable(f"调用医院接口{iface.name}失败（{type(exc).__name__}）", **context) from exc
    except (ZeepError, ValueError, TypeError) as exc:
        raise HospitalBadAnswer(f"无法按医院WSDL生成{iface.name}请求（{exc}）", **context) from exc
    finally:
        _call_timeout.reset(token)
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


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "连接被拒绝"
    if "name or service not known" in text.lower() or "nodename" in text.lower():
        return "域名无法解析"
    return "连接失败"


# -- zeep clients ---------------------------------------------------------------------------------

_call_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("hospital_call_timeout", default=None)
_lock = threading.Lock()
_clients: dict[tuple, zeep.Client] = {}
_services: dict[tuple, object] = {}
_session: requests.Session | None = None


def _shared_session() -> requests.Session:
    global _session
    if _session is None:
        session = requests.Session()
        # Connection failures are retried once: the request never reached the hospital, so a retry
        # cannot apply anything twice. Nothing else is retried here (a lock is not idempotent).
        retry = Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, allowed_methods=None)
        adapter = HTTPAdapter(pool_connections=32, pool_maxsize=64, max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = "regional-platform/1 (zeep)"
        _session = session
    return _session


class HospitalTransport(Transport):
    """zeep transport with a per-call timeout (a context variable, so one client serves many
    threads) and the hospital's body encoding (GBK hospitals get GBK envelopes)."""

    def __init__(self, *, encoding: str, session: requests.Session):
        timeout = settings.HOSPITAL_CALL_TIMEOUT
        super().__init__(timeout=timeout, operation_timeout=timeout, session=session)
        self.encoding = (encoding or "UTF-8").strip()

    def post(self, address, message, headers):
        timeout = _call_timeout.get() or self.operation_timeout
        if self.encoding.lower().replace("-", "") != "utf8":
            message, headers = _reencode(message, headers, self.encoding)
        return self.session.post(address, data=message, headers=headers, timeout=timeout)


def _reencode(message: bytes, headers: dict, encoding: str) -> tuple[bytes, dict]:
    text = message.decode("utf-8") if isinstance(message, bytes) else message
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
    body = f'<?xml version="1.0" encoding={quoteattr(encoding)}?>{text}'.encode(encoding, "xmlcharrefreplace")
    headers = dict(headers)
    for key, value in list(headers.items()):
        if key.lower() == "content-type":
            headers[key] = re.sub(r"charset=[\w\-]+", f"charset={encoding}", value, flags=re.IGNORECASE)
    return body, headers


def _service(hospital: Hospital, timeout: float, context: dict):
    version = hospital.soap_version or Hospital.SOAP_11
    encoding = hospital.soap_encoding or "UTF-8"
    if hospital.wsdl_url:
        key = ("wsdl", hospital.wsdl_url, encoding)
    else:
        namespace = hospital.soap_namespace or DEFAULT_NAMESPACE
        key = (
            "generated",
            namespace,
            hospital.soap_part_name or "xml",
            version,
            encoding,
            hospital.soap_part_form or Hospital.PART_QUALIFIED,
            hospital.soap_action_style or Hospital.ACTION_OPERATION,
        )
    service_key = (*key, version, hospital.endpoint_url)
    service = _services.get(service_key)
    if service is not None:
        return service
    with _lock:
        service = _services.get(service_key)
        if service is not None:
            return service
        client = _clients.get(key)
        if client is None:
            client = _build_client(hospital, key, encoding, timeout, context)
            _clients[key] = client
        service = _bind(client, version, hospital.endpoint_url, context)
        _services[service_key] = service
        return service


def _build_client(hospital: Hospital, key: tuple, encoding: str, timeout: float, context: dict) -> zeep.Client:
    transport = HospitalTransport(encoding=encoding, session=_shared_session())
    transport.load_timeout = timeout
    options = zeep.Settings(raw_response=True, strict=False, forbid_dtd=True, forbid_entities=True)
    try:
        if key[0] == "wsdl":
            return zeep.Client(hospital.wsdl_url, transport=transport, settings=options)
        _, namespace, part, version, _, part_form, action_style = key
        wsdl = generated_wsdl(
            namespace=namespace, part_name=part, soap_version=version, part_form=part_form, action_style=action_style
        )
        document = io.BytesIO(wsdl.encode())
        return zeep.Client(document, transport=transport, settings=options)
    except requests.RequestException as exc:
        raise HospitalUnavailable(f"无法获取医院WSDL（{type(exc).__name__}）", **context) from exc
    except (ZeepError, etree.XMLSyntaxError, ValueError) as exc:
        raise HospitalBadAnswer(f"医院WSDL无法解析（{exc}）", **context) from exc


def _bind(client: zeep.Client, version: str, endpoint_url: str, context: dict):
    wanted = Soap12Binding if version == Hospital.SOAP_12 else Soap11Binding
    ports = [port for service in client.wsdl.services.values() for port in service.ports.values()]
    port = next((p for p in ports if isinstance(p.binding, wanted)), None) or (ports[0] if ports else None)
    if port is None:
        raise HospitalBadAnswer("医院WSDL中没有可用的服务端口", **context)
    address = endpoint_url or port.binding_options.get("address")
    return client.create_service(port.binding.name, address)


_OPERATION_NAMES = (
    "confirmRegistration",
    "UnlockReg",
    "PaymentNotice",
    "getRegistrationInfo",
    "getPromiseNotice",
    "GetOrderDetailInfo",
    "GetLineupDetailInfo",
    "GetDaypartingDetailInfo",
    "CheckMediCardIdService",
    "queryCardListInfo",
)


def soap_action(namespace: str, operation: str, style: str) -> str:
    """The SOAPAction of `operation`: its name, the namespace + name (.NET asmx), or empty (JAX-WS/CXF)."""
    if style == Hospital.ACTION_EMPTY:
        return ""
    if style == Hospital.ACTION_NAMESPACE:
        return f"{namespace.rstrip('/')}/{operation}"
    return operation


def generated_wsdl(
    *,
    namespace: str,
    part_name: str = "xml",
    soap_version: str = Hospital.SOAP_11,
    part_form: str = Hospital.PART_QUALIFIED,
    action_style: str = Hospital.ACTION_OPERATION,
) -> str:
    """A document/literal wrapped WSDL of the ten `String op(String xml)` operations, for a hospital
    that publishes none: its namespace, part name, part form (a JAX-WS/CXF service expects the part
    unqualified, `<xmlStr>` not `<ns:xmlStr>`), SOAPAction style and SOAP version from its settings."""
    soap_ns = (
        "http://schemas.xmlsoap.org/wsdl/soap12/"
        if soap_version == Hospital.SOAP_12
        else "http://schemas.xmlsoap.org/wsdl/soap/"
    )
    ns = quoteattr(namespace)
    part = quoteattr(part_name)
    form = "unqualified" if part_form == Hospital.PART_UNQUALIFIED else "qualified"
    types, messages, operations, bindings = [], [], [], []
    for name in _OPERATION_NAMES:
        types.append(
            f'<xs:element name="{name}"><xs:complexType><xs:sequence>'
            f'<xs:element name={part} type="xs:string" minOccurs="0" nillable="true"/>'
            f"</xs:sequence></xs:complexType></xs:element>"
            f'<xs:element name="{name}Response"><xs:complexType><xs:sequence>'
            f'<xs:element name="{name}Result" type="xs:string" minOccurs="0" nillable="true"/>'
            f"</xs:sequence></xs:complexType></xs:element>"
        )
        messages.append(
            f'<wsdl:message name="{name}"><wsdl:part name="parameters" element="tns:{name}"/></wsdl:message>'
            f'<wsdl:message name="{name}Response"><wsdl:part name="parameters" element="tns:{name}Response"/>'
            f"</wsdl:message>"
        )
        operations.append(
            f'<wsdl:operation name="{name}"><wsdl:input message="tns:{name}"/>'
            f'<wsdl:output message="tns:{name}Response"/></wsdl:operation>'
        )
        bindings.append(
            f'<wsdl:operation name="{name}">'
            f'<soap:operation soapAction={quoteattr(soap_action(namespace, name, action_style))} style="document"/>'
            f'<wsdl:input><soap:body use="literal"/></wsdl:input>'
            f'<wsdl:output><soap:body use="literal"/></wsdl:output></wsdl:operation>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="{soap_ns}" '
        f'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns={ns} targetNamespace={ns} name="HospitalService">'
        f'<wsdl:types><xs:schema targetNamespace={ns} elementFormDefault="{form}">{"".join(types)}</xs:schema>'
        f"</wsdl:types>{''.join(messages)}"
        f'<wsdl:portType name="HospitalPortType">{"".join(operations)}</wsdl:portType>'
        f'<wsdl:binding name="HospitalBinding" type="tns:HospitalPortType">'
        f'<soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{"".join(bindings)}'
        f"</wsdl:binding>"
        f'<wsdl:service name="HospitalService"><wsdl:port name="HospitalPort" binding="tns:HospitalBinding">'
        f'<soap:address location="http://localhost/"/></wsdl:port></wsdl:service>'
        "</wsdl:definitions>"
    )
