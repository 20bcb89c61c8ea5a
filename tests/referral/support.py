"""Builders for referral messages and answers, shared by the referral tests."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from tests.conftest import SECRET

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
    "sfzh": "3306XXXXXXXXXX1234",
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
