"""Re-encrypt every personal-data column under the newest key, and recompute the lookup hashes.

Rotation: prepend a new key to PII_ENCRYPTION_KEYS (old keys stay listed so existing values still
decrypt), run this command, then drop the old keys. Also run it after changing PII_HASH_KEY.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from regional.pii import EncryptedTextField, lookup_hash


class Command(BaseCommand):
    help = "用最新密钥重新加密全部个人信息字段，并重算查询摘要"

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=1000)

    def handle(self, *args, batch: int, **options):
        total = 0
        for model in apps.get_models():
            if model._meta.proxy:
                continue  # the concrete model's rows are the same rows
            fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            names = [f.name for f in fields] + [f.hash_field for f in fields if f.hash_field]
            count = 0
            pks = list(model._default_manager.order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(pks), batch):
                with transaction.atomic():
                    rows = list(model._default_manager.select_for_update().filter(pk__in=pks[start : start + batch]))
                    for row in rows:
                        for f in fields:
                            if f.hash_field:
                                setattr(row, f.hash_field, lookup_hash(getattr(row, f.attname)))
                    # Saving the plaintext again encrypts it under the first (newest) key.
                    model._default_manager.bulk_update(rows, names)
                    count += len(rows)
            total += count
            self.stdout.write(f"{model._meta.verbose_name}：{count}条")
        self.stdout.write(f"完成，共重新加密{total}条记录")
