"""The booking services' domain errors: each a stable `code`, an HTTP status and a Chinese message.

They belong to the one DomainError family (regional.errors), so every protocol maps them once:
REST JSON (booking/api/errors.py), SOAP ResultCode 1 with ErrorMsg (the inbound pipeline).
"""

from __future__ import annotations

from regional.errors import Conflict, DomainError, NotFound


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class ScheduleFull(Conflict):
    """No slot left on the platform's count (or at the hospital)."""

    code = "schedule_full"


class ScheduleClosed(Conflict):
    """停诊, 换诊, withdrawn or already over: the schedule takes no booking."""

    code = "schedule_closed"


class DuplicateBooking(Conflict):
    code = "duplicate_booking"


class RegionRuleRefused(Conflict):
    """A region-wide rule refuses the booking because of the patient's bookings through another
    channel: the refusing channel is told no more than that, never what or where (issue 14)."""

    code = "region_rule"


class LockRefused(Conflict):
    """The hospital refused the lock (confirmRegistration ResultCode ≠ 0); its reason is the message."""

    code = "lock_refused"


class HospitalUnavailableForBooking(DomainError):
    """The hospital cannot be reached (down, timing out, circuit open): try again later."""

    code = "hospital_unavailable"
    http_status = 503


class HospitalAnswerError(DomainError):
    """The hospital answered something that is not its interface."""

    code = "hospital_bad_answer"
    http_status = 502


class OrderStateConflict(Conflict):
    """The order's state does not allow the operation (pay an expired lock, cancel a visited order…)."""

    code = "order_state"


class LockExpired(Conflict):
    code = "lock_expired"


class PaymentMismatch(Conflict):
    code = "payment_mismatch"


class IdempotencyConflict(Conflict):
    """An Idempotency-Key reused for a different request."""

    code = "idempotency_conflict"


class BookingNotOpen(Conflict):
    """Before the release time (放号) of the session."""

    code = "booking_not_open"


class BookingClosed(Conflict):
    """After the booking cut-off before the session starts."""

    code = "booking_closed"


class PatientLimitReached(Conflict):
    """The patient's day / week / month limit across the region."""

    code = "patient_limit"


class SessionOverlap(Conflict):
    """The patient already holds an order at an overlapping time (any hospital)."""

    code = "session_overlap"


class CancelDeadlinePassed(Conflict):
    """Past the cancellation deadline (e.g. 14:00 of the working day before)."""

    code = "cancel_deadline"


class PatientBanned(Conflict):
    """The patient is banned from booking after repeated no-shows (爽约黑名单)."""

    code = "patient_banned"


class WaitlistClosed(Conflict):
    """The session's waitlist is closed (past its cut-off) or the region offers none."""

    code = "waitlist_closed"


class WaitlistNotNeeded(Conflict):
    """The schedule still has numbers: book it directly."""

    code = "waitlist_not_needed"


class WaitlistEntryNotFound(NotFound):
    code = "waitlist_entry_not_found"


class ChannelQuotaExhausted(Conflict):
    """The channel's share of the schedule is used up (until unsold quotas are released)."""

    code = "channel_quota"
