"""The suite's shared actors, in one place (fixtures in the conftest.py files call these; data
rows come from tests/factories.py). No real personal data: ID numbers from `fake_id` (region code
999999, which no region has, with a valid GB 11643 check digit) where the platform checks them.

- the platform's side: hospitals with credentials, channels and their REST API over HTTP,
  booking rules, schedules as a hospital pushes them (2.1);
- the sandbox hospital over HTTP (its HIS at /sandbox/his/<HospitalNo>/ws);
- the referral HIS: messages for the servlet and its answers;
- the finance office: statement sources and the sandbox channel's bills;
- waiting for the Celery worker, and the per-test reset of shared state.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import pathlib
import re
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

import requests
from django.core.cache import cache
from django.utils import timezone
from lxml import etree

from booking.models import BookingRules
from booking.rules import rules_cache_clear
from booking.services.channels import channel_issue_token
from booking.services.schedules import schedules_sync
from config.celery import app
from reconciliation import selectors as reconciliation_selectors
from reconciliation import services as reconciliation_services
from regional import hospital_client, hospital_wsdl, idnumber
from regional.messages import read_xml
from regional.messages.catalog import SYNCHRONIZED_WORK_INFO
from regional.messages.schema import Field, RecordList
from regional.services import hospital_onboard
from sandbox import demo
from sandbox import payments as payment_sandbox
from sandbox.models import SandboxOrder
from tests.factories import PATIENT, source

SPEC_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "spec"
SECRET = "test-secret-not-for-production-0001"


def fake_id(n: int = 1) -> str:
    """A visibly fictitious resident ID number that passes the GB 11643 check: region 999999 (no such
    region), a birth date from 1980-01-01 on and a sequence, both from `n` (distinct numbers for
    distinct n), and the computed check digit. 18 digits, so the leak check still finds it unmasked."""
    first17 = f"999999{dt.date(1980, 1, 1) + dt.timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return first17 + idnumber.check_digit(first17)


def masked_id(n: int = 1) -> str:
    """How the platform masks `fake_id(n)` where people read it (first 4 and last 4 kept)."""
    value = fake_id(n)
    return value[:4] + "*" * 10 + value[-4:]


def spec_example(name: str) -> str:
    """A message exactly as the specification prints it (tests/fixtures/spec)."""
    return (SPEC_FIXTURES / name).read_text(encoding="utf-8")


def local(day: dt.date, hour: int = 9, minute: int = 0, second: int = 0) -> dt.datetime:
    """An aware local time on `day`."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute, second)))


def yesterday() -> dt.date:
    return timezone.localdate() - dt.timedelta(days=1)


def reply_fields(text: str) -> dict:
    """The child elements of an inner answer message, by tag."""
    root = etree.fromstring(text.encode())
    return {child.tag: (child.text or "") for child in root}


def message_fields_replace(fields, values: dict, replacement) -> None:
    """Walk a message description's fields over `values` (records and record lists included); a field
    gets the value `replacement()` returns, unless that is None."""
    for node in fields:
        if isinstance(node, Field):
            value = replacement()
            if value is not None:
                values[node.name] = value
        elif isinstance(node, RecordList):
            for item in values.get(node.name) or []:
                message_fields_replace(node.fields, item, replacement)
        elif values.get(node.name):
            message_fields_replace(node.fields, values[node.name], replacement)


def message_fill(parent, fields, values: dict, *, xml_chars_only: bool = False) -> None:
    """Child elements of `parent` for `values` as the message description lays them out; with
    `xml_chars_only`, characters XML cannot carry are left out of the text."""
    for node in fields:
        value = values.get(node.name)
        child = etree.SubElement(parent, node.name)
        if isinstance(node, Field):
            text = value if isinstance(value, str) else node.format(value)
            if xml_chars_only:
                text = "".join(
                    ch for ch in text if ch in "\t\n\r" or (ord(ch) >= 32 and not 0xD800 <= ord(ch) <= 0xDFFF)
                )
            child.text = text
        elif isinstance(node, RecordList):
            for item in value or []:
                message_fill(etree.SubElement(child, node.item), node.fields, item, xml_chars_only=xml_chars_only)
        else:
            message_fill(child, node.fields, value or {}, xml_chars_only=xml_chars_only)


# -- shared state ------------------------------------------------------------------------------


def shared_state_clear() -> None:
    """A clean cache (circuit breakers, rate limits, slot caches) and no cached SOAP clients."""

    cache.clear()
    hospital_wsdl.clear_clients()


def drop_dead_connections() -> None:
    """Close this context's database connections that a PostgreSQL restart killed. Playwright's
    sync API runs the test inside its own context, where Django keeps connections of its own: one
    opened by an earlier browser test would otherwise be handed back dead."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
            connection.close()


def forget_broker_connections() -> None:
    """Celery caches its broker connection pool on first use, eager calls included (they borrow a
    producer since Celery 5.3). Dropped after each in-process test, so that the Celery worker
    fixture, which switches the broker to Redis later in the session, is reached through Redis."""
    # References dropped, nothing closed: kombu keeps producer pools per broker URL and hands an
    # open one back when the same broker is asked for again.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Wait for the Celery worker (another process) to have done something; never used to let time pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


# -- hospitals -----------------------------------------------------------------------------------


def hospital_make(hospital_no: str = "H0001", name: str = "测试第一医院", secret: str = SECRET, **kwargs):
    """A hospital onboarded as staff onboard one: the platform's row with its credentials."""
    hospital, _ = hospital_onboard(hospital_no=hospital_no, name=name, secret=secret, **kwargs)
    return hospital


def his_url(public_url: str, hospital_no: str) -> str:
    """The sandbox hospital's HIS endpoint, where the platform calls it over HTTP."""
    return f"{public_url}/sandbox/his/{hospital_no}/ws"


def sandbox_platform_hospital(public_url: str, hospital_no: str = "S001", **kwargs):
    """The platform's record of a sandbox hospital, pointing at its HIS over HTTP."""
    return hospital_make(hospital_no, endpoint_url=his_url(public_url, hospital_no), **kwargs)


def demo_his(public_url: str, *, platform_name: str, name: str, level: int, days: int, hospital_no: str = "S001"):
    """A demo sandbox hospital (departments, doctors, `days` of sessions) that calls the platform like
    a real HIS, and the platform's record of it (under `platform_name`)."""
    hospital_make(hospital_no, name=platform_name, endpoint_url=his_url(public_url, hospital_no))
    return demo.hospital_build(
        hospital_no=hospital_no, name=name, level=level, center_url=f"{public_url}/ws/center",
        center_secret=SECRET, days=days,
    )  # fmt: skip


def confirm_registration(hospital, schedule, **extra) -> dict:
    """3.1 confirmRegistration at the sandbox hospital through the platform's client."""
    return hospital_client.call(hospital, "confirmRegistration", {"WorkId": schedule.work_id, **PATIENT, **extra})


# -- schedules as a hospital pushes them (2.1) -------------------------------------------------------


def record(n: int = 1, **overrides: str) -> dict[str, str]:
    """One synchronizedWorkInfo record of hospital H0001, tomorrow morning."""
    values = {
        "WorkId": f"W{n:05d}",
        "WorkAddr": "门诊楼二楼",
        "DoctorId": "D01",
        "DoctorName": "张三丰",
        "DepartmentId": "K01",
        "DepartmentName": "心血管内科",
        "WorkDate": (timezone.localdate() + dt.timedelta(days=1)).isoformat(),
        "WorkTimeCode": "1",
        "WorkStartDate": "08:00",
        "WorkStopDate": "11:30",
        "RegistrationTypeId": "1",
        "RegistrationTypeName": "专家号",
        "RegistrationPrice": "25.50",
        "RegistrationNumber": "18",
        "RegistrationCount": "20",
        "HosLockedCount": "2",
    }
    values.update(overrides)
    return values


def elements(values: dict[str, str]) -> str:
    return "".join(f"<{name}>{value}</{name}>" for name, value in values.items())


def sync_message(records: list[dict], *, tx: str, multi: str = "0", count: int | None = None) -> str:
    body = "".join(f"<Record>{elements(r)}</Record>" for r in records)
    return (
        f"<Request><TransactionId>{tx}</TransactionId><HospitalNo>H0001</HospitalNo>"
        f"<Count>{len(records) if count is None else count}</Count><IsMultiTimes>{multi}</IsMultiTimes>"
        f"<WorkInfo>{body}</WorkInfo></Request>"
    )


def cleaned_record(values: dict[str, str]) -> dict:
    """One record cleaned by the message description (as 2.3's NewWorkInfo would be)."""
    return SYNCHRONIZED_WORK_INFO.request.parse(read_xml(sync_message([values], tx="x")))["WorkInfo"][0]


def apply(hospital, records: list[dict], *, multi: str = "0") -> int:
    """The service, fed with records cleaned by the message description exactly as the pipeline does."""
    data = SYNCHRONIZED_WORK_INFO.request.parse(read_xml(sync_message(records, tx="direct", multi=multi)))
    return schedules_sync(hospital=hospital, records=data["WorkInfo"], clear_future=multi == "1")


# -- booking channels ------------------------------------------------------------------------------


def patient(n: int = 1, **overrides) -> dict:
    """A visibly fictitious patient (ID number from `fake_id`)."""
    data = {
        "name": f"测试患者{n}",
        "id_card": fake_id(n),
        "phone": f"1340000{n:04d}",
        "sex": "1",
        "age": "40",
        "address": "演示市测试路1号",
    }
    data.update(overrides)
    return data


@dataclass
class Api:
    """The REST API over HTTP, as a channel calls it."""

    base: str
    token: str
    session: requests.Session

    def _headers(self, headers: dict | None) -> dict:
        return {"Authorization": f"Token {self.token}", **(headers or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> requests.Response:
        return self.session.get(f"{self.base}{path}", params=params, headers=self._headers(headers), timeout=60)

    def post(self, path: str, json: dict | None = None, headers: dict | None = None) -> requests.Response:
        return self.session.post(f"{self.base}{path}", json=json or {}, headers=self._headers(headers), timeout=60)

    def delete(self, path: str, headers: dict | None = None) -> requests.Response:
        return self.session.delete(f"{self.base}{path}", headers=self._headers(headers), timeout=60)

    def lock(self, schedule, n: int = 1, **extra) -> requests.Response:
        body = {"hospital_no": schedule.hospital.hospital_no, "work_id": schedule.work_id, "patient": patient(n)}
        body.update(extra)
        return self.post("/api/v1/orders/", body)

    def pay(self, order: dict, **extra) -> requests.Response:
        body = {
            "pay_type": "4",
            "amount": order["fee"],
            "pay_trade_no": f"T{order['order_no']}",
            "pay_channel": "wepay",
        }
        body.update(extra)
        return self.post(f"/api/v1/orders/{order['order_no']}/pay", body)


def channel_api(public_url: str, *, code: str, name: str) -> Api:
    """A booking channel with a fresh API token, and the REST API as it calls it."""
    _, token = channel_issue_token(code=code, name=name)
    return Api(public_url, token, requests.Session())


def lock(api: Api, schedule, n: int = 1, **extra) -> dict:
    """A lock that must succeed (201): the order as the API answers it."""
    response = api.lock(schedule, n, **extra)
    assert response.status_code == 201, response.text
    return response.json()


def sandbox_order(order):
    """The sandbox hospital's own record of a platform order (an Order or the API's answer)."""
    workflow_id = order["workflow_id"] if isinstance(order, dict) else order.workflow_id
    return SandboxOrder.objects.get(work_flow_id=workflow_id)


def region_rules(**values):
    """The region-wide booking rules row, with `values`."""
    rules, _ = BookingRules.objects.update_or_create(hospital=None, defaults=values)
    rules_cache_clear()
    return rules


def hospital_rules(hospital, **values):
    """One hospital's own booking rules row, with `values`."""
    rules, _ = BookingRules.objects.update_or_create(hospital=hospital, defaults=values)
    rules_cache_clear()
    return rules


# -- the finance office ------------------------------------------------------------------------------


def bill(pay_channel: str, day: dt.date, **knobs):
    """The sandbox channel's bill of `day` from the ledger, as bytes, with its manifest."""
    out = io.BytesIO()
    layout = "alipay" if pay_channel == "alipay" else "wechat"
    manifest = payment_sandbox.write_bill(
        layout=layout,
        bill_date=day,
        entries=reconciliation_selectors.ledger_bill_entries(pay_channel=pay_channel, day=day),
        out=out,
        knobs=payment_sandbox.Knobs.from_options(knobs),
    )
    return out.getvalue(), manifest


def import_bill(pay_channel: str, day: dt.date, **knobs):
    """The sandbox channel's bill of `day`, imported as staff import one; returns its manifest."""
    content, manifest = bill(pay_channel, day, **knobs)
    reconciliation_services.statement_import(
        source=source(pay_channel), bill_date=day, file=io.BytesIO(content), filename="bill.csv"
    )
    return manifest


# -- the referral HIS ----------------------------------------------------------------------------------

SENDER_NO = "PDY1234567890"  # the hospital code the specification's examples use
RECEIVER_NO = "H0002"
SERVLET = "/referral/api/SxzzAppServlet"
HIS = "/referral/referral/his.html"
ZNTS = "/referral/referral/znts.html"
PARM = re.compile(r"^referralCode=([0-9A-F]{40})&type=(mz|zy)$")

START_VALUES = {
    "orderid": "ORD-0001",
    "fqyydm": SENDER_NO,
    "fqyymc": "测试社区卫生服务中心",
    "fqksdm": "KS00110",
    "fqksmc": "全科",
    "fqysgh": "YS9900",
    "fqysxm": "李医生",
    "brlx": "1",
    "hzxm": "张三",
    "jzkh": "A01234567",
    "jzklx": "0",
    "sfzh": fake_id(1234),
    "csrq": "19900101",
    "lxdh": "13400001234",
    "jtdz": "嵊州市某某街道1号",
    "cbzd": "高血压3级",
    "bszy": "头晕三天，血压180/110mmHg",
    "zyjws": "糖尿病十年",
    "zlqk": "口服降压药，效果不佳",
    "zzmd": "进一步诊治",
    "jjcd": "2",
    "mzzycxbz": "zy",
}

BESPEAK = {
    "ghdh": "GH20260101001",
    "rsid": "WORK-001",
    "status": "1",
    "yyrq": "2026-12-01",
    "ksdm": "K01",
    "ksmc": "心血管内科",
    "ysgh": "D100",
    "ysxm": "王医生",
    "kssj": "08:00",
    "jssj": "08:30",
}


def form(**overrides) -> dict:
    """The application form (his.html) as the sending doctor submits it: to H0002's 心血管内科."""
    return {
        "action": "submit",
        "hospital": RECEIVER_NO,
        "department": "K01",
        "urgency": "1",
        "purpose": "进一步诊治",
        "notes": "请安排床位",
        **overrides,
    }


def apply_values(**overrides) -> dict:
    values = {**START_VALUES, "orderid": "APPLY-0001", "zryydm": RECEIVER_NO, "zrksdm": "K01", "mzzycxbz": "MZ"}
    values["bespeak"] = dict(BESPEAK)
    values.update(overrides)
    return values


def build(root: str, values: dict, *, drop: tuple[str, ...] = ()) -> str:
    """A message with one element per value (in the given order), nested for dict values."""

    def render(items: dict) -> str:
        parts = []
        for name, value in items.items():
            if name in drop:
                continue
            inner = render(value) if isinstance(value, dict) else escape(str(value))
            parts.append(f"<{name}>{inner}</{name}>")
        return "".join(parts)

    return f"<{root}>{render(values)}</{root}>"


def start_xml(**overrides) -> str:
    drop = tuple(k for k, v in overrides.items() if v is None)
    return build("referral", {**START_VALUES, **{k: v for k, v in overrides.items() if v is not None}}, drop=drop)


def query_xml(**overrides) -> str:
    values = {
        "yydm": RECEIVER_NO,
        "ysgh": "ZR001",
        "hzxm": START_VALUES["hzxm"],
        "jzkh": START_VALUES["jzkh"],
        "jzklx": START_VALUES["jzklx"],
        "sfzh": START_VALUES["sfzh"],
    }
    drop = tuple(k for k, v in overrides.items() if v is None)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return build("referral-query", values, drop=drop)


def basic(hospital_no: str, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{hospital_no}:{secret}".encode()).decode()


@dataclass
class Answer:
    status: int
    content_type: str
    text: str
    root: str
    fields: dict

    @property
    def result(self) -> str:
        return self.fields.get("result", "")

    @property
    def message(self) -> str:
        return self.fields.get("message", "")

    @property
    def parm(self) -> str:
        return self.fields.get("parm", "")

    @property
    def code(self) -> str:
        match = PARM.match(self.parm)
        assert match, self.parm
        return match.group(1)


def answer(status: int, content_type: str, body: bytes) -> Answer:
    root = etree.fromstring(body)
    fields = {child.tag: (child.text or "") for child in root}
    return Answer(status, content_type, body.decode("utf-8"), root.tag, fields)
