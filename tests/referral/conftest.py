"""Referral actors: a sending community hospital (level 1, the spec's PDY1234567890), a receiving
level-3 hospital with departments, and a poster for the servlet."""

from __future__ import annotations

import pytest

from booking.models import Schedule
from regional.models import Department
from sandbox import services as sandbox
from sandbox.models import SandboxHospital
from tests.base import (
    HIS,
    RECEIVER_NO,
    SECRET,
    SENDER_NO,
    SERVLET,
    ZNTS,
    answer,
    basic,
    form,
    his_url,
    query_xml,
    start_xml,
)
from tests.factories import SandboxDepartmentFactory, SandboxDoctorFactory, SandboxHospitalFactory, session


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


@pytest.fixture
def his(public_url, receiver) -> SandboxHospital:
    """The receiving hospital H0002 is the sandbox hospital: the platform calls its HIS over HTTP."""
    receiver.endpoint_url = his_url(public_url, RECEIVER_NO)
    receiver.save()
    return SandboxHospitalFactory(
        hospital_no=RECEIVER_NO, name="测试第二人民医院", center_url=f"{public_url}/ws/center", center_secret=SECRET
    )


@pytest.fixture
def pushed(his):
    """A morning session of 心血管内科 (K01, the referral's department) with 王医生, pushed to the center."""

    def make(slots: int = 5, days_ahead: int = 1) -> Schedule:
        department = SandboxDepartmentFactory(hospital=his, department_id="K01", name="心血管内科")
        doctor = SandboxDoctorFactory(hospital=his, department=department, doctor_id="D100", name="王医生")
        pushed_session = session(his, slots=slots, days_ahead=days_ahead, doctor=doctor)
        answer = sandbox.center_push_schedules(hospital=his, schedules=[pushed_session], full=False)
        assert answer.ok, answer.summary()
        return Schedule.objects.select_related("hospital").get(work_id=pushed_session.work_id)

    return make


@pytest.fixture
def links(sender, receiver, his, client, post) -> tuple[str, str]:
    """(his.html, znts.html) as the two HIS open them: a submitted referral of 张三 to 心血管内科."""
    his_page = f"{HIS}?{post(start_xml()).parm}"
    assert client.post(his_page, form()).status_code == 302
    return his_page, f"{ZNTS}?{post(query_xml(), as_hospital=RECEIVER_NO).parm}"
