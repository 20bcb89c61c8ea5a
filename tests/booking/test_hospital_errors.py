"""Hospital failures as booking errors (booking/hospital.py): one table for every caller. The
outcomes themselves come from the hospital client's tests against the sandbox hospital; here,
what each outcome means for a channel, an order and an outbox row."""

from __future__ import annotations

from booking.errors import HospitalAnswerError, HospitalUnavailableForBooking, LockRefused
from booking.hospital import delivery_failure, lock_failure, read_error
from regional.errors import InvalidInput
from regional.hospital_client import HospitalBadAnswer, HospitalRefused, HospitalUnavailable
from regional.messages import MessageInvalid, Violation
from regional.models import Hospital

HOSPITAL = Hospital(hospital_no="S001", name="测试沙箱医院")


class LockFailureTests:
    def test_a_refusal_is_final_and_holds_no_lock(self):
        failure = lock_failure(HospitalRefused("医院拒绝", error_msg="号源已满"), hospital=HOSPITAL)
        assert isinstance(failure.error, LockRefused) and failure.error.message == "医院拒绝锁号：号源已满"
        assert failure.note == "医院拒绝锁号：号源已满" and failure.permanent and not failure.may_have_arrived

    def test_no_answer_may_hold_a_lock_unless_the_call_never_left(self):
        lost = lock_failure(HospitalUnavailable("调用超时"), hospital=HOSPITAL)
        unsent = lock_failure(HospitalUnavailable("熔断中", may_have_arrived=False), hospital=HOSPITAL)
        assert (
            isinstance(lost.error, HospitalUnavailableForBooking) and "测试沙箱医院锁号结果未知" in lost.error.message
        )
        assert "测试沙箱医院暂时无法锁号" in unsent.error.message
        assert lost.may_have_arrived and not unsent.may_have_arrived and not lost.permanent

    def test_an_unreadable_answer_may_hold_a_lock(self):
        failure = lock_failure(HospitalBadAnswer("不是XML"), hospital=HOSPITAL)
        assert isinstance(failure.error, HospitalAnswerError) and failure.may_have_arrived

    def test_a_message_that_could_not_be_built_sent_nothing(self):
        failure = lock_failure(MessageInvalid([Violation("Name", "为必填项")]), hospital=HOSPITAL)
        assert isinstance(failure.error, InvalidInput) and not failure.may_have_arrived and failure.permanent


class ReadAndDeliveryTests:
    def test_a_read_failure_names_what_was_asked(self):
        refused = read_error(HospitalRefused("拒绝", error_msg="无此排班"), what="查询排队信息")
        assert refused.code == "hospital_refused" and refused.message == "查询排队信息失败：无此排班"
        away = read_error(HospitalUnavailable("连接失败"), what="查询排队信息")
        assert (
            isinstance(away, HospitalUnavailableForBooking) and away.message == "查询排队信息失败：连接失败，请稍后重试"
        )

    def test_a_delivery_is_retried_only_when_no_answer_came(self):
        assert delivery_failure(HospitalRefused("拒绝", error_msg="已退号")).permanent
        assert delivery_failure(MessageInvalid([Violation("WorkFlowId", "为必填项")])).permanent
        assert not delivery_failure(HospitalUnavailable("超时")).permanent
        assert not delivery_failure(HospitalBadAnswer("不是XML")).permanent
        assert delivery_failure(HospitalRefused("拒绝", error_msg="已退号")).note == "医院拒绝：已退号"
