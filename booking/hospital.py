"""Hospital failures as booking errors, in one place.

The hospital client (`regional.hospital_client`) says how a call failed: the hospital refused
(HospitalRefused, with its reason), gave no answer (HospitalUnavailable, with whether the call may
have arrived), answered something that is not its interface (HospitalBadAnswer), or the message
could not be built (MessageInvalid, nothing sent). This module decides what each of those means
for booking: the error a channel is answered with, the note recorded on the order or outbox row,
and whether trying the same message again can help.

- `read`: a live read for a channel (slots, queue, cards); a failure is the channel's error.
- `ask`: a read whose failure the caller tolerates (an order refresh, the remaining count,
  reconciliation's check): never raises for the hospital's sake.
- `lock_failure`: a failed lock (confirmRegistration) for a channel.
- `delivery_failure`: a failed outbox delivery (permanent, or retried later).
- `refuse_if_circuit_open`: fail fast before reserving anything for a hospital that just failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from booking.errors import HospitalAnswerError, HospitalUnavailableForBooking, LockRefused
from regional import hospital_client
from regional.circuit import OPEN
from regional.errors import Conflict, DomainError, InvalidInput
from regional.hospital_client import HospitalError, HospitalRefused, HospitalUnavailable
from regional.messages import MessageInvalid
from regional.models import Hospital
from regional.pii import mask_text

CallFailure = HospitalError | MessageInvalid


@dataclass(frozen=True)
class Failure:
    """What a failed call means for booking."""

    note: str  # recorded on the order or the outbox row (masked before it is stored)
    permanent: bool  # the same message would get the same answer: do not retry it
    may_have_arrived: bool  # the hospital may have applied it (a lock may exist there)
    error: DomainError | None = None  # what the channel is answered, when a channel waits


@dataclass(frozen=True)
class Answer:
    """The outcome of a tolerated read: the answer's fields, or why there are none."""

    fields: dict | None
    refused: str = ""  # the hospital's own reason, when it refused
    problem: str = ""  # why there is no answer (for the log)

    @property
    def ok(self) -> bool:
        return self.fields is not None


def refusal_reason(exc: HospitalRefused) -> str:
    """The hospital's reason for a refusal, masked and short enough for a channel's answer."""
    return mask_text(exc.error_msg or exc.message)[:200]


def read_error(exc: CallFailure, *, what: str) -> DomainError:
    """The channel's error for a failed live read; `what` names it (e.g. 查询排队信息)."""
    if isinstance(exc, HospitalRefused):
        return Conflict(f"{what}失败：{refusal_reason(exc)}", code="hospital_refused")
    if isinstance(exc, HospitalUnavailable):
        return HospitalUnavailableForBooking(f"{what}失败：{exc.message}，请稍后重试")
    if isinstance(exc, MessageInvalid):
        return InvalidInput(exc.violations)
    return HospitalAnswerError(f"{what}失败：医院应答无法识别")


def read(hospital: Hospital, name: str, data: dict, *, what: str) -> dict:
    """A live read from a hospital for a channel; its failures as the booking errors the API answers with."""
    try:
        return hospital_client.call(hospital, name, data)
    except (HospitalError, MessageInvalid) as exc:
        raise read_error(exc, what=what) from exc


def ask(hospital: Hospital, name: str, data: dict) -> Answer:
    """A read whose failure the caller tolerates: the hospital's answer, or why there is none."""
    try:
        return Answer(hospital_client.call(hospital, name, data))
    except HospitalRefused as exc:
        return Answer(None, refused=exc.error_msg or exc.message, problem=exc.message)
    except (HospitalError, MessageInvalid) as exc:
        return Answer(None, problem=getattr(exc, "message", type(exc).__name__))


def lock_failure(exc: CallFailure, *, hospital: Hospital) -> Failure:
    """A failed lock: the note on the failed order, whether the hospital may hold the lock after
    all (then it is looked for and undone), and the channel's error."""
    if isinstance(exc, HospitalRefused):
        text = f"医院拒绝锁号：{refusal_reason(exc)}"
        return Failure(text, permanent=True, may_have_arrived=False, error=LockRefused(text))
    if isinstance(exc, HospitalUnavailable):
        if exc.may_have_arrived:
            # The number stays out of sale until the platform has settled it with the hospital.
            error = HospitalUnavailableForBooking(
                f"{hospital.name}锁号结果未知（{exc.message}），本次预约未成功，平台将向医院核实；请稍后重试或选择其他号源"
            )
        else:
            error = HospitalUnavailableForBooking(f"{hospital.name}暂时无法锁号：{exc.message}。请稍后重试")
        return Failure(exc.message, permanent=False, may_have_arrived=exc.may_have_arrived, error=error)
    if isinstance(exc, MessageInvalid):
        return Failure(exc.summary(), permanent=True, may_have_arrived=False, error=InvalidInput(exc.violations))
    error = HospitalAnswerError(
        f"{hospital.name}的锁号应答无法识别，锁号结果未知，本次预约未成功，平台将向医院核实；请稍后重试"
    )
    return Failure(exc.message, permanent=False, may_have_arrived=True, error=error)


def delivery_failure(exc: CallFailure) -> Failure:
    """A failed outbox delivery: a refusal or a message that breaks the interface fails the row
    for staff to look at; no answer (down, timeout, circuit open, unreadable) is retried later."""
    if isinstance(exc, HospitalRefused):
        return Failure(f"医院拒绝：{mask_text(exc.error_msg or exc.message)}", permanent=True, may_have_arrived=False)
    if isinstance(exc, MessageInvalid):
        return Failure(f"报文不符合接口规范：{exc.summary()}", permanent=True, may_have_arrived=False)
    arrived = exc.may_have_arrived if isinstance(exc, HospitalUnavailable) else True
    return Failure(exc.message, permanent=False, may_have_arrived=arrived)


def refuse_if_circuit_open(hospital: Hospital) -> None:
    """Fail fast, before reserving anything: the hospital has just failed repeatedly."""
    if hospital_client.circuit_for(hospital).state() == OPEN:
        raise HospitalUnavailableForBooking(f"{hospital.name}的预约接口暂时无法访问（熔断保护中），请稍后重试")
