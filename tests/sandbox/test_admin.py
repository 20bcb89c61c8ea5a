"""The sandbox's staff screens: lists render, personal data stays masked, actions go through services."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sandbox import services
from sandbox.models import SandboxHospital, SandboxOrder, SandboxSchedule
from tests.base import demo_his
from tests.factories import PATIENT

MODELS = ("sandboxhospital", "sandboxdepartment", "sandboxdoctor", "sandboxschedule", "sandboxorder", "sandboxcard")


@pytest.fixture
def his(db, public_url):
    return demo_his(public_url, platform_name="测试第一医院", name="测试沙箱医院", level=1, days=1)


@pytest.fixture
def order(his) -> SandboxOrder:
    schedule = SandboxSchedule.objects.first()
    services.card_list_or_register(hospital=his, id_code=PATIENT["IDCode"], name=PATIENT["Name"], card_type="01")
    return services.order_lock(
        hospital=his, transaction_id="T-1", work_id=schedule.work_id, num_source_id=None, patient=PATIENT
    )


@pytest.mark.django_db(transaction=True)
class SandboxAdminTests:
    def test_every_list_and_change_page_renders_in_chinese(self, admin_client, order):
        assert "沙箱医院" in admin_client.get(reverse("admin:index")).content.decode()
        for model in MODELS:
            response = admin_client.get(reverse(f"admin:sandbox_{model}_changelist"))
            assert response.status_code == 200, model
        page = admin_client.get(reverse("admin:sandbox_sandboxhospital_change", args=[order.hospital_id]))
        assert "故障模拟" in page.content.decode() and "/sandbox/his/S001/ws" in page.content.decode()

    def test_personal_data_is_shown_masked_and_is_not_editable(self, admin_client, order):
        for url in (
            reverse("admin:sandbox_sandboxorder_changelist"),
            reverse("admin:sandbox_sandboxorder_change", args=[order.pk]),
            reverse("admin:sandbox_sandboxcard_changelist"),
        ):
            text = admin_client.get(url).content.decode()
            assert PATIENT["IDCode"] not in text and PATIENT["TelephoneNo"] not in text and PATIENT["Name"] not in text
        assert (
            "3306**********0001" in admin_client.get(reverse("admin:sandbox_sandboxorder_changelist")).content.decode()
        )

    def test_calling_the_next_patient_from_the_admin_advances_the_queue(self, admin_client, order):
        response = admin_client.post(
            reverse("admin:sandbox_sandboxschedule_changelist"),
            {"action": "call_next", "_selected_action": [order.schedule_id]},
            follow=True,
        )
        assert "请1号就诊" in response.content.decode()
        order.refresh_from_db()
        assert order.status == SandboxOrder.VISITED and order.schedule.now_seq == 1

    def test_stopping_a_session_from_the_admin_tells_the_center_and_shows_its_answer(self, admin_client, order):
        response = admin_client.post(
            reverse("admin:sandbox_sandboxschedule_changelist"),
            {"action": "stop_and_notify", "_selected_action": [order.schedule_id], "reason": "医生外出会诊"},
            follow=True,
        )
        assert "StopWorkNotice：平台" in response.content.decode()  # the admin capitalises messages
        schedule = SandboxSchedule.objects.get(pk=order.schedule_id)
        assert schedule.status == SandboxSchedule.STOPPED and schedule.stop_reason == "医生外出会诊"

    def test_master_data_is_pushed_from_the_admin(self, admin_client, his):
        response = admin_client.post(
            reverse("admin:sandbox_sandboxhospital_changelist"),
            {"action": "push_master_data", "_selected_action": [his.pk]},
            follow=True,
        )
        text = response.content.decode()
        assert "HospitalInfo：平台已接收" in text and "DoctorInfo：平台已接收" in text

    def test_faults_are_cleared_from_the_admin(self, admin_client, his):
        services.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500, latency_ms=100)
        admin_client.post(
            reverse("admin:sandbox_sandboxhospital_changelist"),
            {"action": "clear_faults", "_selected_action": [his.pk]},
            follow=True,
        )
        his.refresh_from_db()
        assert his.fault_mode == "" and his.fault_latency_ms == 0
