"""The rules of two-way referral (双向转诊), called alike by the servlet, the forms, the admin and
the tests.

Life cycle: draft (from `referral`) → submitted (the sending doctor completes the form, or a third
party pushes a complete referral with `referral-apply`) → accepted or rejected by the receiving
hospital → patient arrived → completed. The sender may cancel while the referral is not yet
accepted. Every step is written to ReferralTransition with who, when and why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from booking.models import Channel, Order, Schedule
from booking.services.channels import channel_issue_token
from booking.services.orders import order_cancel, order_lock, order_pay
from booking.services.patients import Patient
from referral import notify, selectors
from referral.models import Referral, ReferralAccess, ReferralBooking, ReferralNotification, ReferralTransition
from referral.selectors import pending_limit
from regional import idnumber
from regional.audit import audit_record
from regional.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from regional.messages import Violation
from regional.models import Department, Hospital
from regional.pii import lookup_hash

logger = logging.getLogger(__name__)

Status = Referral.Status

# The booking service's internal channel for bookings made when a referral is accepted.
REFERRAL_CHANNEL_CODE = "REFERRAL"
REFERRAL_CHANNEL_NAME = "双向转诊"
# Referral card types (jzklx) → the booking service's card types: only the hospital's own
# self-pay card (2 通用就诊卡) is a 院内就诊卡; other cards are not sent with the booking.
BOOKING_CARD_TYPES = {"2": "01"}

# Which status may follow which; anything else is refused with the current status named.
ALLOWED: dict[str, tuple[str, ...]] = {
    Status.DRAFT: (Status.SUBMITTED, Status.CANCELLED),
    Status.SUBMITTED: (Status.ACCEPTED, Status.REJECTED, Status.CANCELLED),
    Status.ACCEPTED: (Status.ARRIVED,),
    Status.ARRIVED: (Status.COMPLETED,),
}
ACTION_LABELS = {
    Status.SUBMITTED: "提交",
    Status.ACCEPTED: "接收",
    Status.REJECTED: "拒绝",
    Status.ARRIVED: "登记患者到院",
    Status.COMPLETED: "完成",
    Status.CANCELLED: "取消",
}

# Message element → Referral field, for the elements `referral` and `referral-apply` share.
ORIGIN_FIELDS = {
    "fqyymc": "sending_hospital_name",
    "fqksdm": "sending_department_code",
    "fqksmc": "sending_department_name",
    "fqysgh": "sending_doctor_code",
    "fqysxm": "sending_doctor_name",
}
PATIENT_FIELDS = {
    "brlx": "patient_type",
    "hzxm": "patient_name",
    "jzkh": "card_no",
    "jzklx": "card_type",
    "sfzh": "id_no",
    "lxdh": "phone",
    "jtdz": "address",
    "cbzd": "diagnosis",
    "bszy": "history_summary",
    "zyjws": "past_history",
    "zlqk": "treatment",
    "zzmd": "purpose",
    "jjcd": "urgency",
}
TEXT_LIMIT = 4000


# -- errors ---------------------------------------------------------------------------------------


class ReferralError(DomainError):
    code = "referral"


class TransitionNotAllowed(ReferralError, Conflict):
    code = "referral_transition"


class NotParty(ReferralError, Forbidden):
    code = "referral_not_party"


class LinkUnknown(ReferralError, NotFound):
    code = "referral_link_unknown"


class LinkExpired(ReferralError):
    code = "referral_link_expired"
    http_status = 410


# -- actors and settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who acts: a hospital's doctor (through the HIS or a link), a platform user, or the platform."""

    label: str
    hospital: Hospital | None = None
    user: Any = None
    doctor_code: str = ""

    @classmethod
    def doctor(cls, hospital: Hospital, code: str = "", name: str = "") -> Actor:
        who = f"医生{name}" if name else "医生"
        if code:
            who += f"（工号{code}）"
        return cls(f"{hospital.name} {who}", hospital=hospital, doctor_code=code)

    @classmethod
    def staff(cls, user) -> Actor:
        return cls(f"平台用户 {user.get_username()}", user=user)


SYSTEM = Actor("平台（自动）")


def link_ttl() -> dt.timedelta:
    """How long a referralCode opens its page (REFERRAL_LINK_TTL_MINUTES, default 24 hours)."""
    return dt.timedelta(minutes=int(getattr(settings, "REFERRAL_LINK_TTL_MINUTES", 24 * 60)))


def referral_parm(*, code: str, referral: Referral) -> str:
    return f"referralCode={code}&type={referral.care_type}"


def referral_direction(*, sending: Hospital, receiving: Hospital) -> str:
    """Up (上转) to a higher-level hospital, down (下转) to a lower one, from Hospital.level."""
    if not sending.level or not receiving.level:
        return Referral.Direction.UNKNOWN
    if receiving.level > sending.level:
        return Referral.Direction.UP
    if receiving.level < sending.level:
        return Referral.Direction.DOWN
    return Referral.Direction.LATERAL


# -- internals ------------------------------------------------------------------------------------


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode("utf-8")).hexdigest()


def _issue_link(*, referral: Referral, audience: str, hospital: Hospital, doctor_code: str = "") -> str:
    # 160 random bits; only the hash is stored, so a database dump opens no referral.
    code = secrets.token_hex(20).upper()
    now = timezone.now()
    ReferralAccess.objects.create(
        referral=referral,
        audience=audience,
        code_hash=_hash_code(code),
        hospital=hospital,
        doctor_code=(doctor_code or "")[:32],
        created_at=now,
        expires_at=now + link_ttl(),
    )
    return code


def _record(referral: Referral, *, from_status: str, to_status: str, actor: Actor, reason: str = "") -> None:
    ReferralTransition.objects.create(
        referral=referral,
        from_status=from_status,
        to_status=to_status,
        actor_label=actor.label[:200],
        actor_user=actor.user,
        actor_hospital=actor.hospital,
        reason=reason,
    )
    # The platform-wide audit trail too, so staff browse referral, order and finance changes in one place.
    audit_record(
        action="转诊状态变更",
        obj=referral,
        before={"status": from_status},
        after={"status": to_status},
        user=actor.user,
        actor=actor.label[:150],
        reason=reason,
    )


def _locked(referral: Referral) -> Referral:
    # Two doctors clicking at once: the row lock makes the second see the first's status.
    return (
        Referral.objects.select_for_update(of=("self",))
        .select_related("sending_hospital", "receiving_hospital")
        .get(pk=referral.pk)
    )


def _require_party(referral: Referral, actor: Actor, side: str) -> None:
    """A hospital acts only on its own side of a referral; platform users are checked by permission."""
    if actor.user is not None:
        return
    expected = referral.sending_hospital_id if side == ReferralAccess.SENDER else referral.receiving_hospital_id
    if actor.hospital is None or actor.hospital.pk != expected:
        role = "转出医院" if side == ReferralAccess.SENDER else "转入医院"
        raise NotParty(f"无权操作：只有{role}可以执行此操作")


def _move(referral: Referral, *, to: str, actor: Actor, side: str) -> tuple[Referral, str]:
    """Lock the row, check the party and the transition, set the status and its time stamp (unsaved)."""
    locked = _locked(referral)
    if to not in ALLOWED.get(locked.status, ()):
        raise TransitionNotAllowed(
            f"转诊单当前状态为“{locked.get_status_display()}”，不能{ACTION_LABELS.get(to, '变更')}"
        )
    _require_party(locked, actor, side)
    from_status = locked.status
    locked.status = to
    stamp = {
        Status.SUBMITTED: "submitted_at",
        Status.ACCEPTED: "accepted_at",
        Status.REJECTED: "rejected_at",
        Status.ARRIVED: "arrived_at",
        Status.COMPLETED: "completed_at",
        Status.CANCELLED: "cancelled_at",
    }[to]
    setattr(locked, stamp, timezone.now())
    return locked, from_status


def _fill(referral: Referral, data: Mapping[str, Any]) -> None:
    for element, attr in {**ORIGIN_FIELDS, **PATIENT_FIELDS}.items():
        value = data.get(element)
        setattr(referral, attr, "" if value is None else str(value))
    referral.birth_date = data.get("csrq")
    referral.care_type = (data.get("mzzycxbz") or "").lower()


def _get_or_new(*, hospital: Hospital, order_id: str, source: str) -> tuple[Referral, bool]:
    """The referral of (hospital, orderid), locked; or a new one inserted (concurrent inserts retried)."""
    existing = Referral.objects.select_for_update().filter(sending_hospital=hospital, order_id=order_id).first()
    if existing is not None:
        return existing, False
    referral = Referral(sending_hospital=hospital, order_id=order_id, source=source, care_type="zy", card_type="0")
    try:
        with transaction.atomic():
            referral.save()
        return referral, True
    except IntegrityError:
        # The same orderid was inserted by a concurrent call: update that one instead.
        return Referral.objects.select_for_update().get(sending_hospital=hospital, order_id=order_id), False


# -- the interface services ------------------------------------------------------------------------


def _id_no_check(data: Mapping[str, Any]) -> None:
    """GB 11643: a malformed or placeholder sfzh (the specification's `3306XXXXXXXXXXXX`) would
    never match the same patient later, so the message is refused. When sfzh is absent the card
    (jzkh + jzklx) identifies the patient; the message schema decides whether it may be absent."""
    value = (data.get("sfzh") or "").strip()
    if value and (why := idnumber.problem(value)):
        raise InvalidInput([Violation("sfzh", why)])


@transaction.atomic
def referral_start(*, hospital: Hospital, data: Mapping[str, Any]) -> tuple[Referral, str]:
    """`referral`: create the draft for (fqyydm, orderid), or update it while still a draft; returns
    the referral and a new sender link code."""
    _id_no_check(data)
    referral, created = _get_or_new(hospital=hospital, order_id=data["orderid"], source=Referral.Source.HIS)
    if not created and referral.status != Status.DRAFT:
        raise Conflict(
            f"转诊单{referral.order_id}已{referral.get_status_display()}，不能再修改（仅草稿可更新）",
            code="referral_not_draft",
        )
    _fill(referral, data)
    referral.save()
    actor = Actor.doctor(hospital, referral.sending_doctor_code, referral.sending_doctor_name)
    _record(
        referral,
        from_status="" if created else Status.DRAFT,
        to_status=Status.DRAFT,
        actor=actor,
        reason="HIS发起转诊申请" if created else "HIS重新发送，草稿已更新",
    )
    code = _issue_link(
        referral=referral, audience=ReferralAccess.SENDER, hospital=hospital, doctor_code=referral.sending_doctor_code
    )
    return referral, code


@transaction.atomic
def referral_apply(*, hospital: Hospital, data: Mapping[str, Any]) -> Referral:
    """`referral-apply`: a complete referral pushed by a third party, submitted at once."""
    _id_no_check(data)
    receiving = Hospital.objects.filter(hospital_no=data["zryydm"], is_deleted=False).first()
    if receiving is None:
        raise NotFound(f"zryydm 转入医院“{data['zryydm']}”未在平台登记")
    if receiving.pk == hospital.pk:
        raise ReferralError("zryydm 转入医院不能与发起医院相同")
    referral, created = _get_or_new(hospital=hospital, order_id=data["orderid"], source=Referral.Source.APPLY)
    if not created and referral.status != Status.DRAFT:
        raise Conflict(
            f"转诊单{referral.order_id}已{referral.get_status_display()}，不能重复推送", code="referral_not_draft"
        )
    from_status = "" if created else Status.DRAFT
    _fill(referral, data)
    referral.source = Referral.Source.APPLY if created else referral.source
    referral.receiving_hospital = receiving
    dept_code = data.get("zrksdm") or ""
    department = Department.objects.filter(hospital=receiving, department_id=dept_code).first() if dept_code else None
    referral.receiving_department = department
    referral.receiving_department_code = dept_code
    referral.receiving_department_name = department.name if department else ""
    referral.direction = referral_direction(sending=hospital, receiving=receiving)
    referral.status = Status.SUBMITTED
    referral.submitted_at = timezone.now()
    referral.save()
    bespeak = data.get("bespeak")
    if bespeak:
        _store_booking(referral=referral, hospital=receiving, bespeak=bespeak)
    _record(
        referral,
        from_status=from_status,
        to_status=Status.SUBMITTED,
        actor=Actor.doctor(hospital, referral.sending_doctor_code, referral.sending_doctor_name),
        reason="第三方推送转诊数据（referral-apply）",
    )
    return referral


def _store_booking(*, referral: Referral, hospital: Hospital, bespeak: Mapping[str, Any]) -> ReferralBooking:
    schedule = selectors.booking_schedule_for(
        hospital=hospital, date=bespeak["yyrq"], department_code=bespeak["ksdm"], slot_id=bespeak.get("rsid") or ""
    )
    booking, _ = ReferralBooking.objects.update_or_create(
        referral=referral,
        defaults={
            "order_no": bespeak["ghdh"],
            "slot_id": bespeak["rsid"],
            "status": bespeak["status"],
            "date": bespeak["yyrq"],
            "department_code": bespeak["ksdm"],
            "department_name": bespeak["ksmc"],
            "doctor_code": bespeak["ysgh"],
            "doctor_name": bespeak["ysxm"],
            "start_time": bespeak.get("kssj"),
            "end_time": bespeak.get("jssj"),
            "schedule_ref": str(schedule.pk) if schedule is not None else "",
        },
    )
    return booking


@transaction.atomic
def referral_query(*, hospital: Hospital, data: Mapping[str, Any]) -> tuple[Referral, str] | None:
    """`referral-query`: the newest open referral of this patient to `hospital`, with a new notice
    link code for the querying doctor; None when there is none."""
    _id_no_check(data)
    patient = Q(id_no_hash=lookup_hash(data["sfzh"])) | Q(
        card_no_hash=lookup_hash(data["jzkh"]), card_type=data["jzklx"]
    )
    referral = (
        Referral.objects.filter(
            receiving_hospital=hospital, status__in=Referral.OPEN_STATUSES, patient_name_hash=lookup_hash(data["hzxm"])
        )
        .filter(patient)
        .order_by("-submitted_at", "-pk")
        .first()
    )
    if referral is None:
        return None
    code = _issue_link(
        referral=referral, audience=ReferralAccess.RECEIVER, hospital=hospital, doctor_code=data.get("ysgh") or ""
    )
    return referral, code


def referral_link_open(*, code: str, audience: str) -> ReferralAccess:
    """The link a referralCode stands for; unknown and expired codes are told apart."""
    if not code or len(code) > 128:
        raise LinkUnknown("转诊单链接无效")
    access = (
        ReferralAccess.objects.select_related("referral", "hospital")
        .filter(code_hash=_hash_code(code), audience=audience)
        .first()
    )
    if access is None:
        raise LinkUnknown("转诊单链接无效或不存在，请从HIS重新打开")
    now = timezone.now()
    if access.expires_at <= now:
        raise LinkExpired("转诊单链接已过期，请从HIS重新打开")
    ReferralAccess.objects.filter(pk=access.pk).update(last_used_at=now)
    return access


# -- the life cycle -------------------------------------------------------------------------------


@transaction.atomic
def referral_submit(
    *,
    referral: Referral,
    actor: Actor,
    receiving_hospital: Hospital | None,
    receiving_department: Department | None,
    urgency: str,
    purpose: str,
    notes: str = "",
) -> Referral:
    """The sending doctor completes the application form: target hospital and department, urgency, purpose."""
    locked, from_status = _move(referral, to=Status.SUBMITTED, actor=actor, side=ReferralAccess.SENDER)
    violations: list[Violation] = []
    if receiving_hospital is None:
        violations.append(Violation("hospital", "请选择转入医院"))
    elif receiving_hospital.is_deleted:
        violations.append(Violation("hospital", "该医院已停用，请选择其他医院"))
    elif receiving_hospital.pk == locked.sending_hospital_id:
        violations.append(Violation("hospital", "转入医院不能是本院"))
    if receiving_hospital is not None and not violations:
        if receiving_department is not None and receiving_department.hospital_id != receiving_hospital.pk:
            violations.append(Violation("department", "所选科室不属于转入医院"))
        elif (
            receiving_department is None
            and Department.objects.filter(hospital=receiving_hospital, is_deleted=False).exists()
        ):
            violations.append(Violation("department", "请选择转入科室"))
    if urgency not in Referral.Urgency.values:
        violations.append(Violation("urgency", "请选择紧急程度"))
    if not (purpose or "").strip():
        violations.append(Violation("purpose", "请填写转诊目的"))
    elif len(purpose) > TEXT_LIMIT:
        violations.append(Violation("purpose", f"转诊目的不能超过{TEXT_LIMIT}字"))
    if len(notes or "") > TEXT_LIMIT:
        violations.append(Violation("notes", f"补充说明不能超过{TEXT_LIMIT}字"))
    if violations:
        raise InvalidInput(violations)
    locked.receiving_hospital = receiving_hospital
    locked.receiving_department = receiving_department
    locked.receiving_department_code = receiving_department.department_id if receiving_department else ""
    locked.receiving_department_name = receiving_department.name if receiving_department else ""
    locked.urgency = urgency
    locked.purpose = purpose.strip()
    locked.notes = (notes or "").strip()
    locked.direction = referral_direction(sending=locked.sending_hospital, receiving=receiving_hospital)
    locked.save()
    _record(locked, from_status=from_status, to_status=Status.SUBMITTED, actor=actor, reason="提交转诊申请")
    return locked


@transaction.atomic
def referral_accept(*, referral: Referral, actor: Actor, note: str = "", order: Order | None = None) -> Referral:
    """The receiving hospital accepts; with `order` (already locked at the hospital by
    `referral_accept_with_booking`) the booking is linked and kept for payment at the counter."""
    locked, from_status = _move(referral, to=Status.ACCEPTED, actor=actor, side=ReferralAccess.RECEIVER)
    if len(note or "") > TEXT_LIMIT:
        raise InvalidInput([Violation("note", f"接收说明不能超过{TEXT_LIMIT}字")])
    locked.accept_note = (note or "").strip()
    reason = locked.accept_note
    if order is not None:
        locked.booking_order = order
        if order.fee > 0:
            # 现场支付: the hospital keeps the number for the counter, so the unpaid lock does not
            # expire after the lock time (the patient pays on arrival). PaymentNotice goes after commit.
            order_pay(channel=order.channel, order_no=order.order_no, pay_type=Order.PAY_ONSITE, amount=order.fee)
        reason = "；".join(filter(None, [f"接收并预约挂号：{booking_summary(order)}", reason]))
    locked.save()
    _record(locked, from_status=from_status, to_status=Status.ACCEPTED, actor=actor, reason=reason)
    return locked


def referral_channel() -> Channel:
    """The booking channel of referral bookings (REFERRAL 双向转诊), created on first use. Its API
    token is issued only because every channel has one; nobody is ever given it."""
    channel = Channel.objects.filter(code=REFERRAL_CHANNEL_CODE).first()
    if channel is not None:
        return channel
    try:
        with transaction.atomic():
            channel, _token = channel_issue_token(code=REFERRAL_CHANNEL_CODE, name=REFERRAL_CHANNEL_NAME)
    except IntegrityError:
        # Created by a concurrent first accept.
        channel = Channel.objects.get(code=REFERRAL_CHANNEL_CODE)
    return channel


def booking_patient(referral: Referral) -> Patient:
    """The booking's patient from the referral's (decrypted) personal data."""
    card_type = BOOKING_CARD_TYPES.get(referral.card_type, "")
    return Patient(
        name=referral.patient_name or "",
        id_card=referral.id_no or "",
        phone=referral.phone or "",
        card_no=(referral.card_no or "") if card_type else "",
        card_type=card_type,
        address=(referral.address or "")[:200],
    )


def booking_summary(order: Order) -> str:
    """订单号, date and time, doctor and serial number of a referral's booking (for the history)."""
    schedule = order.schedule
    text = (
        f"订单号{order.order_no}，{schedule.work_date:%Y-%m-%d} {schedule.start_time:%H:%M}–{schedule.stop_time:%H:%M}，"
        f"{schedule.department.name} {schedule.doctor.name}"
    )
    if order.serial_number is not None:
        text += f"，序号{order.serial_number}"
    return text


def referral_accept_with_booking(*, referral: Referral, actor: Actor, work_id: str, note: str = "") -> Referral:
    """Accept a referral and book the patient on one of the receiving department's schedules.

    Lock first, then accept and link, because the booking calls the hospital over SOAP and must
    run outside any database transaction:
    1. Checks without writing: the actor may accept now, the schedule is the receiving department's.
    2. `order_lock` (no transaction). A refusal (号源已满, 停诊, hospital unavailable…)
       raises the booking service's DomainError with its Chinese message; the referral stays
       un-accepted, so the doctor may pick another schedule or accept without booking.
    3. One transaction: `referral_accept` with the order (linked, 现场支付, reason in the history).
       Should that fail (the sender cancelled meanwhile), the new order is cancelled again
       (UnlockReg to the hospital through the booking outbox) and the error raised.
    """
    current = Referral.objects.select_related("receiving_hospital").get(pk=referral.pk)
    if Status.ACCEPTED not in ALLOWED.get(current.status, ()):
        raise TransitionNotAllowed(f"转诊单当前状态为“{current.get_status_display()}”，不能接收")
    _require_party(current, actor, ReferralAccess.RECEIVER)
    if len(note or "") > TEXT_LIMIT:
        raise InvalidInput([Violation("note", f"接收说明不能超过{TEXT_LIMIT}字")])
    work_id = (work_id or "").strip()
    hospital = current.receiving_hospital
    schedule = Schedule.objects.filter(hospital=hospital, work_id=work_id).first() if hospital and work_id else None
    if schedule is None or (
        current.receiving_department_code and schedule.department_code != current.receiving_department_code
    ):
        raise InvalidInput([Violation("schedule", "所选排班不属于转入科室，请重新选择")])
    channel = referral_channel()
    order, _created = order_lock(
        channel=channel, hospital_no=hospital.hospital_no, work_id=work_id, patient=booking_patient(current)
    )
    order = Order.objects.select_related("channel", "schedule__department", "schedule__doctor").get(pk=order.pk)
    try:
        return referral_accept(referral=current, actor=actor, note=note, order=order)
    except Exception:
        _booking_release(order)
        raise


def _booking_release(order: Order) -> None:
    """Cancel a booking whose referral could not be accepted after all (best effort, logged)."""
    try:
        order_cancel(channel=order.channel, order_no=order.order_no, reason="转诊接收未成功，撤销预约")
    except DomainError:
        logger.exception("referral booking %s could not be cancelled", order.order_no)


def _reason_clean(reason: str, *, what: str) -> str:
    """A required reason (`what`: 拒绝原因, 取消原因), stripped and within the length limit."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput([Violation("reason", f"请填写{what}")])
    if len(reason) > TEXT_LIMIT:
        raise InvalidInput([Violation("reason", f"{what}不能超过{TEXT_LIMIT}字")])
    return reason


@transaction.atomic
def referral_reject(*, referral: Referral, actor: Actor, reason: str) -> Referral:
    reason = _reason_clean(reason, what="拒绝原因")
    locked, from_status = _move(referral, to=Status.REJECTED, actor=actor, side=ReferralAccess.RECEIVER)
    locked.reject_reason = reason
    locked.save()
    _record(locked, from_status=from_status, to_status=Status.REJECTED, actor=actor, reason=reason)
    return locked


@transaction.atomic
def referral_arrive(*, referral: Referral, actor: Actor, note: str = "") -> Referral:
    locked, from_status = _move(referral, to=Status.ARRIVED, actor=actor, side=ReferralAccess.RECEIVER)
    locked.save()
    _record(locked, from_status=from_status, to_status=Status.ARRIVED, actor=actor, reason=(note or "").strip())
    return locked


@transaction.atomic
def referral_complete(*, referral: Referral, actor: Actor, note: str = "") -> Referral:
    locked, from_status = _move(referral, to=Status.COMPLETED, actor=actor, side=ReferralAccess.RECEIVER)
    locked.save()
    _record(locked, from_status=from_status, to_status=Status.COMPLETED, actor=actor, reason=(note or "").strip())
    return locked


@transaction.atomic
def referral_cancel(*, referral: Referral, actor: Actor, reason: str) -> Referral:
    """The sender withdraws a referral the receiving hospital has not accepted yet."""
    reason = _reason_clean(reason, what="取消原因")
    locked, from_status = _move(referral, to=Status.CANCELLED, actor=actor, side=ReferralAccess.SENDER)
    locked.cancel_reason = reason
    locked.save()
    _record(locked, from_status=from_status, to_status=Status.CANCELLED, actor=actor, reason=reason)
    return locked


@transaction.atomic
def referral_return(*, original: Referral, actor: Actor) -> tuple[Referral, str]:
    """Referral back (回转): the receiving hospital sends the patient back to the sender.

    Creates a draft from the receiving hospital to the original sender, linked to the original,
    with the patient's data copied; returns it and a sender link code to complete its form.
    """
    original = _locked(original)
    _require_party(original, actor, ReferralAccess.RECEIVER)
    if original.status not in (Status.ARRIVED, Status.COMPLETED):
        raise TransitionNotAllowed(f"转诊单当前状态为“{original.get_status_display()}”，患者到院后才能发起回转")
    sender = original.receiving_hospital
    draft = Referral.objects.filter(original=original, status=Status.DRAFT).first()
    created = draft is None
    if created:
        draft = Referral(
            sending_hospital=sender,
            order_id=f"HZ{original.pk}-{timezone.now():%Y%m%d%H%M%S}",
            sending_hospital_name=sender.name,
            sending_department_code=original.receiving_department_code[:32],
            sending_department_name=original.receiving_department_name[:128],
            sending_doctor_code=(actor.user.get_username() if actor.user else actor.doctor_code)[:32],
            receiving_hospital=original.sending_hospital,
            source=Referral.Source.BACK,
            original=original,
        )
        for attr in (
            "care_type", "patient_type", "patient_name", "card_no", "card_type", "id_no", "birth_date", "phone",
            "address", "diagnosis", "history_summary", "past_history", "treatment", "urgency",
        ):  # fmt: skip
            setattr(draft, attr, getattr(original, attr))
        draft.purpose = "回转"
        draft.save()
        _record(
            draft, from_status="", to_status=Status.DRAFT, actor=actor, reason=f"回转（原转诊单{original.order_id}）"
        )
    code = _issue_link(
        referral=draft, audience=ReferralAccess.SENDER, hospital=sender, doctor_code=draft.sending_doctor_code
    )
    return draft, code


# -- overdue --------------------------------------------------------------------------------------


def referral_overdue_scan(*, now: dt.datetime | None = None) -> int:
    """Flag submitted referrals not acted on within REFERRAL_PENDING_HOURS and notify the receiving
    hospital and the region's staff, once per referral. Returns how many were flagged."""
    now = now or timezone.now()
    cutoff = now - pending_limit()
    pending = Referral.objects.filter(
        status=Status.SUBMITTED, submitted_at__lt=cutoff, overdue_flagged_at__isnull=True
    ).values_list("pk", flat=True)
    flagged = 0
    for pk in list(pending[:1000]):
        with transaction.atomic():
            # Conditional UPDATE: of two scans running at once, only one flags (and notifies).
            won = Referral.objects.filter(pk=pk, status=Status.SUBMITTED, overdue_flagged_at__isnull=True).update(
                overdue_flagged_at=now
            )
            if not won:
                continue
            referral = Referral.objects.select_related("sending_hospital", "receiving_hospital").get(pk=pk)
            hours = int((now - referral.submitted_at).total_seconds() // 3600)
            urgency = referral.get_urgency_display() or "未注明紧急程度"
            message = (
                f"转诊单{referral.order_id}（{referral.sending_hospital.name} → {referral.receiving_hospital.name}，"
                f"{referral.get_care_type_display()}，{urgency}）已提交{hours}小时仍未处理，请尽快接收或拒绝。"
            )
            notify.notify(
                referral=referral,
                kind=ReferralNotification.OVERDUE,
                recipients=[notify.hospital_recipient(referral.receiving_hospital), notify.STAFF],
                message=message,
            )
            flagged += 1
    return flagged


def referral_links_prune(*, now: dt.datetime | None = None, keep: dt.timedelta = dt.timedelta(days=30)) -> int:
    """Delete link codes that expired more than `keep` ago (they only answer 410 by then)."""
    now = now or timezone.now()
    deleted, _ = ReferralAccess.objects.filter(expires_at__lt=now - keep).delete()
    return deleted
