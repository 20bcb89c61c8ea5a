"""The staff's admin for schedules and channels, through Django's test client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from booking.models import Channel, Schedule, hash_token
from tests.base import apply, cleaned_record, record

CHANGELIST = "admin:booking_schedule_changelist"


def staff(*codenames: str) -> User:
    user = User.objects.create_user("clerk", password="x-pass-123456", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="booking", codename__in=codenames))
    return user


@pytest.mark.django_db
class ScheduleAdminTests:
    def test_the_list_shows_slots_filters_and_search_without_a_full_count(self, hospital, admin_client):
        apply(hospital, [record(1), record(2, DoctorId="D02", DoctorName="李时珍")])
        page = admin_client.get(reverse(CHANGELIST), {"q": "lsz", "when": "tomorrow", "status": "normal"})
        assert page.status_code == 200
        text = page.content.decode()
        assert "W00002" in text and "W00001" not in text and "18/20" in text
        assert page.context["cl"].show_full_result_count is False
        assert admin_client.get(reverse(CHANGELIST), {"q": "W00001"}).context["cl"].result_count == 1

    def test_a_changed_schedule_shows_its_reason_and_links_both_ways(self, hospital, admin_client):
        from booking.services import schedules

        apply(hospital, [record(1)])
        new = schedules.schedule_change(
            hospital=hospital, old_work_id="W00001", reason="医生外出会诊", new=cleaned_record(record(2))
        )
        old = Schedule.objects.get(work_id="W00001")
        assert "换诊为" in admin_client.get(reverse(CHANGELIST)).content.decode()
        old_page = admin_client.get(reverse("admin:booking_schedule_change", args=[old.pk])).content.decode()
        assert "医生外出会诊" in old_page and reverse("admin:booking_schedule_change", args=[new.pk]) in old_page
        new_page = admin_client.get(reverse("admin:booking_schedule_change", args=[new.pk])).content.decode()
        assert reverse("admin:booking_schedule_change", args=[old.pk]) in new_page

    def test_schedules_cannot_be_added_edited_or_deleted(self, hospital, admin_client):
        apply(hospital, [record(1)])
        schedule = Schedule.objects.get()
        assert admin_client.get(reverse("admin:booking_schedule_add")).status_code == 403
        url = reverse("admin:booking_schedule_change", args=[schedule.pk])
        admin_client.post(url, {"remaining": "0"})
        assert Schedule.objects.get().remaining == 18
        assert admin_client.get(reverse("admin:booking_schedule_delete", args=[schedule.pk])).status_code == 403

    def test_staff_with_the_permission_stop_a_schedule_through_the_service(self, hospital, client):
        apply(hospital, [record(1)])
        client.force_login(staff("view_schedule", "stop_schedule"))
        pk = str(Schedule.objects.get().pk)
        form = {"action": "stop_selected", "_selected_action": [pk]}
        confirm = client.post(reverse(CHANGELIST), {**form, "index": "0"})
        assert confirm.status_code == 200 and "确认停诊" in confirm.content.decode()
        done = client.post(reverse(CHANGELIST), {**form, "apply": "1", "reason": "医院电话通知：医生病假"}, follow=True)
        assert [m.message for m in done.context["messages"]] == ["已停诊1个排班"]
        schedule = Schedule.objects.get()
        assert (schedule.status, schedule.stop_reason) == ("stopped", "医院电话通知：医生病假")

    def test_staff_without_the_permission_have_no_stop_action(self, hospital, client):
        apply(hospital, [record(1)])
        client.force_login(staff("view_schedule"))
        page = client.get(reverse(CHANGELIST))
        assert page.status_code == 200 and "stop_selected" not in page.content.decode()


def shown_secrets(response) -> list[str]:
    """The secrets on the page rendered once; the messages cookie and the session never hold them (issue 14 item 16)."""
    import re

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    found = re.findall(r'<code class="issued-secret"[^>]*>([^<]+)</code>', response.content.decode())
    assert found
    cookie = response.cookies.get("messages")
    for secret in found:
        assert cookie is None or secret not in cookie.value
        assert secret not in str(dict(response.wsgi_request.session))
    return found


@pytest.mark.django_db
class ChannelAdminTests:
    def test_adding_a_channel_issues_its_token_and_shows_it_once(self, admin_client):
        response = admin_client.post(
            reverse("admin:booking_channel_add"), {"code": "JKMZWX", "name": "微信", "is_active": "on"}
        )
        token = shown_secrets(response)[0]
        channel = Channel.objects.get(code="JKMZWX")
        assert channel.token_hash == hash_token(token) and channel.token_hint == token[-4:]
        listing = admin_client.get(reverse("admin:booking_channel_changelist")).content.decode()
        assert f"…{token[-4:]}" in listing and token not in listing

    def test_the_issue_action_replaces_the_token(self, admin_client):
        from booking.services.channels import channel_issue_token

        channel, old = channel_issue_token(code="JKMYAPP", name="APP")
        response = admin_client.post(
            reverse("admin:booking_channel_changelist"),
            {"action": "issue_token", "_selected_action": [str(channel.pk)], "index": "0"},
        )
        token = shown_secrets(response)[0]
        assert token != old and Channel.objects.get().token_hash == hash_token(token)
