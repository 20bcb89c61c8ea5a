"""Reads of the region's master data that several apps share."""

from __future__ import annotations

from regional.errors import NotFound
from regional.models import Hospital


def hospital_by_no(hospital_no: str) -> Hospital:
    """The registered (not deleted) hospital with this number; NotFound otherwise."""
    hospital = Hospital.objects.filter(hospital_no=(hospital_no or "").strip(), is_deleted=False).first()
    if hospital is None:
        raise NotFound(f"医院{hospital_no}不存在")
    return hospital
