"""Referral actors: a sending community hospital (level 1, the spec's PDY1234567890), a receiving
level-3 hospital with departments, and a poster for the servlet."""

from __future__ import annotations

import pytest

from regional.models import Department
from tests.referral.support import RECEIVER_NO, SENDER_NO, SERVLET, answer, basic


@pytest.fixture(autouse=True)
def _on_postgresql(postgres):
    """The referral suite runs on PostgreSQL (skips with SERVICE-MISSING without it)."""


@pytest.fixture
def sender(make_hospital):
    hospital = make_hospital(SENDER_NO, "测试社区卫生服务中心")
    hospital.degree_name = "一级甲等"
    hospital.save()
    return hospital


@pytest.fixture
def receiver(make_hospital):
    hospital = make_hospital(RECEIVER_NO, "测试第二人民医院")
    hospital.degree_name = "三级甲等"
    hospital.save()
    for dept_id, name, abbr in (("K01", "心血管内科", "XXGNK"), ("K02", "神经内科", "SJNK"), ("K03", "心内科", "XNK")):
        Department.objects.create(hospital=hospital, department_id=dept_id, name=name, name_abbr=abbr)
    return hospital


@pytest.fixture
def post(client):
    """POST a body to the servlet (Basic auth as `as_hospital` unless auth=False); returns the Answer."""

    def send(
        body: str | bytes,
        *,
        as_hospital: str | None = SENDER_NO,
        secret: str | None = None,
        content_type="text/xml; charset=UTF-8",
        **extra,
    ):
        data = body.encode("utf-8") if isinstance(body, str) else body
        headers = dict(extra)
        if as_hospital:
            headers["HTTP_AUTHORIZATION"] = basic(as_hospital, secret) if secret else basic(as_hospital)
        response = client.generic("POST", SERVLET, data=data, content_type=content_type, **headers)
        return answer(response.status_code, response["Content-Type"], response.content)

    return send
