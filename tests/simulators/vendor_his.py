"""A second hospital, written the way HIS vendors write them, not the way the sandbox is.

Plain WSGI and lxml (no Spyne, no catalog): the ten hospital-side operations the platform calls,
in one of three vendor styles, served over HTTP on a free port.

- `cxf`   JAX-WS/CXF: SOAP 1.1, an *unqualified* part `xmlStr`; a namespaced part gets JAXB's
          `unexpected element (uri:…, local:"xmlStr"). Expected elements are <{}xmlStr>`; the
          SOAPAction is ignored, as JAX-WS does.
- `asmx`  .NET asmx with SOAP 1.1 switched off: SOAP 1.2 only, namespace http://tempuri.org/, a
          qualified part `xmlString`, dispatch on the action `http://tempuri.org/<operation>`.
- `gbk`   a domestic HIS: SOAP 1.1 in GBK, an unqualified part `arg0`, answers with lower-case element
          names (`<response><resultcode>`).

All three answer like real systems do: amounts with four decimals (`12.5000`, SQL Server `money`),
timestamps as Java prints them (`2026-12-01 19:33:09.0`), and a second booking of the same patient
on the same session is refused ("该患者已预约该班次，不能重复预约") whatever its TransactionId: nothing
is replayed. `lose_answers` makes an operation do its work and then answer too late for the caller;
`lose_requests` makes it answer too late without doing anything.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from xml.sax.saxutils import escape

import pytest
from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

OPERATIONS = (
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


@dataclass(frozen=True)
class Style:
    """How one vendor's service looks on the wire."""

    name: str
    namespace: str
    part: str
    soap: str  # "1.1" or "1.2"
    qualified_part: bool
    encoding: str = "UTF-8"
    lower_case_answers: bool = False
    # The SOAPAction the service dispatches on: a prefix before the operation name; None: ignored (JAX-WS).
    action_prefix: str | None = None

    def expected_action(self, operation: str) -> str:
        return "" if self.action_prefix is None else self.action_prefix + operation


CXF = Style("cxf", "http://webservice.his.example.com/", "xmlStr", "1.1", qualified_part=False)
ASMX = Style(
    "asmx", "http://tempuri.org/", "xmlString", "1.2", qualified_part=True, action_prefix="http://tempuri.org/"
)
GBK = Style("gbk", "http://his.gbk.example/", "arg0", "1.1", qualified_part=False, encoding="GBK",
            lower_case_answers=True)  # fmt: skip
STYLES = {style.name: style for style in (CXF, ASMX, GBK)}


@dataclass
class Session:
    """One bookable session (排班) at the simulated hospital."""

    work_id: str
    work_date: str
    remaining: int
    price: str = "12.5000"
    time_code: str = "1"


@dataclass
class Order:
    work_flow_id: str
    work_id: str
    id_code: str
    name: str
    serial: int
    status: str = "1"  # 1 已预约 (locked), 2 已支付, 3 已退号 (released or cancelled)


@dataclass
class HisState:
    hospital_no: str
    sessions: dict[str, Session] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    cards: dict[str, str] = field(default_factory=dict)  # ID number → card number
    # Inner request messages as received, per operation, in order.
    received: dict[str, list[str]] = field(default_factory=dict)
    # operation → answers still to lose: do the work, then answer only after this many seconds.
    lose_answers: dict[str, list[float]] = field(default_factory=dict)
    # operation → requests to drop: wait this many seconds, then fail without doing anything.
    lose_requests: dict[str, list[float]] = field(default_factory=dict)
    # operation → (ResultCode, ErrorMsg) to refuse with, once per entry.
    refuse_next: dict[str, list[str]] = field(default_factory=dict)
    # PaymentNotice answers without SerialNumber and Worktime (seen in the field).
    payment_answer_without_serial: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _serials: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add_session(self, work_id: str, work_date: str, remaining: int, price: str = "12.5000") -> Session:
        session = Session(work_id, work_date, remaining, price)
        self.sessions[work_id] = session
        return session

    def messages(self, operation: str) -> list[etree._Element]:
        return [etree.fromstring(text.encode("utf-8")) for text in self.received.get(operation, [])]


class HisRefusal(Exception):
    pass


def _java_now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S") + ".0"


def _fields(message: etree._Element) -> dict[str, str]:
    return {etree.QName(e).localname: (e.text or "").strip() for e in message if isinstance(e.tag, str)}


def _require(data: dict, *names: str) -> None:
    missing = [n for n in names if not data.get(n)]
    if missing:
        raise HisRefusal(f"参数{missing[0]}不能为空")


class Handlers:
    """The hospital's business, as a HIS would run it (no knowledge of the platform's rules)."""

    def __init__(self, state: HisState):
        self.state = state

    def _order(self, data: dict) -> Order:
        _require(data, "WorkFlowId")
        order = self.state.orders.get(data["WorkFlowId"])
        if order is None:
            raise HisRefusal("无此挂号记录")
        return order

    def confirmRegistration(self, data: dict) -> dict:
        _require(data, "WorkId", "Name", "IDCode", "TelephoneNo")
        session = self.state.sessions.get(data["WorkId"])
        if session is None:
            raise HisRefusal("排班不存在")
        for order in self.state.orders.values():
            if order.work_id == session.work_id and order.id_code == data["IDCode"] and order.status in "12":
                raise HisRefusal("该患者已预约该班次，不能重复预约")
        if session.remaining <= 0:
            raise HisRefusal("号源已满")
        session.remaining -= 1
        serial = next(self.state._serials)
        order = Order(f"HIS{serial:08d}", session.work_id, data["IDCode"], data["Name"], serial)
        self.state.orders[order.work_flow_id] = order
        return {
            "WorkFlowId": order.work_flow_id,
            "HospitalNo": self.state.hospital_no,
            "WorkId": session.work_id,
            "SerialNumber": str(serial),
            "Worktime": "08:00-08:30",
            "Fee": session.price,
        }

    def UnlockReg(self, data: dict) -> dict:
        order = self._order(data)
        if order.status != "1":
            raise HisRefusal("该挂号记录不是锁号状态，不能解锁")
        order.status = "3"
        self.state.sessions[order.work_id].remaining += 1
        return {"WorkFlowId": order.work_flow_id}

    def PaymentNotice(self, data: dict) -> dict:
        order = self._order(data)
        if order.status == "3":
            raise HisRefusal("该挂号记录已取消")
        order.status = "2"
        if self.state.payment_answer_without_serial:
            return {"WorkFlowId": order.work_flow_id}
        return {"WorkFlowId": order.work_flow_id, "SerialNumber": str(order.serial), "Worktime": "08:00-08:30"}

    def getRegistrationInfo(self, data: dict) -> dict:
        _require(data, "WorkId", "WorkDate")
        session = self.state.sessions.get(data["WorkId"])
        if session is None:
            raise HisRefusal("排班不存在")
        return {
            "WorkInfo": [
                {
                    "TransactionId": data.get("TransactionId", ""),
                    "HospitalNo": self.state.hospital_no,
                    "WorkId": session.work_id,
                    "RegistrationNumber": str(session.remaining),
                    "Price": session.price,
                }
            ]
        }

    def getPromiseNotice(self, data: dict) -> dict:
        order = self._order(data)
        if order.status == "3":
            raise HisRefusal("该订单已退号")  # a HIS does not promise to accept a second 退号
        order.status = "3"
        self.state.sessions[order.work_id].remaining += 1
        return {"WorkFlowId": order.work_flow_id}

    def GetOrderDetailInfo(self, data: dict) -> dict:
        order = self._order(data)
        return {
            "WorkFlowId": order.work_flow_id,
            "SerialNumber": str(order.serial),
            "WorkFlowStatus": order.status,
            "WorkId": order.work_id,
            "Worktime": "08:00-08:30",
            "Fee": self.state.sessions[order.work_id].price,
            "Name": order.name,
            "IDCode": order.id_code,
        }

    def GetLineupDetailInfo(self, data: dict) -> dict:
        _require(data, "WorkId")
        return {"WaitList": [{"RegNum": "3", "RegRemainNum": "7", "WaitPers": "2", "NowSeq": "4"}]}

    def GetDaypartingDetailInfo(self, data: dict) -> dict:
        _require(data, "WorkId")
        session = self.state.sessions.get(data["WorkId"])
        if session is None:
            raise HisRefusal("排班不存在")
        return {
            "NumberList": [
                {
                    "StartDate": f"{session.work_date} 08:00:00.0",
                    "EndDate": f"{session.work_date} 08:30:00.0",
                    "CurNum": "1",
                    "SeeDate": f"{session.work_date} 08:00:00.0",
                    "Status": "1",
                    "numSourceId": f"{session.work_id}-1",
                }
            ]
        }

    def CheckMediCardIdService(self, data: dict) -> dict:
        _require(data, "MediCardId", "UserCardNo")
        valid = self.state.cards.get(data["UserCardNo"]) == data["MediCardId"]
        return {"IsValid": "true" if valid else "false", "UserCardNo": data["UserCardNo"],
                "UserName": data.get("UserName", "")}  # fmt: skip

    def queryCardListInfo(self, data: dict) -> dict:
        _require(data, "UserCardNo")
        # A patient without a card gets one (建档), as the platform's channels expect.
        card = self.state.cards.setdefault(data["UserCardNo"], f"{len(self.state.cards) + 1:010d}")
        now = _java_now()
        return {"cardList": [{"CardNo": card, "Name": data.get("UserName", ""), "CreateTime": now,
                              "LastTime": now, "phone": "13400001234"}]}  # fmt: skip


def _render(fields: dict, lower: bool) -> str:
    def name(n: str) -> str:
        return n.lower() if lower else n

    def build(parent, data):
        for key, value in data.items():
            if isinstance(value, list):
                container = etree.SubElement(parent, name(key))
                for item in value:
                    build(etree.SubElement(container, name("Record")), item)
            else:
                etree.SubElement(parent, name(key)).text = value

    root = etree.Element(name("Response"))
    build(root, fields)
    return etree.tostring(root, encoding="unicode")


class VendorHis:
    """The WSGI application of one simulated hospital in one style."""

    def __init__(self, style: Style, state: HisState):
        self.style = style
        self.state = state
        self.handlers = Handlers(state)

    # -- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            return self._plain(start_response, "405 Method Not Allowed", "POST only")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        content_type = environ.get("CONTENT_TYPE", "")
        try:
            status, payload, lost = self._dispatch(body, content_type, environ.get("HTTP_SOAPACTION"))
        except _Reject as reject:
            return self._send(start_response, reject.status, reject.payload, reject.content_type)
        if lost:
            time.sleep(lost)
        return self._send(start_response, status, payload, self._content_type())

    def _content_type(self) -> str:
        kind = "application/soap+xml" if self.style.soap == "1.2" else "text/xml"
        return f"{kind}; charset={self.style.encoding}"

    def _plain(self, start_response, status: str, text: str):
        data = text.encode("utf-8")
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
        return [data]

    def _send(self, start_response, status: str, payload: bytes, content_type: str):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
        return [payload]

    # -- SOAP -----------------------------------------------------------------------------------

    def _dispatch(self, body: bytes, content_type: str, soap_action: str | None) -> tuple[str, bytes, float]:
        style = self.style
        soap12 = content_type.startswith("application/soap+xml")
        if style.soap == "1.2" and not soap12:
            raise _Reject(
                "415 Unsupported Media Type",
                f"Cannot process the message because the content type '{content_type}' was not the expected "
                "type 'application/soap+xml; charset=utf-8'.".encode(),
                "text/plain; charset=utf-8",
            )
        if style.soap == "1.1" and soap12:
            raise _Reject("500 Internal Server Error", self._fault("Client", "SOAP 1.2 is not supported", False))
        charset = re.search(r"charset\s*=\s*\"?([\w\-]+)", content_type)
        if charset and not body.lstrip().startswith(b"<?xml"):
            # Like most Java stacks: the transport's charset, when the body does not declare one.
            body = f'<?xml version="1.0" encoding="{charset.group(1)}"?>'.encode() + body
        try:
            root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        except etree.XMLSyntaxError as exc:
            raise _Reject("500 Internal Server Error", self._fault("Client", f"Unmarshalling Error: {exc}")) from None
        soap_body = root.find(f"{{{SOAP12 if soap12 else SOAP11}}}Body")
        wrapper = next((e for e in soap_body if isinstance(e.tag, str)), None) if soap_body is not None else None
        if wrapper is None:
            raise _Reject("500 Internal Server Error", self._fault("Client", "No operation element"))
        qname = etree.QName(wrapper)
        if qname.namespace != style.namespace or qname.localname not in OPERATIONS:
            raise _Reject(
                "500 Internal Server Error",
                self._fault("Client", f"Unexpected wrapper element {{{qname.namespace}}}{qname.localname} found."),
            )
        operation = qname.localname
        action = _action(content_type) if soap12 else (soap_action or "").strip('"')
        if style.action_prefix is not None and action != style.expected_action(operation):
            text = f"Server did not recognize the value of HTTP Header SOAPAction: {action}."
            raise _Reject("500 Internal Server Error", self._fault("Client", text))
        part = next((e for e in wrapper if isinstance(e.tag, str)), None)
        wanted = f"{{{style.namespace}}}{style.part}" if style.qualified_part else style.part
        if part is None or part.tag != wanted:
            got = etree.QName(part) if part is not None else None
            uri = (got.namespace or "") if got is not None else ""
            local = got.localname if got is not None else ""
            expected = f"<{{{style.namespace}}}{style.part}>" if style.qualified_part else f"<{{}}{style.part}>"
            raise _Reject(
                "500 Internal Server Error",
                self._fault(
                    "Client",
                    f'Unmarshalling Error: unexpected element (uri:"{uri}", local:"{local}"). '
                    f"Expected elements are {expected}",
                ),
            )
        answer, lost = self._answer(operation, part.text or "")
        return "200 OK", self._envelope(operation, answer), lost

    def _answer(self, operation: str, text: str) -> tuple[str, float]:
        lost = 0.0
        with self.state.lock:
            dropped = self.state.lose_requests.get(operation)
            delay = dropped.pop(0) if dropped else None
        if delay is not None:
            time.sleep(delay)
            raise _Reject("503 Service Unavailable", b"busy", "text/plain")
        with self.state.lock:
            self.state.received.setdefault(operation, []).append(text)
            try:
                message = etree.fromstring(
                    re.sub(r"^\s*<\?xml[^>]*\?>", "", text).encode("utf-8"),
                    etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False),
                )
                data = _fields(message)
                if data.get("HospitalNo") and data["HospitalNo"] != self.state.hospital_no:
                    raise HisRefusal("医院编码错误")
                refusals = self.state.refuse_next.get(operation)
                if refusals:
                    raise HisRefusal(refusals.pop(0))
                fields = {"ResultCode": "0", "ErrorMsg": ""}
                fields.update(getattr(self.handlers, operation)(data))
            except HisRefusal as exc:
                fields = {"ResultCode": "1", "ErrorMsg": str(exc)}
            except etree.XMLSyntaxError:
                fields = {"ResultCode": "1", "ErrorMsg": "XML格式错误"}
            pending = self.state.lose_answers.get(operation)
            if pending:
                lost = pending.pop(0)
        return _render(fields, self.style.lower_case_answers), lost

    def _envelope(self, operation: str, answer: str) -> bytes:
        style = self.style
        soap_ns = SOAP12 if style.soap == "1.2" else SOAP11
        if style.name == "asmx":
            inner = (
                f'<{operation}Response xmlns="{style.namespace}"><{operation}Result>{escape(answer)}'
                f"</{operation}Result></{operation}Response>"
            )
        else:
            inner = (
                f'<ns2:{operation}Response xmlns:ns2="{style.namespace}"><return>{escape(answer)}</return>'
                f"</ns2:{operation}Response>"
            )
        text = (
            f'<?xml version="1.0" encoding="{style.encoding}"?>'
            f'<soap:Envelope xmlns:soap="{soap_ns}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
        )
        return text.encode(style.encoding)

    def _fault(self, code: str, text: str, soap12: bool | None = None) -> bytes:
        soap12 = self.style.soap == "1.2" if soap12 is None else soap12
        if soap12:
            value = "soap:Sender" if code == "Client" else "soap:Receiver"
            fault = (
                f"<soap:Fault><soap:Code><soap:Value>{value}</soap:Value></soap:Code>"
                f'<soap:Reason><soap:Text xml:lang="en">{escape(text)}</soap:Text></soap:Reason></soap:Fault>'
            )
            ns = SOAP12
        else:
            fault = (
                f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{escape(text)}</faultstring></soap:Fault>"
            )
            ns = SOAP11
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{ns}"><soap:Body>{fault}'
            "</soap:Body></soap:Envelope>"
        ).encode()


class _Reject(Exception):
    def __init__(self, status: str, payload: bytes, content_type: str = "text/xml; charset=utf-8"):
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.content_type = content_type


def _action(content_type: str) -> str:
    match = re.search(r'action\s*=\s*"?([^";]+)"?', content_type)
    return match.group(1) if match else ""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@dataclass
class RunningHis:
    """A simulated hospital listening on 127.0.0.1:<port>."""

    style: Style
    state: HisState
    url: str
    server: WSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(style: Style | str, hospital_no: str) -> RunningHis:
    """Start a simulated hospital in `style` for `hospital_no` on a free port."""
    style = STYLES[style] if isinstance(style, str) else style
    state = HisState(hospital_no)
    server = make_server(
        "127.0.0.1", 0, VendorHis(style, state), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name=f"vendor-his-{style.name}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/his/services/RegService"
    return RunningHis(style, state, url, server, thread)


@pytest.fixture
def vendor_his():
    """Factory: `vendor_his("cxf", "V001")` starts a simulated hospital; all are stopped afterwards."""
    running: list[RunningHis] = []

    def start(style: Style | str, hospital_no: str) -> RunningHis:
        his = serve(style, hospital_no)
        running.append(his)
        return his

    yield start
    for his in running:
        his.stop()


def hospital_releases(state: HisState, work_id: str) -> int:
    """The hospital's staff release every lock held on `work_id` at their desk; returns how many."""
    released = 0
    with state.lock:
        for order in state.orders.values():
            if order.work_id == work_id and order.status == "1":
                order.status = "3"
                state.sessions[work_id].remaining += 1
                released += 1
    return released
