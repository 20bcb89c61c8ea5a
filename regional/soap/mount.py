"""Serving a Spyne application from Django, with the fixes STACK-NOTES.md asks for.

- The WSDL's address comes from PUBLIC_BASE_URL and the request path, not from a Host header; without
  PUBLIC_BASE_URL, from the request that asked for it (the port the server really runs on).
- DTDs and entities are refused, and the envelope's size and shape bounded, before Spyne parses it.
- The envelope is decoded in its declared encoding (refused when the declaration lies) and handed
  to Spyne as UTF-8.
- The operation's single string part is accepted under any element name (CONTRACT.md section 2), and the
  operation element itself in any namespace: it is matched by its local name.
- Spyne's forced garbage collection after requests is off (see below).
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Iterable
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from lxml import etree
from spyne import const as spyne_const
from spyne.server.django import DjangoServer

from regional.messages.reader import XmlReadError, decode_body

SOAP_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"><soap11env:Body>'
    "<soap11env:Fault><faultcode>soap11env:Client</faultcode><faultstring>{}</faultstring></soap11env:Fault>"
    "</soap11env:Body></soap11env:Envelope>"
)
_FORBIDDEN_TEXT = re.compile(r"<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_DECLARATION_TEXT = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.\-]+)", re.IGNORECASE)
logger = logging.getLogger("regional.soap")
# Spyne runs a full gc.collect() after a request at most once a second per worker: 83-92 ms with every
# thread of a warm worker frozen (STACK-NOTES.md; a third of the sandbox hospital's samples in a rush).
# Python's own generational collector is enough; Spyne's tests switch it off the same way.
spyne_const.MIN_GC_INTERVAL = float("inf")
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


# What reaches Spyne is bounded before it parses: Spyne's complex_from_element takes time quadratic
# in the attributes of an element (100k attributes held a worker past a minute), while lxml reads
# the same envelope in a fraction of a second. A real envelope has a handful of attributes per
# element, a depth under ten and, even with an unescaped 10,000-record schedule, under 400k elements.
MAX_ATTRIBUTES = 64
MAX_DEPTH = 64
MAX_ELEMENTS = 400_000
_DEEPER_THAN_MAX = "/" + "/".join(["*"] * (MAX_DEPTH + 1))
_SOAP_ENVELOPES = {"http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"}
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"


def _envelope_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def prepare_body(request: HttpRequest) -> HttpResponse | None:
    """Checks every SOAP body before Spyne sees it; returns an error response or None.

    The size is checked before the body is read (Django would answer its own HTML 400 past
    DATA_UPLOAD_MAX_MEMORY_SIZE). The body is decoded in its declared encoding (BOM, XML declaration,
    then the Content-Type charset) and refused when it does not decode cleanly or is UTF-8 dressed as
    GBK; DTDs are looked for in the decoded text, so a UTF-16 envelope cannot hide one; the tree is
    bounded (attributes, depth, elements) and must carry exactly one operation. Spyne then gets the
    envelope as UTF-8 without a declaration, and `request.soap_envelope` holds the parsed tree.
    """
    limit = settings.MESSAGE_MAX_BYTES + 64 * 1024
    try:
        announced = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        announced = 0
    if announced > limit:
        return soap_fault(f"报文过大：{announced}字节，上限为{settings.MESSAGE_MAX_BYTES}字节", 413)
    try:
        body = request.body
    except RequestDataTooBig:
        return soap_fault(f"报文过大：上限为{settings.MESSAGE_MAX_BYTES}字节", 413)
    if len(body) > limit:
        return soap_fault(f"报文过大：{len(body)}字节，上限为{settings.MESSAGE_MAX_BYTES}字节", 413)
    match = _CHARSET.search(request.META.get("CONTENT_TYPE", ""))
    try:
        text = decode_body(body, charset=match.group(1) if match else None)
    except XmlReadError as exc:
        return soap_fault(exc.message)
    if _FORBIDDEN_TEXT.search(text):
        return soap_fault("报文不得包含DTD或实体声明（DOCTYPE/ENTITY）")
    utf8 = _DECLARATION_TEXT.sub("", text.lstrip("\ufeff"), count=1).strip().encode("utf-8")
    try:
        root = etree.fromstring(utf8, _envelope_parser())
    except etree.XMLSyntaxError as exc:
        reason = (exc.msg or "").split(",")[0]
        return soap_fault(f"SOAP信封不是格式正确的XML：{reason}")
    if root is None:
        return soap_fault("SOAP信封为空")
    problem = _bounded(root) or _one_operation(root)
    if problem:
        return soap_fault(problem)
    request._body = utf8
    # What Spyne reads is now UTF-8 SOAP 1.1 whatever was declared; and Spyne raises KeyError on a
    # request without a Content-Type header (gunicorn sends none through when the client sent none).
    request.META["CONTENT_TYPE"] = "text/xml; charset=utf-8"
    request.soap_envelope = root
    return None


def _bounded(root: etree._Element) -> str | None:
    if root.xpath("boolean(//*[count(@*) > $n])", n=MAX_ATTRIBUTES):
        return f"SOAP信封中有元素的属性超过{MAX_ATTRIBUTES}个"
    if root.xpath(f"boolean({_DEEPER_THAN_MAX})"):
        return f"SOAP信封的嵌套层数超过{MAX_DEPTH}层"
    if root.xpath("count(//*)") > MAX_ELEMENTS:
        return f"SOAP信封的元素超过{MAX_ELEMENTS}个"
    return None


def _one_operation(root: etree._Element) -> str | None:
    """Spyne runs only the first element of the Body: a second one would be silently dropped."""
    if etree.QName(root).namespace not in _SOAP_ENVELOPES:
        return None  # not SOAP at all: Spyne answers that in its own words
    for child in root:
        if isinstance(child.tag, str) and etree.QName(child).localname == "Body":
            operations = [e for e in child if isinstance(e.tag, str)]
            if len(operations) > 1:
                names = "、".join(etree.QName(e).localname for e in operations[:5])
                return f"SOAP Body中只能有一个操作元素，收到{len(operations)}个（{names}）"
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


class PasswordDigestRefused(ValueError):
    """A UsernameToken whose password is a digest: secrets are stored only as keyed hashes, so a
    digest cannot be checked; the caller is told so instead of getting a bare 401."""


def username_token(root: etree._Element | None) -> tuple[str, str] | None:
    """The WS-Security UsernameToken (PasswordText) of a parsed envelope, if it has one.

    Raises PasswordDigestRefused for a PasswordDigest token (WS-Security UsernameToken profile 1.0).
    """
    if root is None:
        return None
    token = root.find(f".//{{{WSSE_NS}}}UsernameToken")
    if token is None:
        token = next((e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("UsernameToken")), None)
    if token is None:
        return None
    user = next((e.text for e in token if isinstance(e.tag, str) and e.tag.endswith("Username")), None)
    password = next((e for e in token if isinstance(e.tag, str) and e.tag.endswith("Password")), None)
    if password is not None and (password.get("Type") or "").strip().endswith("#PasswordDigest"):
        raise PasswordDigestRefused(
            "不支持WS-Security PasswordDigest：平台只保存密钥摘要，无法校验密码摘要；"
            "请使用PasswordText（经TLS传输）或HTTP Basic认证"
        )
    return ((user or "").strip(), ((password.text if password is not None else None) or "").strip())


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
    except Exception as exc:  # noqa: BLE001 - Spyne raised instead of faulting (empty Body and the like)
        logger.warning("Spyne could not handle an envelope: %s", type(exc).__name__, exc_info=True)
        return soap_fault("SOAP信封无法处理：Body中应有且只有一个操作元素")
    if response.status_code == 500 and b"<faultcode>soap11env:Client" in response.content:
        response.status_code = 400
    return response
