"""The zeep/WSDL plumbing behind the hospital client (`regional.hospital_client`): one zeep Client
per hospital WSDL (or per generated WSDL, when the hospital has none and is configured by
namespace / part name / SOAP version / encoding), one shared requests.Session, a per-call
timeout, and re-encoding for hospitals that speak GBK. The client owns outcomes, logging and
the circuit; this module only turns a message into an HTTP exchange with the right envelope.
"""

from __future__ import annotations

import contextvars
import io
import re
import threading
from xml.sax.saxutils import quoteattr

import requests
import zeep
from django.conf import settings
from lxml import etree
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from zeep.exceptions import Error as ZeepError
from zeep.transports import Transport
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

from regional.models import Hospital

# The namespace of the reference hospital interface (the sandbox hospital serves it); assumed for
# a hospital configured with neither a WSDL nor a namespace.
DEFAULT_NAMESPACE = "http://regional.health/ws/his"


class WsdlError(Exception):
    """The hospital's WSDL could not be had (the client reports it as a HospitalError)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class WsdlUnavailable(WsdlError):
    """Fetching the WSDL failed on the network: temporary."""


class WsdlUnusable(WsdlError):
    """The WSDL is not usable (unparsable, no port)."""


def clear_clients() -> None:
    """Forget the cached zeep clients (each holds its hospital's WSDL); they are rebuilt on the next call."""
    with _lock:
        _clients.clear()
        _services.clear()


call_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("hospital_call_timeout", default=None)
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
        timeout = call_timeout.get() or self.operation_timeout
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


def service(hospital: Hospital, timeout: float):
    """The zeep service bound to the hospital's address (built once per WSDL, version and address)."""
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
            client = _build_client(hospital, key, encoding, timeout)
            _clients[key] = client
        service = _bind(client, version, hospital.endpoint_url)
        _services[service_key] = service
        return service


def _build_client(hospital: Hospital, key: tuple, encoding: str, timeout: float) -> zeep.Client:
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
        raise WsdlUnavailable(f"无法获取医院WSDL（{type(exc).__name__}）") from exc
    except (ZeepError, etree.XMLSyntaxError, ValueError) as exc:
        raise WsdlUnusable(f"医院WSDL无法解析（{exc}）") from exc


def _bind(client: zeep.Client, version: str, endpoint_url: str):
    wanted = Soap12Binding if version == Hospital.SOAP_12 else Soap11Binding
    ports = [port for service in client.wsdl.services.values() for port in service.ports.values()]
    port = next((p for p in ports if isinstance(p.binding, wanted)), None) or (ports[0] if ports else None)
    if port is None:
        raise WsdlUnusable("医院WSDL中没有可用的服务端口")
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
