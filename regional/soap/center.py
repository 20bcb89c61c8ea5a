"""The center-side SOAP service `/ws/center`: eight operations of `String op(String xml)`.

Each operation only hands its string to `regional.inbound.process`; the rules live in the
services registered for it.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from lxml import etree
from spyne import Application, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11

from regional import auth, inbound, ratelimit
from regional.messages.catalog import CENTER_INTERFACES, Interface
from regional.soap.mount import (
    PasswordDigestRefused,
    PublicWsdlServer,
    adopt_operation_namespace,
    message_part,
    prepare_body,
    serve_rpc,
    soap_fault,
    username_token,
)

CENTER_NAMESPACE = "http://regional.health/ws/center"


def _operation(interface: Interface):
    def operation(ctx, xml):
        request = ctx.transport.req
        outcome = inbound.process(interface, message_part(ctx, xml), caller=request.regional_caller)
        return outcome.response_text

    # Spyne keys methods by function name, so name it before decorating.
    operation.__name__ = operation.__qualname__ = interface.name
    return rpc(Unicode, _returns=Unicode, _body_style="wrapped")(operation)


CenterService = type(
    "CenterService", (ServiceBase,), {interface.name: _operation(interface) for interface in CENTER_INTERFACES}
)

application = Application(
    [CenterService],
    tns=CENTER_NAMESPACE,
    name="RegionalCenterService",
    in_protocol=Soap11(validator=None),
    out_protocol=Soap11(),
)
server = PublicWsdlServer(application)

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_INTERFACES = {f"{{{CENTER_NAMESPACE}}}{i.name}": i for i in CENTER_INTERFACES}


def direct_call(request: HttpRequest, caller: auth.Caller) -> HttpResponse | None:
    """The plain envelope (SOAP 1.1, no header, the operation in our namespace with one string part)
    answered without Spyne, as Spyne answers it (tests/regional/test_soap_path.py compares the bytes).

    Spyne parsed the envelope again, built its contexts and serialised the answer: a fifth of a warm
    call's CPU. Anything else (a WS-Security header, another namespace, an unescaped message, a part
    missing) returns None and goes to Spyne, whose answers the hardening tests pin.
    """
    root = request.soap_envelope
    if root.tag != f"{{{SOAP11}}}Envelope":
        return None
    elements = [e for e in root if isinstance(e.tag, str)]
    if len(elements) != 1 or elements[0].tag != f"{{{SOAP11}}}Body":
        return None
    operation = next((e for e in elements[0] if isinstance(e.tag, str)), None)
    interface = _INTERFACES.get(operation.tag) if operation is not None else None
    parts = [e for e in operation if isinstance(e.tag, str)] if interface is not None else []
    if len(parts) != 1 or len(parts[0]) or parts[0].attrib:
        return None
    outcome = inbound.process(interface, parts[0].text or "", caller=caller)
    envelope = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap11env": SOAP11, "tns": CENTER_NAMESPACE})
    answer = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP11}}}Body"), f"{operation.tag}Response")
    result = etree.SubElement(answer, f"{operation.tag}Result")
    try:
        result.text = outcome.response_text
    except ValueError:  # a control character echoed from the message: XML 1.0 cannot carry it
        result.text = _NOT_XML.sub("", outcome.response_text)
    return HttpResponse(
        etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), content_type="text/xml; charset=utf-8"
    )


@csrf_exempt
def center_endpoint(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return server.handle_wsdl(request)
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    problem = prepare_body(request)
    if problem is not None:
        return problem
    try:
        token = username_token(request.soap_envelope)
    except PasswordDigestRefused as exc:
        return soap_fault(str(exc), 401)
    # The rate limit counts the identity the caller claims, and reads the credential cache's generation,
    # in one Redis round trip; a caller that then fails to authenticate is not counted after all.
    key = f"hospital:{auth.claimed_identity(request, username_token=token)}"
    limit = settings.RATE_LIMIT_HOSPITAL_PER_MINUTE
    allowed, generation = ratelimit.allow_reading(key, limit=limit, read=auth.GENERATION_KEY)
    caller = auth.authenticate(request, username_token=token, generation=auth.decode_generation(generation))
    if caller is None:
        if limit > 0:
            ratelimit.forgive(key)
        response = HttpResponse("未授权：请使用HTTP Basic或WS-Security UsernameToken认证", status=401)
        response["WWW-Authenticate"] = 'Basic realm="regional-center", charset="UTF-8"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    if not allowed:
        response = soap_fault("请求过于频繁：超过每分钟调用上限，请稍后重试", 429)
        response["Retry-After"] = str(ratelimit.retry_after())
        return response
    request.regional_caller = caller
    direct = direct_call(request, caller)
    if direct is not None:
        return direct
    adopt_operation_namespace(request, CENTER_NAMESPACE, (i.name for i in CENTER_INTERFACES))
    return serve_rpc(server, request)
