"""Revealing a full personal value (CONTRACT.md section 6, issue 13): a button opens a form asking
why; only that form's POST shows the value and records who, when, which record and the reason."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from regional.models import PersonalDataReveal
from regional.roles import HOTLINE, REGIONAL_ADMIN
from tests.base import fake_id, hospital_make, masked_id
from tests.console import staff
from tests.factories import OrderFactory


@pytest.fixture
def order(db):
    return OrderFactory(hospital=hospital_make(), id_card=fake_id(31), phone="13400000031")


def signed_in(role: str) -> Client:
    client = Client()
    client.force_login(staff(role))
    return client


@pytest.mark.django_db
class RevealTests:
    def test_the_change_page_offers_a_button_to_the_form_not_the_value(self, order):
        page = signed_in(REGIONAL_ADMIN).get(reverse("admin:booking_order_change", args=[order.pk])).content.decode()
        url = reverse("admin:booking_order_reveal", args=[order.pk, "id_card"])
        assert f'href="{url}" class="button reveal">查看完整信息</a>' in page
        assert masked_id(31) in page and fake_id(31) not in page

    def test_a_role_without_the_permission_is_offered_no_button(self, order):
        client = signed_in(HOTLINE)
        page = client.get(reverse("admin:booking_order_change", args=[order.pk])).content.decode()
        assert masked_id(31) in page and "查看完整信息" not in page
        listing = client.get(reverse("admin:booking_order_changelist")).content.decode()
        assert "查看完整信息" not in listing

    def test_a_get_shows_the_form_and_neither_reveals_nor_records(self, order):
        response = signed_in(REGIONAL_ADMIN).get(reverse("admin:booking_order_reveal", args=[order.pk, "id_card"]))
        text = response.content.decode()
        assert response.status_code == 200 and 'method="post"' in text and "查看原因" in text
        assert masked_id(31) in text and fake_id(31) not in text
        assert not PersonalDataReveal.objects.exists()

    def test_a_post_without_a_reason_is_refused_in_chinese_and_records_nothing(self, order):
        url = reverse("admin:booking_order_reveal", args=[order.pk, "id_card"])
        client = signed_in(REGIONAL_ADMIN)
        for blank in ({}, {"reason": "   "}):
            text = client.post(url, blank).content.decode()
            assert "请填写查看原因" in text and fake_id(31) not in text
        assert not PersonalDataReveal.objects.exists()

    def test_a_post_with_a_reason_shows_the_value_once_and_records_the_reason(self, order):
        client = signed_in(REGIONAL_ADMIN)
        response = client.post(reverse("admin:booking_order_reveal", args=[order.pk, "phone"]), {"reason": "回拨患者"})
        assert response.status_code == 200 and "13400000031" in response.content.decode()
        assert "no-store" in response["Cache-Control"]
        reveal = PersonalDataReveal.objects.get()
        assert (reveal.user.username, reveal.model, reveal.object_id, reveal.field, reveal.reason) == (
            REGIONAL_ADMIN,
            "booking.Order",
            str(order.pk),
            "phone",
            "回拨患者",
        )
        listing = client.get(reverse("admin:regional_personaldatareveal_changelist")).content.decode()
        assert "回拨患者" in listing and "13400000031" not in listing

    def test_the_hotline_may_neither_open_the_form_nor_post_it(self, order):
        client = signed_in(HOTLINE)
        url = reverse("admin:booking_order_reveal", args=[order.pk, "id_card"])
        assert client.get(url).status_code == 403
        response = client.post(url, {"reason": "想看看"})
        assert response.status_code == 403 and fake_id(31) not in response.content.decode()
        assert not PersonalDataReveal.objects.exists()

    def test_a_field_that_is_not_personal_data_cannot_be_asked_for(self, order):
        url = reverse("admin:booking_order_reveal", args=[order.pk, "order_no"])
        assert signed_in(REGIONAL_ADMIN).post(url, {"reason": "核对"}).status_code == 403
