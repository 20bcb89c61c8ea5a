"""The referral life cycle, directions, referral back, links, and the overdue reminders."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from referral import notify, services
from referral.models import Referral, ReferralAccess, ReferralNotification
from referral.services import Actor, LinkExpired, LinkUnknown, NotParty, TransitionNotAllowed
from regional.errors import InvalidInput
from regional.models import Hospital
from regional.pii import lookup_hash
from tests.base import START_VALUES

pytestmark = pytest.mark.django_db


def start_data(**overrides) -> dict:
    data = {**START_VALUES, **overrides}
    data["csrq"] = dt.date(1990, 1, 1)
    return data


@pytest.fixture
def draft(sender):
    referral, _ = services.referral_start(hospital=sender, data=start_data())
    return referral


@pytest.fixture
def sender_doctor(sender):
    return Actor.doctor(sender, "YS9900", "李医生")


@pytest.fixture
def receiver_doctor(receiver):
    return Actor.doctor(receiver, "ZR001")


def submit(referral, actor, receiver, **overrides):
    args = {"receiving_hospital": receiver, "urgency": "1", "purpose": "进一步诊治", "notes": "请安排床位", **overrides}
    if "receiving_department" not in args:
        args["receiving_department"] = receiver.departments.get(department_id="K01")
    return services.referral_submit(referral=referral, actor=actor, **args)


class LifeCycleTests:
    def test_a_referral_goes_from_draft_to_completed_with_every_step_recorded(
        self, draft, sender_doctor, receiver_doctor, receiver
    ):
        referral = submit(draft, sender_doctor, receiver)
        assert referral.status == "submitted" and referral.submitted_at
        assert referral.receiving_department_name == "心血管内科" and referral.notes == "请安排床位"
        referral = services.referral_accept(referral=referral, actor=receiver_doctor, note="明日上午就诊")
        referral = services.referral_arrive(referral=referral, actor=receiver_doctor)
        referral = services.referral_complete(referral=referral, actor=receiver_doctor, note="已出院")
        stored = Referral.objects.get(pk=draft.pk)
        assert stored.status == "completed"
        assert stored.submitted_at <= stored.accepted_at <= stored.arrived_at <= stored.completed_at
        steps = [(t.from_status, t.to_status, t.actor_label, t.reason) for t in stored.transitions.all()]
        assert steps == [
            ("", "draft", "测试社区卫生服务中心 医生李医生（工号YS9900）", "HIS发起转诊申请"),
            ("draft", "submitted", "测试社区卫生服务中心 医生李医生（工号YS9900）", "提交转诊申请"),
            ("submitted", "accepted", "测试第二人民医院 医生（工号ZR001）", "明日上午就诊"),
            ("accepted", "arrived", "测试第二人民医院 医生（工号ZR001）", ""),
            ("arrived", "completed", "测试第二人民医院 医生（工号ZR001）", "已出院"),
        ]
        assert all(t.actor_hospital_id for t in stored.transitions.all())

    def test_a_rejection_needs_a_reason_and_keeps_it(self, draft, sender_doctor, receiver_doctor, receiver):
        referral = submit(draft, sender_doctor, receiver)
        with pytest.raises(InvalidInput) as caught:
            services.referral_reject(referral=referral, actor=receiver_doctor, reason="  ")
        assert caught.value.errors == {"reason": "请填写拒绝原因"}
        referral = services.referral_reject(referral=referral, actor=receiver_doctor, reason="本院无床位")
        assert referral.status == "rejected" and referral.reject_reason == "本院无床位"
        assert referral.transitions.last().reason == "本院无床位"

    @pytest.mark.parametrize("submitted", [False, True])
    def test_the_sender_cancels_while_not_yet_accepted(self, draft, sender_doctor, receiver, submitted):
        referral = submit(draft, sender_doctor, receiver) if submitted else draft
        referral = services.referral_cancel(referral=referral, actor=sender_doctor, reason="患者拒绝转诊")
        assert referral.status == "cancelled" and referral.cancelled_at
        assert referral.transitions.last().reason == "患者拒绝转诊"

    def test_an_accepted_referral_can_no_longer_be_cancelled(self, draft, sender_doctor, receiver_doctor, receiver):
        referral = services.referral_accept(referral=submit(draft, sender_doctor, receiver), actor=receiver_doctor)
        with pytest.raises(TransitionNotAllowed, match="当前状态为“已接收”，不能取消"):
            services.referral_cancel(referral=referral, actor=sender_doctor, reason="改变主意")

    def test_steps_out_of_order_are_refused(self, draft, sender_doctor, receiver_doctor, receiver):
        with pytest.raises(TransitionNotAllowed):
            services.referral_accept(referral=draft, actor=receiver_doctor)
        referral = submit(draft, sender_doctor, receiver)
        with pytest.raises(TransitionNotAllowed, match="不能登记患者到院"):
            services.referral_arrive(referral=referral, actor=receiver_doctor)
        with pytest.raises(TransitionNotAllowed, match="不能提交"):
            submit(referral, sender_doctor, receiver)

    def test_each_hospital_acts_only_on_its_own_side(
        self, draft, sender_doctor, receiver_doctor, receiver, make_hospital
    ):
        stranger = Actor.doctor(make_hospital("H0007", "无关医院"), "X1")
        with pytest.raises(NotParty, match="只有转出医院"):
            submit(draft, stranger, receiver)
        referral = submit(draft, sender_doctor, receiver)
        with pytest.raises(NotParty, match="只有转入医院"):
            services.referral_accept(referral=referral, actor=sender_doctor)
        with pytest.raises(NotParty, match="只有转出医院"):
            services.referral_cancel(referral=referral, actor=receiver_doctor, reason="x")

    def test_the_form_rules_are_all_reported(self, draft, sender_doctor, sender, receiver, make_hospital):
        other = make_hospital("H0008", "他院")
        with pytest.raises(InvalidInput) as caught:
            services.referral_submit(
                referral=draft,
                actor=sender_doctor,
                receiving_hospital=sender,
                receiving_department=None,
                urgency="9",
                purpose=" ",
            )
        assert caught.value.errors == {
            "hospital": "转入医院不能是本院",
            "urgency": "请选择紧急程度",
            "purpose": "请填写转诊目的",
        }
        with pytest.raises(InvalidInput) as caught:
            submit(draft, sender_doctor, other, receiving_department=receiver.departments.first())
        assert caught.value.errors == {"department": "所选科室不属于转入医院"}
        with pytest.raises(InvalidInput) as caught:
            submit(draft, sender_doctor, receiver, receiving_department=None)
        assert caught.value.errors == {"department": "请选择转入科室"}
        assert Referral.objects.get(pk=draft.pk).status == "draft"

    def test_staff_may_act_on_either_side(self, draft, sender_doctor, receiver, admin_user):
        referral = submit(draft, sender_doctor, receiver)
        referral = services.referral_accept(referral=referral, actor=Actor.staff(admin_user))
        transition = referral.transitions.last()
        assert transition.actor_user == admin_user and transition.actor_label == "平台用户 admin"


class DirectionTests:
    @pytest.mark.parametrize(
        ("sending", "receiving", "direction"),
        [
            ("一级甲等", "三级甲等", "up"),
            ("三级乙等", "二级甲等", "down"),
            ("二级甲等", "二级乙等", "lateral"),
            ("", "三级甲等", "unknown"),
        ],
    )
    def test_the_direction_follows_the_two_hospitals_levels(self, make_hospital, sending, receiving, direction):
        a = make_hospital("A1", "甲院")
        b = make_hospital("B1", "乙院")
        Hospital.objects.filter(pk=a.pk).update(degree_name=sending)
        Hospital.objects.filter(pk=b.pk).update(degree_name=receiving)
        referral, _ = services.referral_start(hospital=Hospital.objects.get(pk=a.pk), data=start_data(fqyydm="A1"))
        referral = services.referral_submit(
            referral=referral,
            actor=Actor.doctor(a),
            receiving_hospital=Hospital.objects.get(pk=b.pk),
            receiving_department=None,
            urgency="2",
            purpose="转诊",
        )
        assert referral.direction == direction

    def test_a_referral_back_is_linked_to_the_original_and_goes_down(
        self, draft, sender_doctor, receiver_doctor, receiver, sender
    ):
        referral = submit(draft, sender_doctor, receiver)
        with pytest.raises(TransitionNotAllowed, match="患者到院后才能发起回转"):
            services.referral_return(original=referral, actor=receiver_doctor)
        referral = services.referral_arrive(
            referral=services.referral_accept(referral=referral, actor=receiver_doctor), actor=receiver_doctor
        )
        back, code = services.referral_return(original=referral, actor=receiver_doctor)
        assert back.original == referral and back.source == "back" and back.status == "draft"
        assert back.sending_hospital == receiver and back.receiving_hospital == sender
        assert back.patient_name == "张三" and back.id_no_hash == lookup_hash(START_VALUES["sfzh"])
        assert back.sending_doctor_code == "ZR001"
        assert services.referral_link_open(code=code, audience=ReferralAccess.SENDER).referral == back
        again, _ = services.referral_return(original=referral, actor=receiver_doctor)
        assert again == back  # one open draft per original
        back = services.referral_submit(
            referral=back,
            actor=receiver_doctor,
            receiving_hospital=sender,
            receiving_department=None,
            urgency="3",
            purpose="康复期回社区",
        )
        assert back.direction == "down" and back.is_back


class LinkTests:
    def test_a_code_opens_only_its_own_page_until_it_expires(self, sender, settings):
        settings.REFERRAL_LINK_TTL_MINUTES = 30
        referral, code = services.referral_start(hospital=sender, data=start_data())
        access = services.referral_link_open(code=code.lower(), audience=ReferralAccess.SENDER)
        assert access.referral == referral and access.last_used_at is None  # refreshed in the row only
        assert ReferralAccess.objects.get().last_used_at is not None
        assert dt.timedelta(minutes=29) < access.expires_at - access.created_at <= dt.timedelta(minutes=30)
        with pytest.raises(LinkUnknown):
            services.referral_link_open(code=code, audience=ReferralAccess.RECEIVER)
        with pytest.raises(LinkUnknown):
            services.referral_link_open(code="0" * 40, audience=ReferralAccess.SENDER)
        ReferralAccess.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        with pytest.raises(LinkExpired):
            services.referral_link_open(code=code, audience=ReferralAccess.SENDER)

    def test_links_long_expired_are_pruned(self, sender):
        services.referral_start(hospital=sender, data=start_data())
        services.referral_start(hospital=sender, data=start_data(orderid="ORD-0002"))
        ReferralAccess.objects.filter(referral__order_id="ORD-0002").update(
            expires_at=timezone.now() - dt.timedelta(days=31)
        )
        assert services.referral_links_prune() == 1
        assert ReferralAccess.objects.get().referral.order_id == "ORD-0001"

    def test_codes_are_random_and_at_least_128_bits(self, sender):
        codes = {services.referral_start(hospital=sender, data=start_data())[1] for _ in range(20)}
        assert len(codes) == 20
        assert all(len(c) * 4 >= 128 for c in codes)


class FailingBackend:
    def send(self, notification):
        raise ConnectionError("短信网关不可用 13400001234")


class OverdueTests:
    @pytest.fixture
    def waiting(self, draft, sender_doctor, receiver):
        referral = submit(draft, sender_doctor, receiver)
        Referral.objects.filter(pk=referral.pk).update(submitted_at=timezone.now() - dt.timedelta(hours=49))
        return referral

    def test_a_pending_referral_is_flagged_once_and_both_recipients_are_notified(
        self, waiting, caplog, settings, django_capture_on_commit_callbacks
    ):
        settings.REFERRAL_PENDING_HOURS = 48
        with caplog.at_level(logging.WARNING, logger="regional.notify"):
            with django_capture_on_commit_callbacks(execute=True):
                assert services.referral_overdue_scan() == 1
        assert Referral.objects.get(pk=waiting.pk).overdue_flagged_at is not None
        rows = {n.recipient: n for n in ReferralNotification.objects.all()}
        assert set(rows) == {"hospital:H0002", "staff"}
        assert rows["hospital:H0002"].hospital.hospital_no == "H0002"
        assert all(n.sent_at is not None and n.attempts == 1 for n in rows.values())
        message = rows["staff"].message
        assert "ORD-0001" in message and "已提交49小时仍未处理" in message and "张三" not in message
        assert "转诊提醒" in caplog.text
        assert services.referral_overdue_scan() == 0
        assert ReferralNotification.objects.count() == 2

    def test_recent_or_acted_on_referrals_are_not_flagged(self, draft, sender_doctor, receiver_doctor, receiver):
        referral = submit(draft, sender_doctor, receiver)
        assert services.referral_overdue_scan() == 0
        services.referral_accept(referral=referral, actor=receiver_doctor)
        Referral.objects.filter(pk=referral.pk).update(submitted_at=timezone.now() - dt.timedelta(days=5))
        assert services.referral_overdue_scan() == 0

    def test_the_pending_time_is_a_setting(self, waiting, settings):
        settings.REFERRAL_PENDING_HOURS = 72
        assert services.referral_overdue_scan() == 0
        settings.REFERRAL_PENDING_HOURS = 24
        assert services.referral_overdue_scan() == 1

    def test_a_failed_delivery_is_kept_and_redelivered_later(
        self, waiting, settings, django_capture_on_commit_callbacks
    ):
        settings.NOTIFIER = "tests.referral.test_lifecycle.FailingBackend"
        try:
            with django_capture_on_commit_callbacks(execute=True):
                assert services.referral_overdue_scan() == 1
            rows = list(ReferralNotification.objects.all())
            assert len(rows) == 2 and all(n.sent_at is None and n.attempts == 1 for n in rows)
            assert "ConnectionError" in rows[0].last_error and "13400001234" not in rows[0].last_error
        finally:
            settings.NOTIFIER = "regional.notify.LogBackend"
        assert notify.notifications_sweep() == 0  # too recent: a worker may still be on it
        ReferralNotification.objects.update(next_attempt_at=timezone.now() - dt.timedelta(minutes=10))
        assert notify.notifications_sweep() == 2
        assert not ReferralNotification.objects.filter(sent_at__isnull=True).exists()

    def test_a_reminder_another_worker_is_sending_is_not_sent_again(self, waiting, caplog):
        assert services.referral_overdue_scan() == 1  # the on-commit delivery never runs in this test
        row = ReferralNotification.objects.first()
        # A worker holds the lease (the task after commit, say) when the sweep comes by.
        ReferralNotification.objects.update(
            next_attempt_at=timezone.now() - dt.timedelta(minutes=10),
            claimed_until=timezone.now() + dt.timedelta(minutes=1),
        )
        assert notify.notifications_sweep() == 0
        assert notify.notification_deliver(notification_id=row.pk).outcome == "skipped"
        # The worker crashed: its lease runs out and the sweep sends the row once.
        ReferralNotification.objects.update(claimed_until=timezone.now() - dt.timedelta(seconds=1))
        with caplog.at_level(logging.WARNING, logger="regional.notify"):
            assert notify.notifications_sweep() == 2
        assert caplog.text.count("转诊提醒") == 2
        assert set(ReferralNotification.objects.values_list("status", "attempts")) == {("sent", 1)}

    def test_after_the_retry_budget_a_reminder_fails_and_staff_can_send_it_again(
        self, waiting, settings, django_capture_on_commit_callbacks
    ):
        from regional.models import AuditEntry

        settings.DELIVERY_MAX_ATTEMPTS = 1
        settings.NOTIFIER = "tests.referral.test_lifecycle.FailingBackend"
        with django_capture_on_commit_callbacks(execute=True):
            assert services.referral_overdue_scan() == 1
        assert set(ReferralNotification.objects.values_list("status", flat=True)) == {"failed"}
        assert notify.notifications_sweep(now=timezone.now() + dt.timedelta(hours=1)) == 0  # failed is left to staff
        settings.NOTIFIER = "regional.notify.LogBackend"
        ids = list(ReferralNotification.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            assert notify.notifications_retry(notification_ids=ids) == 2
        assert set(ReferralNotification.objects.values_list("status", "attempts")) == {("sent", 1)}
        assert AuditEntry.objects.filter(action="重新发送转诊提醒").count() == 2

    def test_the_sms_notifier_logs_reminders_that_have_no_mobile_number(self, waiting, settings, caplog):
        settings.NOTIFIER = "regional.notify.SmsGatewayBackend"
        settings.SMS_GATEWAY_URL = "http://127.0.0.1:9/never-called"
        with caplog.at_level(logging.WARNING, logger="regional.notify"):
            assert services.referral_overdue_scan() == 1
            for row in ReferralNotification.objects.all():
                assert notify.notification_deliver(notification_id=row.pk).outcome == "sent"
        assert "转诊提醒 [overdue] → staff" in caplog.text

    def test_the_periodic_task_scans_and_is_in_the_beat_schedule(self, waiting, django_capture_on_commit_callbacks):
        from config.celery import app
        from referral.tasks import scan_overdue_referrals

        entry = app.conf.beat_schedule["referral-overdue-scan"]
        assert entry["task"] == "referral.scan_overdue"
        assert entry["schedule"] == dt.timedelta(minutes=15)
        with django_capture_on_commit_callbacks(execute=True):
            result = scan_overdue_referrals.delay()
        assert result.get() == {"flagged": 1, "redelivered": 0, "pruned_links": 0}
        assert ReferralNotification.objects.filter(sent_at__isnull=False).count() == 2
