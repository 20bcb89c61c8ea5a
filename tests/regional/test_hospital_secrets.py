"""Issue 14 item 17: hospital secrets are keyed by HOSPITAL_SECRET_KEYS, not DJANGO_SECRET_KEY, and
the key rotates like the PII keys (prepend, hashes move on use, drop the old key)."""

from __future__ import annotations

import pytest
import requests

from regional.models import HospitalCredential, hash_secret
from tests.conftest import SECRET
from tests.regional.test_center_public import HOSPITAL_XML, envelope, inner_response

NEW_KEY = "n" * 64


def stored_hash() -> str:
    return HospitalCredential.objects.get(hospital__hospital_no="H0001").secret_hash


@pytest.mark.django_db(transaction=True)
class HospitalSecretKeyTests:
    def test_rotating_the_django_secret_key_locks_no_hospital_out(self, hospital, public_url, settings):
        settings.SECRET_KEY = "r" * 60 + "-rotated-django-secret-key"
        response = requests.post(
            f"{public_url}/ws/center",
            data=envelope("HospitalInfo", HOSPITAL_XML.format(tx="k1", name="甲")),
            auth=("H0001", SECRET),
            timeout=10,
        )
        assert response.status_code == 200 and inner_response(response)["ResultCode"] == "0"

    def test_a_prepended_key_takes_over_on_the_next_call_and_the_old_one_can_then_go(self, hospital, settings):
        from regional.auth import check_secret

        old = list(settings.HOSPITAL_SECRET_KEYS)
        assert stored_hash() == hash_secret(SECRET, old[0])
        settings.HOSPITAL_SECRET_KEYS = [NEW_KEY, *old]
        assert check_secret("H0001", SECRET) == hospital
        assert stored_hash() == hash_secret(SECRET, NEW_KEY)
        settings.HOSPITAL_SECRET_KEYS = [NEW_KEY]
        assert check_secret("H0001", SECRET) == hospital and check_secret("H0001", "wrong") is None

    def test_a_hash_made_with_the_django_secret_key_before_the_setting_still_matches_once_and_moves(
        self, hospital, settings
    ):
        from regional.auth import check_secret

        HospitalCredential.objects.update(secret_hash=hash_secret(SECRET, settings.SECRET_KEY))
        assert check_secret("H0001", SECRET) == hospital
        assert stored_hash() == hash_secret(SECRET, settings.HOSPITAL_SECRET_KEYS[0])
