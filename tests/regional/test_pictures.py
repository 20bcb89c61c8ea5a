"""Issue 16: a hospital's picture (5.1 Image, up to 4 MB) and a doctor's photo (5.3 Icon, up to 2 MB)
live in tables of their own, so that no read that joins the hospital or the doctor (browse, the lock,
the credential cache) carries megabytes per row; what a push without them means is unchanged."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from booking.services.channels import channel_issue_token
from regional.models import Doctor, DoctorIcon, HospitalImage
from regional.services import doctors_apply, hospital_info_apply

BIG = b"\x89PNG" + bytes(4 * 1024 * 1024 - 4)


def doctor(doctor_id: str, **extra) -> dict:
    return {"DoctorId": doctor_id, "DoctorName": f"医生{doctor_id}", "DepartmentId": "K01", "DepartmentName": "内科",
            **extra}  # fmt: skip


@pytest.mark.django_db
class PictureTests:
    def test_a_hospital_info_without_image_keeps_the_picture_sent_before(self, hospital):
        hospital_info_apply(hospital=hospital, info={"HospitalName": "测试第一医院", "Image": BIG})
        hospital_info_apply(hospital=hospital, info={"HospitalName": "测试第一医院（新）"})
        assert bytes(HospitalImage.objects.get(hospital=hospital).image) == BIG
        hospital_info_apply(hospital=hospital, info={"HospitalName": "测试第一医院", "Image": b"new"})
        assert bytes(HospitalImage.objects.get(hospital=hospital).image) == b"new"

    def test_a_doctor_record_without_icon_removes_the_photo_as_before(self, hospital):
        doctors_apply(hospital=hospital, records=[doctor("D01", Icon=b"one"), doctor("D02", Icon=b"two")])
        doctors_apply(hospital=hospital, records=[doctor("D01"), doctor("D02", Icon=b"three")])
        icons = {i.doctor.doctor_id: bytes(i.icon) for i in DoctorIcon.objects.select_related("doctor")}
        assert icons == {"D02": b"three"}
        assert Doctor.objects.filter(hospital=hospital).count() == 2

    def test_channel_reads_never_touch_the_pictures(self, hospital):
        hospital_info_apply(hospital=hospital, info={"HospitalName": "测试第一医院", "Image": BIG})
        doctors_apply(hospital=hospital, records=[doctor(f"D{i:02d}", Icon=BIG[: 2 * 1024 * 1024]) for i in range(3)])
        _, token = channel_issue_token(code="JKMZWX", name="微信公众号")
        client = Client(HTTP_AUTHORIZATION=f"Token {token}")
        paths = (
            "/api/v1/hospitals/",
            f"/api/v1/hospitals/{hospital.hospital_no}/departments/",
            f"/api/v1/doctors/?hospital={hospital.hospital_no}&department=K01",
            f"/api/v1/schedules/?hospital={hospital.hospital_no}",
        )
        for path in paths:
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path)
            assert response.status_code == 200, (path, response.content[:200])
            assert len(response.content) < 10_000, path
            for query in captured.captured_queries:
                assert "hospitalimage" not in query["sql"] and "doctoricon" not in query["sql"], (path, query["sql"])
