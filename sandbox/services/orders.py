"""The sandbox hospital's orders (lock, unlock, pay, cancel, visit), its medical cards and its injected faults."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from regional.errors import Conflict, DomainError, NotFound
from regional.pii import lookup_hash, mask
from sandbox.models import (
    SandboxCancellation,
    SandboxCard,
    SandboxHospital,
    SandboxOrder,
    SandboxPayment,
    SandboxSchedule,
    SandboxSlot,
)
from sandbox.services.schedules import schedule_get

__all__ = [
    "order_get",
    "order_lock",
    "order_unlock",
    "order_pay",
    "order_cancel",
    "order_check_in",
    "order_mark_no_show",
    "order_withdraw",
    "card_check",
    "card_list_or_register",
    "hospital_fault_set",
]


# -- orders ---------------------------------------------------------------------------------------


def order_get(*, hospital: SandboxHospital, work_flow_id: str) -> SandboxOrder:
    order = (
        SandboxOrder.objects.select_related("schedule", "slot")
        .filter(hospital=hospital, work_flow_id=work_flow_id)
        .first()
    )
    if order is None:
        raise NotFound(f"WorkFlowId 挂号单{work_flow_id}不存在")
    return order


def _check_serial(order: SandboxOrder, serial_number: str | int | None) -> None:
    if serial_number not in (None, "") and str(serial_number).strip() != str(order.serial_number):
        raise Conflict(f"SerialNumber {serial_number}与挂号单{order.work_flow_id}的挂号序号{order.serial_number}不一致")


def _new_work_flow_id() -> str:
    return f"WF{timezone.localtime():%Y%m%d}{secrets.token_hex(8).upper()}"


def order_lock(
    *,
    hospital: SandboxHospital,
    transaction_id: str,
    work_id: str,
    num_source_id: str | None,
    patient: dict,
    channel: str = "",
) -> SandboxOrder:
    """3.1 号源锁定: take one number of a session (the given time slot, or the first free one).

    A repeat with the same TransactionId returns the order it created instead of a second one.
    """
    if transaction_id:
        existing = SandboxOrder.objects.filter(hospital=hospital, transaction_id=transaction_id).first()
        if existing is not None:
            return existing
    schedule = schedule_get(hospital=hospital, work_id=work_id)
    if schedule.status != SandboxSchedule.OPEN:
        raise Conflict(f"WorkId 排班{work_id}已{schedule.get_status_display()}，不能挂号")
    if schedule.work_date < timezone.localdate():
        raise Conflict(f"WorkId 排班{work_id}的出诊日期{schedule.work_date}已过")
    _check_card(hospital, patient)
    try:
        return _order_lock(hospital, schedule, transaction_id, num_source_id, patient, channel)
    except IntegrityError:
        # The same TransactionId was locked concurrently and committed first: answer with that order.
        existing = SandboxOrder.objects.filter(hospital=hospital, transaction_id=transaction_id).first()
        if transaction_id and existing is not None:
            return existing
        raise


@transaction.atomic
def _order_lock(hospital, schedule, transaction_id, num_source_id, patient, channel) -> SandboxOrder:
    # Many callers race for the last numbers of a session. The conditional UPDATE takes the
    # schedule's row lock and re-checks `remaining > 0` on the committed row, so two callers can
    # never both take the last number (read-then-write would oversell); the loser gets 0 rows.
    taken = SandboxSchedule.objects.filter(pk=schedule.pk, status=SandboxSchedule.OPEN, remaining__gt=0).update(
        remaining=F("remaining") - 1, next_serial=F("next_serial") + 1
    )
    if not taken:
        raise Conflict(f"WorkId 排班{schedule.work_id}号源已满，没有可预约的号源")
    slot = None
    if num_source_id:
        slot = SandboxSlot.objects.filter(schedule=schedule, num_source_id=num_source_id).first()
        if slot is None:
            raise NotFound(f"numSourceId 号源{num_source_id}不属于排班{schedule.work_id}")
        # The same per time slot: only the caller whose UPDATE flips 可挂 → 已锁号 holds it.
        if not SandboxSlot.objects.filter(pk=slot.pk, status=SandboxSlot.FREE).update(status=SandboxSlot.LOCKED):
            slot.refresh_from_db(fields=["status"])
            raise Conflict(f"numSourceId 号源{num_source_id}{slot.get_status_display()}，不能预约")
    else:
        for candidate in schedule.slots.filter(status=SandboxSlot.FREE).order_by("cur_num"):
            if SandboxSlot.objects.filter(pk=candidate.pk, status=SandboxSlot.FREE).update(status=SandboxSlot.LOCKED):
                slot = candidate
                break
        if slot is None and schedule.slots.exists():
            raise Conflict(f"WorkId 排班{schedule.work_id}没有可预约的时段")
    if slot is not None:
        serial, worktime = slot.cur_num, slot.worktime
    else:
        serial = SandboxSchedule.objects.values_list("next_serial", flat=True).get(pk=schedule.pk)
        worktime = schedule.worktime
    return SandboxOrder.objects.create(
        hospital=hospital,
        work_flow_id=_new_work_flow_id(),
        transaction_id=transaction_id or "",
        schedule=schedule,
        slot=slot,
        serial_number=serial,
        worktime=worktime,
        fee=schedule.price,
        patient_no=patient.get("PatientNo") or "",
        card_type=patient.get("CardType") or "",
        name=patient["Name"],
        sex=patient.get("Sex") or "",
        sex_name=patient.get("SexName") or "",
        age=patient.get("Age") or "",
        telephone=patient["TelephoneNo"],
        address=patient.get("Address") or "",
        id_code=patient["IDCode"],
        channel=channel or "",
    )


def _check_card(hospital: SandboxHospital, patient: dict) -> None:
    """A 院内就诊卡 named in a lock must be one of ours and belong to the patient."""
    card_no = patient.get("PatientNo")
    if not card_no or patient.get("CardType") == "02":
        return
    card = SandboxCard.objects.filter(hospital=hospital, card_no=card_no, is_active=True).first()
    if card is None:
        raise NotFound(f"PatientNo 诊疗卡{mask(card_no, 'card')}未在本院登记")
    if card.id_hash != lookup_hash(patient.get("IDCode")):
        raise Conflict(f"PatientNo 诊疗卡{mask(card_no, 'card')}与身份证号不符")
    SandboxCard.objects.filter(pk=card.pk).update(last_used_at=timezone.now())


def _release(order: SandboxOrder, *, from_statuses: Iterable[str], kind: str, **record) -> bool:
    """Cancel an active order and give its number back; False when it was no longer active."""
    with transaction.atomic():
        # Only the caller whose UPDATE moves the order out of an active status gives the number back,
        # so a repeated or concurrent unlock/cancel of the same order never frees its slot twice.
        moved = SandboxOrder.objects.filter(pk=order.pk, status__in=list(from_statuses)).update(
            status=SandboxOrder.CANCELLED, cancelled_at=timezone.now()
        )
        if not moved:
            return False
        if order.slot_id:
            SandboxSlot.objects.filter(pk=order.slot_id).exclude(status=SandboxSlot.INVALID).update(
                status=SandboxSlot.FREE
            )
        SandboxSchedule.objects.filter(
            pk=order.schedule_id, status=SandboxSchedule.OPEN, remaining__lt=F("total")
        ).update(remaining=F("remaining") + 1)
        SandboxCancellation.objects.create(order=order, kind=kind, **record)
    order.refresh_from_db()
    return True


def order_unlock(
    *, hospital: SandboxHospital, work_flow_id: str, serial_number: str | None = None, transaction_id: str = ""
) -> SandboxOrder:
    """3.2 解除锁定: an unpaid lock is released and its number freed; a repeat is answered the same."""
    order = order_get(hospital=hospital, work_flow_id=work_flow_id)
    _check_serial(order, serial_number)
    if order.status == SandboxOrder.CANCELLED:
        return order
    if order.status != SandboxOrder.BOOKED or order.onsite_payment:
        raise Conflict(
            f"WorkFlowId 挂号单{work_flow_id}{order.get_status_display()}，不能解除锁定（已支付的请用退号通知）"
        )
    released = _release(
        order,
        from_statuses=[SandboxOrder.BOOKED],
        kind=SandboxCancellation.UNLOCK,
        transaction_id=transaction_id or "",
        reason="解除锁定",
    )
    if not released:
        order.refresh_from_db()
        if order.status != SandboxOrder.CANCELLED:
            raise Conflict(f"WorkFlowId 挂号单{work_flow_id}{order.get_status_display()}，不能解除锁定")
    return order


def order_pay(
    *,
    hospital: SandboxHospital,
    work_flow_id: str,
    pay_type: str,
    amount: Decimal,
    serial_number: str | None = None,
    pay_trade_no: str = "",
    pay_channel: str = "",
    channel: str = "",
    transaction_id: str = "",
) -> SandboxOrder:
    """3.3 支付通知: online payment marks the order paid; 现场支付 keeps the number for the counter.

    A repeat of the same notice is answered the same without a second payment record.
    """
    order = order_get(hospital=hospital, work_flow_id=work_flow_id)
    _check_serial(order, serial_number)
    if amount != order.fee:
        raise Conflict(f"PayAmount 支付金额{amount}与挂号费{order.fee}不一致")
    onsite = pay_type == "3"
    if _is_repeat_payment(order, onsite, pay_trade_no):
        return order
    if order.status != SandboxOrder.BOOKED or (order.onsite_payment and onsite):
        raise Conflict(f"WorkFlowId 挂号单{work_flow_id}{order.get_status_display()}，不能支付")
    with transaction.atomic():
        # Concurrent repeats of one notice: only the UPDATE that finds the order still unpaid records a payment.
        changes = {"onsite_payment": True} if onsite else {"status": SandboxOrder.PAID, "paid_at": timezone.now()}
        moved = SandboxOrder.objects.filter(
            pk=order.pk, status=SandboxOrder.BOOKED, onsite_payment=order.onsite_payment
        ).update(**changes)
        if moved:
            if order.slot_id:
                SandboxSlot.objects.filter(pk=order.slot_id).update(status=SandboxSlot.TAKEN)
            SandboxPayment.objects.create(
                order=order,
                transaction_id=transaction_id or "",
                pay_type=pay_type,
                amount=amount,
                pay_trade_no=pay_trade_no or "",
                pay_channel=pay_channel or "",
                channel=channel or "",
            )
    order.refresh_from_db()
    if not moved and not _is_repeat_payment(order, onsite, pay_trade_no):
        raise Conflict(f"WorkFlowId 挂号单{work_flow_id}{order.get_status_display()}，不能支付")
    return order


def _is_repeat_payment(order: SandboxOrder, onsite: bool, pay_trade_no: str) -> bool:
    paid = order.status in (SandboxOrder.PAID, SandboxOrder.VISITED) if not onsite else order.onsite_payment
    if not paid:
        return False
    last = order.payments.order_by("-created_at").first()
    if last is not None and pay_trade_no and last.pay_trade_no and last.pay_trade_no != pay_trade_no:
        raise Conflict(f"payTradeNo 挂号单{order.work_flow_id}已由另一笔支付（{last.pay_trade_no}）支付")
    return True


def order_cancel(
    *,
    hospital: SandboxHospital,
    work_flow_id: str,
    reason: str = "",
    occurred_at: dt.datetime | None = None,
    transaction_id: str = "",
) -> SandboxOrder:
    """3.5 退号通知: the patient cancelled on the platform; the number is freed. A repeat is answered the same."""
    order = order_get(hospital=hospital, work_flow_id=work_flow_id)
    if order.status == SandboxOrder.CANCELLED:
        return order
    if order.status not in SandboxOrder.ACTIVE:
        raise Conflict(f"WorkFlowId 挂号单{work_flow_id}{order.get_status_display()}，不能退号")
    if occurred_at is not None and timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at)
    released = _release(
        order,
        from_statuses=SandboxOrder.ACTIVE,
        kind=SandboxCancellation.PLATFORM,
        transaction_id=transaction_id or "",
        reason=(reason or "")[:300],
        occurred_at=occurred_at,
    )
    if not released and order.status != SandboxOrder.CANCELLED:
        raise Conflict(f"WorkFlowId 挂号单{work_flow_id}{order.get_status_display()}，不能退号")
    return order


def order_check_in(*, order: SandboxOrder) -> SandboxOrder:
    """The patient reported at the clinic (报到) and now waits to be called."""
    if order.status not in SandboxOrder.ACTIVE:
        raise Conflict(f"挂号单{order.work_flow_id}{order.get_status_display()}，不能报到")
    SandboxOrder.objects.filter(pk=order.pk, checked_in_at__isnull=True).update(checked_in_at=timezone.now())
    order.refresh_from_db()
    return order


def order_mark_no_show(*, order: SandboxOrder) -> SandboxOrder:
    """The session is over and the patient never came (爽约)."""
    if not SandboxOrder.objects.filter(pk=order.pk, status__in=SandboxOrder.ACTIVE).update(status=SandboxOrder.NO_SHOW):
        raise Conflict(f"挂号单{order.work_flow_id}{order.get_status_display()}，不能标记爽约")
    order.refresh_from_db()
    return order


def order_withdraw(*, order: SandboxOrder, reason: str) -> SandboxOrder:
    """The hospital itself cancels a registration (医院退号); report it with center_push_promise."""
    if not _release(
        order, from_statuses=SandboxOrder.ACTIVE, kind=SandboxCancellation.HOSPITAL, reason=(reason or "")[:300]
    ):
        raise Conflict(f"挂号单{order.work_flow_id}{order.get_status_display()}，不能退号")
    return order


# -- medical cards --------------------------------------------------------------------------------


def card_check(
    *, hospital: SandboxHospital, card_no: str, card_type: str, id_code: str, name: str
) -> tuple[bool, SandboxCard | None, str]:
    """6.1: is this card ours, active, and the patient's? Returns (valid, card, reason)."""
    card = SandboxCard.objects.filter(hospital=hospital, card_no=card_no).first()
    if card is None:
        return False, None, f"MediCardId 诊疗卡{mask(card_no, 'card')}不存在"
    if not card.is_active:
        return False, card, f"MediCardId 诊疗卡{mask(card_no, 'card')}已停用"
    if card.card_type != card_type:
        return False, card, f"MediCardType 诊疗卡类型应为{card.card_type}"
    if card.id_hash != lookup_hash(id_code):
        return False, card, "UserCardNo 身份证号与诊疗卡登记的不一致"
    if card.name.strip() != (name or "").strip():
        return False, card, "UserName 姓名与诊疗卡登记的不一致"
    SandboxCard.objects.filter(pk=card.pk).update(last_used_at=timezone.now())
    return True, card, ""


def card_list_or_register(
    *,
    hospital: SandboxHospital,
    id_code: str,
    name: str | None,
    card_type: str,
    address: str | None = None,
    phone: str | None = None,
    health_card_num: str | None = None,
) -> list[SandboxCard]:
    """6.2: the patient's cards; a patient not yet registered gets a card issued now.

    A name that is not the registered patient's gets nothing: an ID number alone never hands out
    another person's name, phone and card.
    """
    cards = _cards_of(hospital, id_code)
    if cards:
        if name and any(card.name.strip() != name.strip() for card in cards):
            raise DomainError("UserName 与本院档案中该证件号的患者姓名不一致")
        return cards
    if not name:
        raise DomainError("UserName 患者未在本院建档，自动建卡时为必填项（姓名）")
    if card_type == "02" and not health_card_num:
        raise DomainError("HealthCardNum 健康卡建档时为必填项（健康卡银行卡号）")
    with transaction.atomic():
        # Two first visits of the same patient arriving together would both find no card and issue
        # two: the hospital row lock serialises registration (and numbering), and we look again under it.
        locked = SandboxHospital.objects.select_for_update().get(pk=hospital.pk)
        cards = _cards_of(hospital, id_code)
        if cards:
            return cards
        locked.card_seq += 1
        locked.save(update_fields=["card_seq"])
        card_no = health_card_num if card_type == "02" else f"JZK{locked.card_seq:010d}"
        card = SandboxCard.objects.create(
            hospital=hospital,
            card_no=card_no,
            card_type="02" if card_type == "02" else "01",
            id_code=id_code,
            name=name,
            phone=phone or "",
            address=address or "",
            health_card_num=health_card_num or "",
        )
    return [card]


def _cards_of(hospital: SandboxHospital, id_code: str) -> list[SandboxCard]:
    return list(
        SandboxCard.objects.filter(hospital=hospital, id_hash=lookup_hash(id_code), is_active=True).order_by(
            "created_at"
        )
    )


# -- faults ---------------------------------------------------------------------------------------


def hospital_fault_set(
    *,
    hospital: SandboxHospital,
    mode: str = SandboxHospital.FAULT_NONE,
    latency_ms: int = 0,
    timeout_seconds: int | None = None,
    operations: Sequence[str] = (),
    error_message: str | None = None,
) -> SandboxHospital:
    """Make the sandbox hospital misbehave (or behave again, with no arguments)."""
    modes = {code for code, _label in SandboxHospital.FAULT_CHOICES}
    if mode not in modes:
        raise DomainError(f"未知的故障模式{mode}")
    hospital.fault_mode = mode
    hospital.fault_latency_ms = latency_ms
    if timeout_seconds is not None:
        hospital.fault_timeout_seconds = timeout_seconds
    hospital.fault_operations = ",".join(operations)
    if error_message is not None:
        hospital.fault_error_message = error_message
    hospital.save()
    return hospital
