"""The audit trail: who changed what, when, with the values before and after (personal data masked).

Admin saves and deletes are recorded for every model without each admin having to remember
(`install_admin_audit`, called once at start-up); state changes of orders, referrals and
reconciliation runs are recorded by their services through `audit_record`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

from django.db import models

from regional.pii import EncryptedTextField, mask


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The concrete field values of `obj`, JSON-safe, personal data masked, binaries summarised."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        if isinstance(field, EncryptedTextField):
            value = mask(value, field.kind) if value else ""
        elif isinstance(field, models.BinaryField):
            value = f"<{len(value)}字节>" if value else None
        elif getattr(field, "editable", True) is False and field.name.endswith("_hash"):
            continue
        elif isinstance(value, (dt.datetime, dt.date, dt.time)):
            value = value.isoformat()
        elif isinstance(value, (decimal.Decimal, uuid.UUID)):
            value = str(value)
        data[field.name] = value
    return data


def changed(before: dict | None, after: dict | None) -> tuple[dict, dict]:
    """Only the fields that differ, so an entry reads as what changed."""
    before, after = before or {}, after or {}
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys if k in before}, {k: after.get(k) for k in keys if k in after}


def audit_record(
    *,
    action: str,
    obj: models.Model | None = None,
    model: str = "",
    object_id: str = "",
    before: dict | None = None,
    after: dict | None = None,
    user=None,
    actor: str = "",
    reason: str = "",
) -> None:
    from regional.models import AuditEntry

    if obj is not None:
        model = model or obj._meta.label
        object_id = object_id or str(obj.pk)
    only_before, only_after = changed(before, after)
    AuditEntry.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        actor=actor or (getattr(user, "username", "") if user is not None else "") or "系统",
        action=action,
        model=model,
        object_id=object_id,
        before=only_before,
        after=only_after,
        reason=reason[:500],
    )


def install_admin_audit() -> None:
    """Wrap ModelAdmin.save_model/delete_model once, so every admin change is recorded."""
    from django.contrib.admin import ModelAdmin

    if getattr(ModelAdmin, "_audit_installed", False):
        return
    original_save, original_delete = ModelAdmin.save_model, ModelAdmin.delete_model

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk is not None:
            current = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = snapshot(current) if current is not None else None
        original_save(self, request, obj, form, change)
        if obj._meta.label != "regional.AuditEntry":
            audit_record(
                action="修改" if change else "新增", obj=obj, before=before, after=snapshot(obj), user=request.user
            )

    def delete_model(self, request, obj):
        before, pk = snapshot(obj), obj.pk
        original_delete(self, request, obj)
        audit_record(action="删除", model=obj._meta.label, object_id=str(pk), before=before, user=request.user)

    ModelAdmin.save_model, ModelAdmin.delete_model = save_model, delete_model
    ModelAdmin._audit_installed = True
