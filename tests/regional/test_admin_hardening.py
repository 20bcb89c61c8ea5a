"""Issue 14 items 12 and 13: staff pages that checked no permission or answered 500 to bad parameters."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from regional.models import MessageLog

HEALTH = "/admin/regional/messagelog/health/"


def staff(*codenames: str, name: str = "clerk") -> Client:
    user = User.objects.create_user(name, password="x-pass-123456", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
class InterfaceHealthPageTests:
    def test_staff_without_the_message_log_permission_see_no_figures(self, hospital):
        MessageLog.objects.create(
            direction="in", side="center", interface="HospitalInfo", hospital=hospital, hospital_no="H0001", ok=True
        )
        response = staff().get(HEALTH)
        assert response.status_code == 403 and "H0001" not in response.content.decode()
        allowed = staff("view_messagelog", name="interfaces").get(HEALTH)
        assert allowed.status_code == 200 and "H0001" in allowed.content.decode()

    @pytest.mark.parametrize(
        "query",
        [{"hours": "abc"}, {"hours": "99999999999999"}, {"hours": "-5"}, {"hours": "²"}, {"hospital": "abc"},
         {"hospital": "99999999999999999999"}, {"hospital": "1\x00"}],
    )  # fmt: skip
    def test_bad_parameters_show_the_page_with_a_warning(self, admin_client, query):
        response = admin_client.get(HEALTH, query)
        assert response.status_code == 200
        assert "已按24小时显示" in response.content.decode() or "医院参数无效" in response.content.decode()


@pytest.mark.django_db
class MoreStaffPageTests:
    def test_a_superscript_digit_as_a_referral_id_is_not_found_not_a_500(self):
        response = staff("view_referral").get("/referral/referral/his.html?id=%C2%B2")
        assert response.status_code == 404 and "转诊单不存在" in response.content.decode()

    def test_a_malformed_order_key_in_a_reveal_link_is_not_found_not_a_500(self):
        client = staff("reveal_personal_data", "view_order")
        for key in ("abc", "1.5", "%C2%B2"):
            response = client.post(f"/admin/booking/order/{key}/reveal/id_card/", {"reason": "核对"})
            assert response.status_code == 404, key


@pytest.mark.django_db
class SecretShownOnceTests:
    """Issue 14 item 16: a rotated hospital secret is shown on a page rendered once, never in a message."""

    def test_a_rotated_secret_is_on_the_page_only_and_works(self, hospital, admin_client):
        from regional.auth import check_secret
        from tests.booking.test_admin import shown_secrets

        response = admin_client.post(
            "/admin/regional/hospital/", {"action": "rotate_secret", "_selected_action": [str(hospital.pk)]}
        )
        [secret] = shown_secrets(response)
        assert check_secret("H0001", secret) == hospital
        listing = admin_client.get("/admin/regional/hospital/")
        assert secret not in listing.content.decode() and not list(listing.context["messages"])
