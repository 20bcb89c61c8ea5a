"""Live reads from the hospital: time slots (3.8), queue (3.7), remaining count (3.4) and
medical cards (6.1, 6.2), their failures answered as booking errors.
"""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

from booking.hospital import ask, read
from booking.models import Schedule
from booking.services._common import _setting
from regional import idnumber
from regional.errors import InvalidInput
from regional.messages import Violation
from regional.messages.codes import CardType, SlotStatus
from regional.pii import mask_text
from regional.selectors import hospital_by_no


def schedule_slots(*, schedule: Schedule) -> list[dict]:
    """The session's time slots, live from the hospital (GetDaypartingDetailInfo 3.8), cached for
    BOOKING_SLOTS_CACHE_SECONDS so a popular session does not become a hospital's load."""
    key = f"booking:slots:{schedule.pk}"
    slots = cache.get(key)
    if slots is not None:
        return slots
    answer = read(schedule.hospital, "GetDaypartingDetailInfo", {"WorkId": schedule.work_id}, what="查询分时段号源")
    labels = dict(SlotStatus.choices)
    slots = [
        {
            "num_source_id": r["numSourceId"],
            "number": r["CurNum"],
            "start": r["StartDate"],
            "end": r["EndDate"],
            "see_time": r["SeeDate"],
            "status": r["Status"],
            "status_label": labels.get(r["Status"], ""),
            "available": r["Status"] == "1",
        }
        for r in answer.get("NumberList") or []
    ]
    cache.set(key, slots, int(_setting("BOOKING_SLOTS_CACHE_SECONDS", 10)))
    return slots


def schedule_queue(*, schedule: Schedule) -> dict:
    """The session's queue, live from the hospital (GetLineupDetailInfo 3.7), cached a few seconds."""
    key = f"booking:queue:{schedule.pk}"
    queue = cache.get(key)
    if queue is not None:
        return queue
    answer = read(schedule.hospital, "GetLineupDetailInfo", {"WorkId": schedule.work_id}, what="查询排队信息")
    record = (answer.get("WaitList") or [{}])[0]
    queue = {
        "seen": record.get("RegNum"),
        "remaining": record.get("RegRemainNum"),
        "waiting": record.get("WaitPers"),
        "current_number": record.get("NowSeq"),
        "registered": record.get("HasRegNum"),
        "not_checked_in": record.get("NotReportNum"),
        "checked_in_waiting": record.get("ReportWaitNum"),
    }
    cache.set(key, queue, int(_setting("BOOKING_QUEUE_CACHE_SECONDS", 5)))
    return queue


def registration_query(schedule: Schedule) -> dict:
    """The getRegistrationInfo (3.4) request for a schedule, with everything the platform knows of the
    session: a HIS that keys its sessions by doctor, department and time code finds it by those."""
    return {
        "WorkId": schedule.work_id,
        "WorkAddr": schedule.work_addr or None,
        "DoctorId": schedule.doctor_code,
        "DoctorName": schedule.doctor.name,
        "DepartmentId": schedule.department_code,
        "DepartmentName": schedule.department.name,
        "WorkDate": schedule.work_date,
        "WorkTimeCode": str(schedule.time_code),
        "WorkStartDate": schedule.start_time,
        "WorkStopDate": schedule.stop_time,
        "RegistrationTypeId": schedule.registration_type_id or None,
        "RegistrationTypeName": schedule.registration_type_name or None,
    }


def schedule_refresh_remaining(*, schedule: Schedule) -> tuple[Schedule, bool]:
    """The remaining count, live from the hospital (getRegistrationInfo 3.4), stored on the schedule
    (as a sync would); at most every BOOKING_SLOTS_CACHE_SECONDS per schedule. Returns (schedule,
    live); an unreachable hospital leaves the stored count (live False)."""
    key = f"booking:remaining:{schedule.pk}"
    if cache.get(key) is not None:
        return schedule, True
    answer = ask(schedule.hospital, "getRegistrationInfo", registration_query(schedule))
    if not answer.ok:
        return schedule, False
    record = next((r for r in answer.fields.get("WorkInfo") or [] if r.get("WorkId") == schedule.work_id), None)
    if record is None:
        return schedule, False
    remaining = max(0, min(int(record["RegistrationNumber"]), schedule.total))
    if remaining != schedule.remaining:
        Schedule.objects.filter(pk=schedule.pk).update(remaining=remaining, updated_at=timezone.now())
        schedule.remaining = remaining
    cache.set(key, remaining, int(_setting("BOOKING_SLOTS_CACHE_SECONDS", 10)))
    return schedule, True


def card_check(*, hospital_no: str, card_no: str, card_type: str, id_card: str, name: str) -> dict:
    """Whether a medical card is valid for the patient (CheckMediCardIdService 6.1)."""
    violations = []
    for field, value, label in (
        ("card_no", card_no, "诊疗卡号"),
        ("id_card", id_card, "身份证号"),
        ("name", name, "姓名"),
    ):
        if not (value or "").strip():
            violations.append(Violation(field, f"为必填项（{label}）"))
    if (id_card or "").strip() and (why := idnumber.problem(id_card)):
        violations.append(Violation("id_card", why))  # GB 11643, as for a booking's patient
    if (card_type or "01") not in CardType.values:
        violations.append(Violation("card_type", "应为01（院内就诊卡）或02（居民健康卡）"))
    if violations:
        raise InvalidInput(violations)
    hospital = hospital_by_no(hospital_no)
    answer = read(
        hospital,
        "CheckMediCardIdService",
        {
            "MediCardId": card_no.strip(),
            "MediCardType": card_type or "01",
            "UserCardNo": id_card.strip(),
            "UserName": name.strip(),
        },
        what="验证诊疗卡",
    )
    return {
        "valid": bool(answer.get("IsValid")),
        "reason": mask_text(answer.get("ErrorMsg") or ""),
        "name": answer.get("UserName") or "",
        "phone": answer.get("UserPhone") or "",
    }


def cards_query(
    *,
    hospital_no: str,
    id_card: str,
    name: str = "",
    phone: str = "",
    address: str = "",
    card_type: str = "01",
    health_card_num: str = "",
) -> list[dict]:
    """The patient's medical cards at a hospital (queryCardListInfo 6.2); the hospital registers a
    patient it does not know and issues a card."""
    violations = []
    if not (id_card or "").strip():
        violations.append(Violation("id_card", "为必填项（身份证号）"))
    elif why := idnumber.problem(id_card):
        violations.append(Violation("id_card", why))  # GB 11643, as for a booking's patient
    if (card_type or "01") not in ("01", "02"):
        violations.append(Violation("card_type", "应为01（身份证）或02（健康卡）"))
    if violations:
        raise InvalidInput(violations)
    hospital = hospital_by_no(hospital_no)
    answer = read(
        hospital,
        "queryCardListInfo",
        {
            "UserCardNo": id_card.strip(),
            "UserName": (name or "").strip() or None,
            "UserAddress": (address or "").strip() or None,
            "UserTel": (phone or "").strip() or None,
            "CardType": card_type or "01",
            "HealthCardNum": (health_card_num or "").strip() or None,
        },
        what="查询诊疗卡",
    )
    return [
        {
            "card_no": r["CardNo"],
            "name": r.get("Name") or "",
            "created_at": r.get("CreateTime") or "",
            "last_used_at": r.get("LastTime") or "",
            "phone": r.get("phone") or "",
        }
        for r in answer.get("cardList") or []
    ]
