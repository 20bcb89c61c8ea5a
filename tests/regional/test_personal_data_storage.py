"""Personal data at rest: a database dump holds no plaintext, lookups work by hash, keys rotate."""

from __future__ import annotations

import io
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from regional import pii
from sandbox.models import SandboxCard, SandboxHospital
from tests.services import find_binary

ID_NO = "330600000000009999"
PHONE = "13400009999"


@pytest.fixture
def card(db):
    his = SandboxHospital.objects.create(hospital_no="S0001", name="测试沙箱医院")
    return SandboxCard.objects.create(hospital=his, card_no="C0001", id_code=ID_NO, name="测试患者", phone=PHONE)


def raw_row(card) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id_code, phone, id_hash FROM {SandboxCard._meta.db_table} WHERE id = %s", [card.pk])
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
class PersonalDataAtRestTests:
    def test_a_dump_of_the_database_holds_no_plaintext_id_or_phone(self, postgres, card):
        settings = connection.settings_dict
        dump = subprocess.run(
            [find_binary("pg_dump"), "-h", settings["HOST"], "-p", str(settings["PORT"]), "-U", settings["USER"],
             "--data-only", settings["NAME"]],
            capture_output=True, check=True, timeout=120,
        ).stdout.decode("utf-8", "replace")  # fmt: skip
        assert "C0001" in dump  # the dump is real and holds the row
        assert ID_NO not in dump and PHONE not in dump and "测试患者" not in dump

    def test_values_are_found_by_their_lookup_hash(self, card):
        assert SandboxCard.objects.get(id_hash=pii.lookup_hash(ID_NO.lower())).pk == card.pk

    def test_keys_rotate_and_old_keys_can_then_be_dropped(self, card, settings):
        old_ciphertext = raw_row(card)[0]
        new_key = Fernet.generate_key().decode()
        settings.PII_ENCRYPTION_KEYS = [new_key, *settings.PII_ENCRYPTION_KEYS]
        call_command("rotate_pii_keys", stdout=io.StringIO())
        rotated = raw_row(card)
        assert rotated[0] != old_ciphertext and rotated[2] == pii.lookup_hash(ID_NO)
        settings.PII_ENCRYPTION_KEYS = [new_key]
        again = SandboxCard.objects.get(pk=card.pk)
        assert again.id_code == ID_NO and again.phone == PHONE
