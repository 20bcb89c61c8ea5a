"""Serving a Spyne application from Django, with the fixes STACK-NOTES.md asks for.

- The WSDL's address comes from PUBLIC_BASE_URL and the request path, not from a Host header; without
  PUBLIC_BASE_URL, from the request that asked for it (the port the server really runs on).
- DTDs and entities are refused before Spyne parses the envelope.
- A body in a non-UTF-8 charset without an XML declaration is transcoded first.
- The operation's single string part is accepted under any element name (CONTRACT.md section 2), and the
  operation element itself in any namespace: it is matched by its local name.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable
from xml.sax.saxutils import escape

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from lxml import etree
from spyne.server.django import DjangoServer

SOAP_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"><soap11env:Body>'
    "<soap11env:Fault><faultcode>soap11env:Client</faultcode><faultstring>{}</faultstring></soap11env:Fault>"
    "</soap11env:Body></soap11env:Envelope>"
)
_FORBIDDEN = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.\-]+)", re.IGNORECASE)
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def soap_fault(message: str, status: int = 400) -> HttpResponse:
    from xml.sax.saxutils import escape

    return HttpResponse(SOAP_FAULT.format(escape(message)), status=status, content_type="text/xml; charset=utf-8")


class PublicWsdlServer(DjangoServer):
    """DjangoServer whose WSDL names the configured public address of each mount path."""

    _lock = threading.Lock()

    # Spyne builds a correct interface document only once per application (a second build drops the
    # messages, port type and service), so it is built once with this address and each URL put in.
    _ADDRESS_PLACEHOLDER = "http://wsdl-address.invalid/"

    def __init__(self, app):
        super().__init__(app, chunked=False, cache_wsdl=False)
        self._wsdl_by_url: dict[str, bytes] = {}
        self._wsdl_template: bytes | None = None

    def handle_wsdl(self, request, *args, **kwargs):
        if settings.PUBLIC_BASE_URL and not getattr(settings, "WSDL_ADDRESS_FROM_REQUEST", False):
            base = settings.PUBLIC_BASE_URL
        else:
            base = request.build_absolute_uri("/").rstrip("/")
        url = base + request.path
        wsdl = self._wsdl_by_url.get(url)
        if wsdl is None:
            with self._lock:  # Spyne's interface document is shared state
                if self._wsdl_template is None:
                    self.doc.wsdl11.build_interface_document(self._ADDRESS_PLACEHOLDER)
                    self._wsdl_template = self.doc.wsdl11.get_interface_document()
                address = escape(url, {'"': "&quot;"}).encode("utf-8")
                wsdl = self._wsdl_template.replace(self._ADDRESS_PLACEHOLDER.encode(), address)
                self._wsdl_by_url[url] = wsdl
        return HttpResponse(wsdl, content_type="text/xml; charset=utf-8")


def prepare_body(request: HttpRequest) -> HttpResponse | None:
    """Checks every SOAP body before Spyne sees it; returns an error response or None."""
    body = request.body
    if len(body) > settings.MESSAGE_MAX_BYTES + 64 * 1024:
        return soap_fault(f"报文过大：{len(body)}字节，上限为{settings.MESSAGE_MAX_BYTES}字节", 413)
    if _FORBIDDEN.search(body):
        return soap_fault("报文不得包含DTD或实体声明（DOCTYPE/ENTITY）")
    match = _CHARSET.search(request.META.get("CONTENT_TYPE", ""))
    charset = match.group(1).lower() if match else "utf-8"
    if charset not in {"utf-8", "utf8"} and not body.lstrip().startswith(b"<?xml"):
        try:
            request._body = body.decode("gb18030" if charset in {"gbk", "gb2312"} else charset).encode("utf-8")
        except (LookupError, UnicodeDecodeError):
            return soap_fault(f"报文内容与声明的字符编码{charset}不符")
    return None


def adopt_operation_namespace(request: HttpRequest, namespace: str, operations: Iterable[str]) -> None:
    """Put an operation element sent in another namespace into ours, so Spyne dispatches it.

    A HIS that reuses an envelope template written for another platform sends `<x:DoctorInfo>` in that
    platform's namespace, and Spyne, which dispatches on the qualified name, answers
    `Client.ResourceNotFound`. The operation is matched by its local name (case-insensitively, as
    element names are in CONTRACT.md section 3), as the part already is.
    """
    body = request.body
    found = _first_body_element(body)
    if found is None:
        return
    wanted = {name.lower(): name for name in operations}.get(found.localname.lower())
    if wanted is None or (found.namespace == namespace and found.localname == wanted):
        return
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError:
        return  # Spyne answers a broken envelope itself
    soap_body = next(e for e in root if isinstance(e.tag, str) and etree.QName(e).localname == "Body")
    operation = next(e for e in soap_body if isinstance(e.tag, str))
    operation.tag = f"{{{namespace}}}{wanted}"
    request._body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _first_body_element(body: bytes) -> etree.QName | None:
    # Reads only up to the operation element: a 10 MB schedule message is not parsed twice.
    soap_body = None
    try:
        for _event, element in etree.iterparse(
            io.BytesIO(body), events=("start",), resolve_entities=False, no_network=True, load_dtd=False
        ):
            if soap_body is None:
                if etree.QName(element).localname == "Body":
                    soap_body = element
                continue
            return etree.QName(element) if element.getparent() is soap_body else None
    except etree.XMLSyntaxError:
        return None
    return None


def username_token(body: bytes) -> tuple[str, str] | None:
    """The WS-Security UsernameToken (PasswordText) of an envelope, if it has one."""
    if b"UsernameToken" not in body:
        return None
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None
    token = root.find(f".//{{{WSSE_NS}}}UsernameToken")
    if token is None:
        token = next((e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("UsernameToken")), None)
    if token is None:
        return None
    user = next((e.text for e in token if isinstance(e.tag, str) and e.tag.endswith("Username")), None)
    password = next((e.text for e in token if isinstance(e.tag, str) and e.tag.endswith("Password")), None)
    return ((user or "").strip(), (password or "").strip())


def message_part(ctx, value: str | None) -> str:
    """The operation's string part, under whatever element name the client used."""
    if value:
        return value
    body = getattr(ctx, "in_body_doc", None)
    if body is None:
        return ""
    for child in body:
        if isinstance(child.tag, str):
            if len(child):  # an unescaped message element instead of a string
                return etree.tostring(child[0], encoding="unicode")
            return child.text or ""
    return ""


def serve_rpc(server: PublicWsdlServer, request: HttpRequest) -> HttpResponse:
    """Hand the envelope to Spyne; client faults become HTTP 400 and nothing becomes a bare 500.

    Spyne answers every fault with 500, and crashes on an empty Body: an envelope that is not SOAP
    is the caller's error, and answered as one.
    """
    try:
        response = server.handle_rpc(request)
    except Exception:  # noqa: BLE001 - Spyne raised instead of faulting (empty Body and the like)
        return soap_fault("SOAP信封无法处理：Body中应有且只有一个操作元素")
    if response.status_code == 500 and b"<faultcode>soap11env:Client" in response.content:
        response.status_code = 400
    return response
