"""The sandbox hospital's interface engine towards the platform: the center's SOAP service
(`/ws/center`), called with zeep from its WSDL and HTTP Basic credentials, exactly as a real
hospital's HIS calls it. Messages are built and checked from the same catalog descriptions.

Never call this inside a database transaction: a push waits on the network.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import requests
import zeep
from requests.adapters import BaseAdapter
from zeep.cache import InMemoryCache
from zeep.exceptions import Error as ZeepError
from zeep.transports import Transport

from regional.errors import DomainError
from regional.messages import MessageInvalid, XmlReadError, read_xml
from regional.messages.catalog import RESULT_CODE, Interface
from regional.messages.schema import Field, Message

logger = logging.getLogger("sandbox.center")

PUSH_TIMEOUT = 60
# ResultCode and ErrorMsg only: read first, so that an error answer lacking other fields still reads.
_STATUS = Message("Response", (RESULT_CODE, Field("ErrorMsg", "对错误/异常的详细描述信息")))
_WSDL_CACHE = InMemoryCache(timeout=300)


class CenterUnreachable(DomainError):
    """The platform could not be reached, or answered something that is not its interface."""

    code = "center_unreachable"
    http_status = 502


@dataclass
class CenterAnswer:
    """What the center answered to one push."""

    interface: str
    transaction_id: str
    result_code: int
    error_msg: str
    data: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result_code == 0

    def summary(self) -> str:
        if self.ok:
            return f"{self.interface}：平台已接收"
        return f"{self.interface}：平台返回ResultCode {self.result_code}，{self.error_msg or '未说明原因'}"


def new_transaction_id() -> str:
    return uuid.uuid4().hex


def send(
    *,
    hospital_no: str,
    center_url: str,
    secret: str,
    interface: Interface,
    data: dict,
    adapter: BaseAdapter | None = None,
    timeout: float = PUSH_TIMEOUT,
) -> CenterAnswer:
    """Send one center-side message and return the center's answer.

    `adapter`, when given, carries the HTTP exchange instead of the network (seed_demo uses one that
    hands the request to Django in process); the SOAP envelope is the same either way.
    """
    if not center_url:
        raise DomainError("沙箱医院未配置平台中心端地址（center_url）")
    payload = {"TransactionId": new_transaction_id(), "HospitalNo": hospital_no, **data}
    text = interface.request.render(payload)
    try:
        interface.request.parse(read_xml(text))
    except MessageInvalid as exc:
        raise DomainError(f"{interface.name}报文不符合接口规范：{exc.summary()}") from exc
    session = requests.Session()
    session.auth = (hospital_no, secret)
    if adapter is not None:
        # Every request of this push (the WSDL, and the address the WSDL names) goes through it.
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    transport = Transport(session=session, cache=_WSDL_CACHE, timeout=timeout, operation_timeout=timeout)
    try:
        client = zeep.Client(f"{center_url}?wsdl", transport=transport)
        answer = getattr(client.service, interface.name)(text)
    except (requests.RequestException, ZeepError, OSError) as exc:
        logger.warning("push %s for %s failed: %s", interface.name, hospital_no, type(exc).__name__)
        raise CenterUnreachable(f"{interface.name}：无法调用平台（{_describe(exc)}）") from exc
    finally:
        session.close()
    return _read_answer(interface, payload["TransactionId"], answer or "")


def _read_answer(interface: Interface, transaction_id: str, text: str) -> CenterAnswer:
    try:
        root = read_xml(text)
        status = _STATUS.parse(root)
    except (XmlReadError, MessageInvalid) as exc:
        raise CenterUnreachable(f"{interface.name}：平台应答无法识别（{exc}）") from exc
    data: dict = {}
    if status["ResultCode"] == 0:
        try:
            data = interface.response.parse(root)
        except MessageInvalid as exc:
            raise CenterUnreachable(f"{interface.name}：平台应答不符合接口规范（{exc.summary()}）") from exc
    return CenterAnswer(interface.name, transaction_id, status["ResultCode"], status["ErrorMsg"] or "", data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "超时"
    if isinstance(exc, requests.ConnectionError):
        return "连接失败"
    status = getattr(exc, "status_code", None)
    if status:
        return f"HTTP {status}"
    return type(exc).__name__
