"""The center-side SOAP service `/ws/center`: eight operations of `String op(String xml)`.

Each operation only hands its string to `regional.inbound.process`; the rules live in the
services registered for it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
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
    adopt_operation_namespace(request, CENTER_NAMESPACE, (i.name for i in CENTER_INTERFACES))
    return serve_rpc(server, request)
