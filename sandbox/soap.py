"""The sandbox hospital's SOAP service: `/sandbox/his/<HospitalNo>/ws`, the ten hospital-side
operations in the `String op(String xml)` shape of CONTRACT.md section 2, one Spyne application
for every sandbox hospital (the hospital comes from the URL, the WSDL address is that URL).

Faults on demand are applied here, around the operations, from the hospital's settings.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from lxml import etree
from spyne import Application, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11

from regional.errors import DomainError
from regional.messages import MessageInvalid, XmlReadError, read_xml
from regional.messages.catalog import HOSPITAL_INTERFACES, Interface
from regional.messages.reader import local_name
from regional.soap.mount import PublicWsdlServer, message_part, prepare_body, serve_rpc, soap_fault
from sandbox.models import SandboxHospital
from sandbox.operations import HANDLERS

logger = logging.getLogger("sandbox")

# The reference namespace of the hospital-side interface. The platform's client assumes it for a
# hospital configured without WSDL or namespace (regional/hospital_wsdl.py DEFAULT_NAMESPACE).
HIS_NAMESPACE = "http://regional.health/ws/his"
MALFORMED_ANSWER = "沙箱医院模拟的异常应答：<Response><ResultCode>0</ResultCode><WorkFlowId>"


def respond(hospital: SandboxHospital, interface: Interface, text: str, *, fault: str = "") -> str:
    """The response string for one message: parse → one handler → render; errors as ResultCode 1."""
    if fault == SandboxHospital.FAULT_ERROR:
        return interface.response.render({"ResultCode": 1, "ErrorMsg": hospital.fault_error_message})
    if fault == SandboxHospital.FAULT_MALFORMED:
        return MALFORMED_ANSWER
    try:
        data = interface.request.parse(read_xml(text))
        if data.get("HospitalNo") != hospital.hospital_no:
            raise DomainError(
                f"HospitalNo 报文中的医院编号{data.get('HospitalNo')}与本院（{hospital.hospital_no}）不一致"
            )
        fields = {"ResultCode": 0, "ErrorMsg": ""}
        fields.update(HANDLERS[interface.name](hospital, data))
    except MessageInvalid as exc:
        fields = {"ResultCode": 1, "ErrorMsg": exc.summary(200)}
    except (XmlReadError, DomainError) as exc:
        fields = {"ResultCode": 1, "ErrorMsg": exc.message[:200]}
    except Exception:
        reference = uuid.uuid4().hex[:12]
        logger.exception("sandbox %s %s failed, reference %s", hospital.hospital_no, interface.name, reference)
        fields = {"ResultCode": 1, "ErrorMsg": f"医院系统内部错误（参考号{reference}）"}
    return interface.response.render(fields)


def _operation(interface: Interface):
    def operation(ctx, xml):
        request = ctx.transport.req
        return respond(request.sandbox_hospital, interface, message_part(ctx, xml), fault=request.sandbox_fault)

    operation.__name__ = operation.__qualname__ = interface.name
    return rpc(Unicode, _returns=Unicode, _body_style="wrapped")(operation)


SandboxHisService = type(
    "SandboxHisService", (ServiceBase,), {interface.name: _operation(interface) for interface in HOSPITAL_INTERFACES}
)

application = Application(
    [SandboxHisService],
    tns=HIS_NAMESPACE,
    name="SandboxHisService",
    in_protocol=Soap11(validator=None),
    out_protocol=Soap11(),
)
server = PublicWsdlServer(application)


def operation_name(body: bytes) -> str | None:
    """The operation an envelope calls (the local name of the Body's first element), if readable."""
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None
    for element in root:
        if isinstance(element.tag, str) and local_name(element) == "Body":
            for child in element:
                if isinstance(child.tag, str):
                    return local_name(child)
    return None


def caller_allowed(request: HttpRequest) -> bool:
    """Like a real HIS, the sandbox serves only the platform: its secret, or an address it trusts.

    Its own few lines rather than regional.auth: the sandbox is a partner outside the platform.
    """
    import base64
    import binascii
    import hmac
    import ipaddress

    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("basic "):
        try:
            user, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        if user or secret:  # an empty pair (some SOAP clients send one) is no credential at all
            expected = settings.SANDBOX_SECRET
            return bool(expected) and user == "sandbox" and hmac.compare_digest(secret.encode(), expected.encode())
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # a dual-stack socket's view of an IPv4 caller
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.SANDBOX_ALLOWED_NETWORKS)


@csrf_exempt
def his_endpoint(request: HttpRequest, hospital_no: str) -> HttpResponse:
    if not settings.SANDBOX_ENABLED:
        raise Http404("沙箱未启用")
    hospital = SandboxHospital.objects.filter(hospital_no=hospital_no).first()
    if hospital is None:
        raise Http404(f"沙箱医院{hospital_no}不存在")
    if request.method == "GET":
        return server.handle_wsdl(request)  # the interface description holds no patient data
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    if not caller_allowed(request):
        response = soap_fault("未授权：沙箱医院只接受 HTTP Basic（sandbox:SANDBOX_SECRET）或白名单地址的调用", 401)
        response["WWW-Authenticate"] = 'Basic realm="sandbox-his", charset="UTF-8"'
        return response
    problem = prepare_body(request)
    if problem is not None:
        return problem
    operation = operation_name(request.body)
    latency = hospital.latency_for(operation)
    if latency:
        time.sleep(latency)
    fault = hospital.fault_for(operation)
    if fault == SandboxHospital.FAULT_TIMEOUT:
        # Answer, but only after the caller has given up: the work is done and the caller does not know.
        time.sleep(hospital.fault_timeout_seconds)
    if fault == SandboxHospital.FAULT_HTTP500:
        return HttpResponse("沙箱医院模拟的服务器错误", status=500, content_type="text/plain; charset=utf-8")
    request.sandbox_hospital = hospital
    request.sandbox_fault = fault
    return serve_rpc(server, request)
