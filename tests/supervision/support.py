"""Builders of the supervision scenario: sessions pushed over SOAP, bookings over REST, referrals
over the servlet and the notice pages. No real personal data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from booking.models import Schedule
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxSchedule
from tests.base import SECRET, Api, apply_values, build, fake_id, lock, query_xml
from tests.base import sandbox_order as at_hospital
from tests.factories import SandboxDepartmentFactory, SandboxDoctorFactory


def push_session(
    his: SandboxHospital, *, slots: int, department: tuple[str, str] | None = None, days_ahead: int = 1
) -> tuple[SandboxSchedule, Schedule]:
    """A morning session pushed with synchronizedWorkInfo (2.1); timeshare off unless slots are chosen."""
    dept = SandboxDepartmentFactory(hospital=his, **({"department_id": department[0], "name": department[1]}
                                                     if department else {}))  # fmt: skip
    doctor = SandboxDoctorFactory(hospital=his, department=dept)
    session = sandbox.schedule_create(
        hospital=his, doctor=doctor, work_date=timezone.localdate() + dt.timedelta(days=days_ahead),
        work_time_code="1", start_time=dt.time(8, 0), stop_time=dt.time(10, 0), slots=slots,
        price=Decimal("10.00"), timeshare=True,
    )  # fmt: skip
    answer = sandbox.center_push_schedules(hospital=his, schedules=[session], full=False)
    assert answer.ok, answer.summary()
    return session, Schedule.objects.select_related("hospital").get(work_id=session.work_id)


def apply_referral(post, sender: str, receiver: str, order_id: str, n: int) -> None:
    """referral-apply from the sending hospital's HIS: a complete referral, submitted at once."""
    values = apply_values(
        orderid=order_id, fqyydm=sender, zryydm=receiver, zrksdm="K01", hzxm=f"转诊患者{n}",
        jzkh=f"A0000000{n}", sfzh=fake_id(2000 + n), lxdh=f"1340000200{n}", mzzycxbz="ZY",
    )  # fmt: skip
    values.pop("bespeak")
    answer = post(build("referral-apply", values), as_hospital=sender)
    assert answer.result == "true", answer.text


def notice_link(post, receiver: str, n: int) -> str:
    """The receiving hospital's HIS asks for the patient's referral notice (referral-query)."""
    xml = query_xml(yydm=receiver, hzxm=f"转诊患者{n}", jzkh=f"A0000000{n}", sfzh=fake_id(2000 + n))
    answer = post(xml, as_hospital=receiver)
    assert answer.result == "true", answer.text
    return f"/referral/referral/znts.html?{answer.parm}"


@dataclass
class Month:
    """What the scenario built, for the assertions."""

    orders: dict[str, dict] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    sessions: dict[str, SandboxSchedule] = field(default_factory=dict)


def build_month(region, api: Api, other_api: Api, client, post) -> Month:
    """The scenario every indicator is counted against by hand (tests/supervision/test_indicators.py).

    A (S001, 三级): A1 5 numbers, A2 3 numbers in 心血管内科 (K01).
        o1 WeChat with a chosen slot (numSourceId), paid, seen (2.4 type 4); o2 WeChat, seen;
        o3 APP, no-show (2.4 type 6); o4 APP, cancelled by the patient over REST;
        o5 WeChat, refused by the hospital (lock failed).
    B (S002, 二级): B1 3 numbers, stopped (2.2) after o6 (WeChat, paid online) and o7 (APP, unpaid)
        booked; B2 2 numbers in K01, where o6's patient books again (o8, WeChat).
    C (S003, 一级): C1 2 numbers in K01: o9 APP, seen. A slot query while C's interface answers
        HTTP 500, and one stop notice for a session C never pushed (refused).
    Referrals: R1 C→A (上转) accepted with a booking on A2, seen; R2 A→C (下转) accepted;
        R3 B→A (上转) submitted three days ago and accepted now (late); R4 C→B (上转) pending.
    """
    from django.db.models import F

    from referral.models import Referral
    from regional.messages import catalog
    from sandbox import center

    a, b, c = region["A"], region["B"], region["C"]
    month = Month()
    for key, his, slots, dept in (
        ("A1", a, 5, None), ("A2", a, 3, ("K01", "心血管内科")), ("B1", b, 3, None), ("B2", b, 2, ("K01", "内科")),
        ("C1", c, 2, ("K01", "全科")),
    ):  # fmt: skip
        month.sessions[key], month.schedules[key] = push_session(his, slots=slots, department=dept)
    a1, b1, b2, c1 = (month.schedules[k] for k in ("A1", "B1", "B2", "C1"))
    orders = month.orders
    # A: bookings, payment, a cancel, a refused lock, fulfilment and a no-show reported with 2.4.
    slots = api.get(f"/api/v1/schedules/{a1.pk}/slots/").json()["slots"]
    orders["o1"] = lock(api, a1, 1, num_source_id=slots[0]["num_source_id"])
    assert api.pay(orders["o1"]).status_code == 200
    orders["o2"] = lock(api, a1, 2)
    orders["o3"] = lock(other_api, a1, 3)
    orders["o4"] = lock(other_api, a1, 4)
    cancel = other_api.post(f"/api/v1/orders/{orders['o4']['order_no']}/cancel", {"reason": "行程有变"})
    assert cancel.status_code == 200, cancel.text
    sandbox.hospital_fault_set(hospital=a, mode="error", operations=["confirmRegistration"])
    assert api.lock(a1, 5).status_code != 201
    sandbox.hospital_fault_set(hospital=a)
    seen = [sandbox.queue_call_next(schedule=month.sessions["A1"]) for _ in range(2)]
    assert {o.work_flow_id for o in seen} == {orders["o1"]["workflow_id"], orders["o2"]["workflow_id"]}
    sandbox.order_mark_no_show(order=at_hospital(orders["o3"]))
    assert sandbox.center_push_promise(orders=[at_hospital(orders[k]) for k in ("o1", "o2", "o3")]).ok
    # B: two bookings, then the session is stopped; o6's patient books again at B.
    orders["o6"] = lock(api, b1, 6)
    assert api.pay(orders["o6"]).status_code == 200
    orders["o7"] = lock(other_api, b1, 7)
    assert sandbox.schedule_stop_and_notify(schedule=month.sessions["B1"], reason="医生外出会诊").ok
    orders["o8"] = lock(api, b2, 6)
    # C: an unanswered slot query, a booking that is kept, a refused message.
    sandbox.hospital_fault_set(hospital=c, mode="http500", operations=["GetDaypartingDetailInfo"])
    assert api.get(f"/api/v1/schedules/{c1.pk}/slots/").status_code != 200
    sandbox.hospital_fault_set(hospital=c)
    orders["o9"] = lock(other_api, c1, 9)
    assert sandbox.queue_call_next(schedule=month.sessions["C1"]).work_flow_id == orders["o9"]["workflow_id"]
    assert sandbox.center_push_promise(orders=[at_hospital(orders["o9"])]).ok
    refused = center.send(
        hospital_no=c.hospital_no, center_url=c.center_url, secret=SECRET, interface=catalog.STOP_WORK_NOTICE,
        data={"WorkInfo": [{"WorkId": "NO-SUCH-WORK", "StopReason": "停诊"}]},
    )  # fmt: skip
    assert not refused.ok
    # Referrals through the servlet and the receiving hospitals' notice pages.
    apply_referral(post, c.hospital_no, a.hospital_no, "R-001", 1)
    accepted = client.post(notice_link(post, a.hospital_no, 1), {
        "action": "accept", "accept-note": "明日上午就诊", "accept-schedule": month.schedules["A2"].work_id,
    })  # fmt: skip
    assert accepted.status_code == 302, accepted.content.decode()
    referral_order = Referral.objects.get(order_id="R-001").booking_order
    orders["ref"] = {"order_no": referral_order.order_no, "workflow_id": referral_order.workflow_id}
    assert sandbox.queue_call_next(schedule=month.sessions["A2"]).work_flow_id == referral_order.workflow_id
    assert sandbox.center_push_promise(orders=[at_hospital(orders["ref"])]).ok
    apply_referral(post, a.hospital_no, c.hospital_no, "R-002", 2)
    accept = {"action": "accept", "accept-note": "社区随访", "accept-schedule": ""}
    assert client.post(notice_link(post, c.hospital_no, 2), accept).status_code == 302
    apply_referral(post, b.hospital_no, a.hospital_no, "R-003", 3)
    # As if submitted three days ago: accepted now, after the 48 hours allowed.
    Referral.objects.filter(order_id="R-003").update(submitted_at=F("submitted_at") - dt.timedelta(days=3))
    assert client.post(notice_link(post, a.hospital_no, 3), accept).status_code == 302
    apply_referral(post, c.hospital_no, b.hospital_no, "R-004", 4)
    return month
