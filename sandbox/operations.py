"""The ten hospital-side operations of the sandbox: message fields → one service → response fields.

Each handler receives the cleaned request (parsed from its catalog description) and returns the
fields of a successful response; DomainErrors become ResultCode 1 in sandbox/soap.py.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from sandbox import services
from sandbox.models import SandboxHospital, SandboxOrder

Handler = Callable[[SandboxHospital, dict], dict]
HANDLERS: dict[str, Handler] = {}


def handles(name: str) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return decorator


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


@handles("confirmRegistration")
def confirm_registration(hospital: SandboxHospital, data: dict) -> dict:
    order = services.order_lock(
        hospital=hospital,
        transaction_id=data["TransactionId"],
        work_id=data["WorkId"],
        num_source_id=data.get("numSourceId"),
        patient=data,
        channel=data.get("channel") or "",
    )
    return {
        "WorkFlowId": order.work_flow_id,
        "HospitalNo": hospital.hospital_no,
        "WorkId": order.schedule.work_id,
        "SerialNumber": order.serial_number,
        "Worktime": order.worktime,
        "Fee": order.fee,
    }


@handles("UnlockReg")
def unlock_reg(hospital: SandboxHospital, data: dict) -> dict:
    order = services.order_unlock(
        hospital=hospital,
        work_flow_id=data["WorkFlowId"],
        serial_number=data.get("SerialNumber"),
        transaction_id=data["TransactionId"],
    )
    return {"WorkFlowId": order.work_flow_id}


@handles("PaymentNotice")
def payment_notice(hospital: SandboxHospital, data: dict) -> dict:
    order = services.order_pay(
        hospital=hospital,
        work_flow_id=data["WorkFlowId"],
        serial_number=data.get("SerialNumber"),
        pay_type=data["PayType"],
        amount=data["PayAmount"],
        pay_trade_no=data.get("payTradeNo") or "",
        pay_channel=data.get("payChannel") or "",
        channel=data.get("channel") or "",
        transaction_id=data["TransactionId"],
    )
    return {"WorkFlowId": order.work_flow_id, "SerialNumber": order.serial_number, "Worktime": order.worktime}


@handles("getRegistrationInfo")
def get_registration_info(hospital: SandboxHospital, data: dict) -> dict:
    schedule = services.schedule_registration_info(
        hospital=hospital, work_id=data["WorkId"], work_date=data["WorkDate"]
    )
    record = {
        "TransactionId": data["TransactionId"],
        "HospitalNo": hospital.hospital_no,
        "WorkId": schedule.work_id,
        "RegistrationNumber": schedule.remaining,
        "Price": schedule.price,
    }
    return {"WorkInfo": [record]}


@handles("getPromiseNotice")
def get_promise_notice(hospital: SandboxHospital, data: dict) -> dict:
    order = services.order_cancel(
        hospital=hospital,
        work_flow_id=data["WorkFlowId"],
        reason=data.get("desc") or "",
        occurred_at=data.get("workDate"),
        transaction_id=data["TransactionId"],
    )
    return {"WorkFlowId": order.work_flow_id}


@handles("GetOrderDetailInfo")
def get_order_detail_info(hospital: SandboxHospital, data: dict) -> dict:
    order: SandboxOrder = services.order_get(hospital=hospital, work_flow_id=data["WorkFlowId"])
    # The platform sent these personal data itself when it locked the number (CONTRACT.md 6).
    return {
        "WorkFlowId": order.work_flow_id,
        "TransactionId": order.transaction_id,
        "SerialNumber": order.serial_number,
        "WorkFlowStatus": order.status,
        "WorkId": order.schedule.work_id,
        "Worktime": order.worktime,
        "Fee": order.fee,
        "PatientNo": order.patient_no,
        "Name": order.name,
        "Sex": order.sex or None,
        "SexName": order.sex_name,
        "Age": order.age,
        "TelephoneNo": order.telephone,
        "Address": order.address,
        "IDCode": order.id_code,
    }


@handles("GetLineupDetailInfo")
def get_lineup_detail_info(hospital: SandboxHospital, data: dict) -> dict:
    return {"WaitList": [services.schedule_lineup(hospital=hospital, work_id=data["WorkId"])]}


@handles("GetDaypartingDetailInfo")
def get_dayparting_detail_info(hospital: SandboxHospital, data: dict) -> dict:
    slots = services.schedule_slots(hospital=hospital, work_id=data["WorkId"])
    records = [
        {
            "StartDate": f"{slot.start_time:%H:%M}",
            "EndDate": f"{slot.end_time:%H:%M}",
            "CurNum": slot.cur_num,
            "SeeDate": slot.see_date(),
            "Status": slot.status,
            "numSourceId": slot.num_source_id,
        }
        for slot in slots
    ]
    return {"NumberList": records}


@handles("CheckMediCardIdService")
def check_medi_card(hospital: SandboxHospital, data: dict) -> dict:
    valid, card, reason = services.card_check(
        hospital=hospital,
        card_no=data["MediCardId"],
        card_type=data["MediCardType"],
        id_code=data["UserCardNo"],
        name=data["UserName"],
    )
    if not valid:
        return {"ErrorMsg": reason, "IsValid": False}
    return {"IsValid": True, "UserCardNo": card.id_code, "UserName": card.name, "UserPhone": card.phone}


@handles("queryCardListInfo")
def query_card_list_info(hospital: SandboxHospital, data: dict) -> dict:
    cards = services.card_list_or_register(
        hospital=hospital,
        id_code=data["UserCardNo"],
        name=data.get("UserName"),
        card_type=data["CardType"],
        address=data.get("UserAddress"),
        phone=data.get("UserTel"),
        health_card_num=data.get("HealthCardNum"),
    )
    records = [
        {
            "CardNo": card.card_no,
            "Name": card.name,
            "CreateTime": _when(card.created_at),
            "LastTime": _when(card.last_used_at),
            "phone": card.phone,
        }
        for card in cards
    ]
    return {"cardList": records}
