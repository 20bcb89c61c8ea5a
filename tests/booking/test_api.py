"""The channels' REST API: authentication, the one error shape, browsing with pagination and
filters, the OpenAPI schema, the rate limit, and the live reads from the hospital over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from booking.models import Channel, Schedule
from booking.services.channels import channel_issue_token
from regional.models import Hospital
from sandbox import services as sandbox
from sandbox.models import SandboxHospital, SandboxSchedule
from tests.base import apply, patient, record
from tests.factories import DepartmentFactory, DoctorFactory, ScheduleFactory

TOMORROW = timezone.localdate() + dt.timedelta(days=1)


@pytest.fixture
def token(db) -> str:
    return channel_issue_token(code="JKMZWX", name="微信公众号")[1]


@pytest.fixture
def rest(client, token):
    """Django's test client speaking to the API as the channel."""

    class Rest:
        def get(self, path, params=None, **headers):
            return client.get(path, params or {}, HTTP_AUTHORIZATION=f"Token {token}", **headers)

        def post(self, path, data=None, **headers):
            return client.post(
                path, data or {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}", **headers
            )

    return Rest()


@pytest.fixture
def region(hospital):
    """H0001 with two doctors' sessions (张三丰 心血管内科, 李时珍 儿科), tomorrow and the day after."""
    hospital.degree_name = "三级甲等"
    hospital.address = "演示市测试路3号"
    hospital.save()
    apply(
        hospital,
        [
            record(1),
            record(2, DoctorId="D02", DoctorName="李时珍", DepartmentId="K02", DepartmentName="儿科"),
            record(3, WorkDate=(TOMORROW + dt.timedelta(days=1)).isoformat()),
        ],
    )
    return hospital


@pytest.mark.django_db
class AuthenticationTests:
    def test_without_a_token_the_answer_is_401_in_chinese(self, client, region):
        response = client.get("/api/v1/hospitals/")
        assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
        assert response.json() == {
            "code": "not_authenticated",
            "message": "未提供渠道令牌（Authorization: Token <令牌>）",
        }

    def test_a_wrong_token_is_refused(self, client, region):
        response = client.get("/api/v1/hospitals/", HTTP_AUTHORIZATION="Token not-a-token")
        assert response.status_code == 401 and response.json()["code"] == "authentication_failed"
        assert "令牌无效" in response.json()["message"]

    def test_a_switched_off_channel_is_refused(self, rest, region):
        Channel.objects.update(is_active=False)
        assert rest.get("/api/v1/hospitals/").status_code == 401

    def test_a_reissued_token_replaces_the_old_one(self, client, token, region):
        channel_issue_token(code="JKMZWX")
        assert client.get("/api/v1/hospitals/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401

    def test_each_channel_is_rate_limited_with_429(self, rest, region, settings):
        settings.RATE_LIMIT_CHANNEL_PER_MINUTE = 3
        codes = [rest.get("/api/v1/hospitals/").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = rest.get("/api/v1/hospitals/")
        assert limited.json()["code"] == "rate_limited" and "请求过于频繁" in limited.json()["message"]
        assert int(limited["Retry-After"]) > 0


@pytest.mark.django_db
class BrowsingTests:
    def test_hospitals_are_listed_with_number_name_level_and_address(self, rest, region):
        Hospital.objects.create(hospital_no="H0002", name="已撤销医院", is_deleted=True)
        body = rest.get("/api/v1/hospitals/").json()
        assert "count" not in body and body["next"] is None  # one pagination style: cursors
        assert body["results"] == [
            {"hospital_no": "H0001", "name": "测试第一医院", "short_name": "", "level": 3, "degree_name": "三级甲等",
             "address": "演示市测试路3号", "phone": ""}
        ]  # fmt: skip

    def test_departments_of_a_hospital(self, rest, region):
        names = [d["name"] for d in rest.get("/api/v1/hospitals/H0001/departments/").json()["results"]]
        assert sorted(names) == ["儿科", "心血管内科"]
        missing = rest.get("/api/v1/hospitals/NOPE/departments/")
        assert missing.status_code == 404 and missing.json() == {"code": "not_found", "message": "医院NOPE不存在"}

    def test_doctors_by_name_or_pinyin_initials(self, rest, region):
        by_abbr = rest.get("/api/v1/doctors/", {"q": "lsz"}).json()["results"]
        assert [d["name"] for d in by_abbr] == ["李时珍"] and by_abbr[0]["department_name"] == "儿科"
        by_name = rest.get("/api/v1/doctors/", {"q": "三丰", "hospital": "H0001"}).json()["results"]
        assert [d["doctor_id"] for d in by_name] == ["D01"]
        by_department = rest.get("/api/v1/doctors/", {"hospital": "H0001", "department": "K02"}).json()["results"]
        assert [d["name"] for d in by_department] == ["李时珍"]

    def test_schedules_filter_by_hospital_department_doctor_and_date(self, rest, region):
        all_ = rest.get("/api/v1/schedules/", {"hospital": "H0001"}).json()["results"]
        assert [s["work_id"] for s in all_] == ["W00001", "W00002", "W00003"]
        one = all_[0]
        assert (one["remaining"], one["total"], one["price"], one["status"]) == (18, 20, "25.50", "normal")
        assert one["doctor_name"] == "张三丰" and one["time_label"] == "上午"
        dated = rest.get("/api/v1/schedules/", {"date": TOMORROW.isoformat(), "doctor": "D01"}).json()["results"]
        assert [s["work_id"] for s in dated] == ["W00001"]
        by_department = rest.get("/api/v1/schedules/", {"department": "K02"}).json()["results"]
        assert [s["work_id"] for s in by_department] == ["W00002"]
        bad = rest.get("/api/v1/schedules/", {"date": "明天"})
        assert bad.status_code == 400 and bad.json()["errors"] == {"date": ["格式应为yyyy-mm-dd"]}

    def test_a_browse_row_is_what_the_declared_fields_render(self, rest, region):
        # The page is rendered from `.values()` rows for speed; it must say what DRF's fields would.
        from rest_framework import serializers

        from booking.api.serializers import ScheduleOut

        Schedule.objects.filter(work_id="W00002").update(status=Schedule.STOPPED, stop_reason="医生出差")
        page = rest.get("/api/v1/schedules/", {"hospital": "H0001"}).json()["results"]
        for row in page:
            schedule = Schedule.objects.get(pk=row["id"])
            assert row == serializers.ModelSerializer.to_representation(ScheduleOut(), schedule)
            assert ScheduleOut(schedule).data == row
        assert page[1]["status_label"] == "停诊"

    def test_a_department_id_shared_by_two_hospitals_stays_with_its_hospital(self, rest, region):
        other = Hospital.objects.create(hospital_no="H0009", name="另一医院")
        theirs = Schedule.objects.get(work_id="W00002")
        department = DepartmentFactory(hospital=other, department_id=theirs.department.department_id)
        ScheduleFactory(
            hospital=other, work_id="X00001", work_date=theirs.work_date, department=department,
            department_code=department.department_id, doctor=DoctorFactory(hospital=other),
        )  # fmt: skip
        query = {"department": department.department_id, "date": theirs.work_date.isoformat()}
        assert [
            s["work_id"] for s in rest.get("/api/v1/schedules/", {**query, "hospital": "H0001"}).json()["results"]
        ] == ["W00002"]
        assert [
            s["work_id"] for s in rest.get("/api/v1/schedules/", {**query, "hospital": "H0009"}).json()["results"]
        ] == ["X00001"]

    def test_schedule_pages_are_cursors_without_a_count(self, rest, region):
        first = rest.get("/api/v1/schedules/", {"page_size": 2}).json()
        assert "count" not in first and len(first["results"]) == 2 and first["next"]
        second = rest.get(first["next"].replace("http://testserver", "")).json()
        assert [s["work_id"] for s in second["results"]] == ["W00003"] and second["next"] is None

    def test_past_and_retired_schedules_are_not_offered(self, rest, region):
        Schedule.objects.filter(work_id="W00002").update(status=Schedule.WITHDRAWN)
        Schedule.objects.filter(work_id="W00003").update(work_date=timezone.localdate() - dt.timedelta(days=1))
        assert [s["work_id"] for s in rest.get("/api/v1/schedules/").json()["results"]] == ["W00001"]


@pytest.mark.django_db
class ErrorShapeTests:
    def test_a_body_that_is_not_json_is_a_400_in_chinese(self, client, token, region):
        response = client.post(
            "/api/v1/orders/", "{not json", content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
        )
        assert response.status_code == 400 and response.json()["code"] == "parse_error"

    def test_missing_fields_are_listed(self, rest, region):
        response = rest.post("/api/v1/orders/", {"hospital_no": "H0001"})
        assert response.status_code == 400 and response.json()["code"] == "invalid_request"
        assert {"work_id", "patient"} <= set(response.json()["errors"])
        assert "该字段是必填项" in str(response.json()["errors"])

    def test_an_unknown_order_is_404(self, rest, region):
        response = rest.get("/api/v1/orders/YY000")
        assert response.status_code == 404 and response.json()["code"] == "order_not_found"

    def test_listing_orders_needs_the_patients_id_number(self, rest, region):
        response = rest.get("/api/v1/orders/")
        assert response.status_code == 400 and "id_card" in response.json()["errors"]

    def test_a_wrong_method_is_405(self, rest, region):
        response = rest.post("/api/v1/hospitals/")
        assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


@pytest.mark.django_db
class SchemaTests:
    def test_the_openapi_schema_documents_every_route_and_the_token(self, client):
        schema = client.get("/api/schema/", {"format": "json"}).json()
        paths = set(schema["paths"])
        assert {
            "/api/v1/hospitals/", "/api/v1/hospitals/{hospital_no}/departments/", "/api/v1/doctors/",
            "/api/v1/schedules/", "/api/v1/schedules/{schedule_id}/", "/api/v1/schedules/{schedule_id}/slots/",
            "/api/v1/schedules/{schedule_id}/queue/", "/api/v1/cards/check/", "/api/v1/cards/", "/api/v1/orders/",
            "/api/v1/orders/{order_no}", "/api/v1/orders/{order_no}/pay", "/api/v1/orders/{order_no}/cancel",
        } <= {p for p in paths} | {p.rstrip("/") for p in paths}  # fmt: skip
        assert schema["components"]["securitySchemes"]["ChannelToken"]["in"] == "header"
        post = schema["paths"]["/api/v1/orders/"]["post"]
        assert {"201", "409", "503"} <= set(post["responses"])
        assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])

    def test_the_docs_page_is_served(self, client):
        assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db(transaction=True)
class LiveReadTests:
    """Reads that go to the hospital (the sandbox over HTTP)."""

    def test_the_remaining_count_is_refreshed_from_the_hospital(self, api, bookable):
        his_schedule, schedule = bookable(slots=6)
        SandboxSchedule.objects.filter(pk=his_schedule.pk).update(remaining=4)  # booked at the hospital's desk
        body = api.get(f"/api/v1/schedules/{schedule.pk}/").json()
        assert body["live"] is True and body["schedule"]["remaining"] == 4
        schedule.refresh_from_db()
        assert schedule.remaining == 4

    def test_an_unreachable_hospital_leaves_the_stored_count(self, api, bookable, his):
        _, schedule = bookable(slots=6)
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500)
        body = api.get(f"/api/v1/schedules/{schedule.pk}/").json()
        assert body["live"] is False and body["schedule"]["remaining"] == 6

    def test_slots_are_cached_briefly(self, api, bookable, his):
        _, schedule = bookable(slots=3)
        first = api.get(f"/api/v1/schedules/{schedule.pk}/slots/").json()["slots"]
        assert [s["status"] for s in first] == ["1", "1", "1"]
        api.lock(schedule, 1)
        cached = api.get(f"/api/v1/schedules/{schedule.pk}/slots/").json()["slots"]
        assert [s["status"] for s in cached] == ["1", "1", "1"]
        from django.core.cache import cache

        cache.delete(f"booking:slots:{schedule.pk}")  # the cache time passes
        fresh = api.get(f"/api/v1/schedules/{schedule.pk}/slots/").json()["slots"]
        assert [s["status"] for s in fresh] == ["4", "1", "1"] and fresh[0]["status_label"] == "已锁号"

    def test_slots_of_a_hospital_that_is_down_are_a_503(self, api, bookable, his):
        _, schedule = bookable()
        sandbox.hospital_fault_set(hospital=his, mode=SandboxHospital.FAULT_HTTP500)
        response = api.get(f"/api/v1/schedules/{schedule.pk}/slots/")
        assert response.status_code == 503 and response.json()["code"] == "hospital_unavailable"
        assert "查询分时段号源失败" in response.json()["message"]

    def test_the_queue_is_live(self, api, bookable):
        _, schedule = bookable(slots=3)
        api.lock(schedule, 1)
        queue = api.get(f"/api/v1/schedules/{schedule.pk}/queue/").json()
        assert queue == {"seen": 0, "remaining": 2, "waiting": 1, "current_number": "0", "registered": 1,
                         "not_checked_in": 1, "checked_in_waiting": 0}  # fmt: skip

    def test_cards_are_listed_registered_and_checked_with_the_hospitals_phone_masked(self, api, his):
        who = patient(9)
        listed = api.post("/api/v1/cards/", {"hospital_no": "S001", "id_card": who["id_card"], "name": who["name"],
                                             "phone": who["phone"]})  # fmt: skip
        card = listed.json()["cards"][0]
        assert card["card_no"].startswith("JZK") and card["phone"] == "134****0009"
        again = api.post("/api/v1/cards/", {"hospital_no": "S001", "id_card": who["id_card"]}).json()["cards"]
        assert [c["card_no"] for c in again] == [card["card_no"]]
        check = {"hospital_no": "S001", "card_no": card["card_no"], "id_card": who["id_card"], "name": who["name"]}
        assert api.post("/api/v1/cards/check/", check).json() == {
            "valid": True, "reason": "", "name": who["name"], "phone": "134****0009"
        }  # fmt: skip
        wrong = api.post("/api/v1/cards/check/", {**check, "name": "别人"}).json()
        assert wrong["valid"] is False and "姓名" in wrong["reason"]

    def test_card_calls_refuse_a_malformed_id_number_before_asking_the_hospital(self, api, his):
        listed = api.post("/api/v1/cards/", {"hospital_no": "S001", "id_card": "3306XXXXXXXXXX0009", "name": "测试"})
        assert listed.status_code == 400 and listed.json()["errors"]["id_card"][0].startswith("格式不正确")
        check = {"hospital_no": "S001", "card_no": "JZK1", "id_card": "3306XXXXXXXXXX0009", "name": "测试"}
        checked = api.post("/api/v1/cards/check/", check)
        assert checked.status_code == 400 and checked.json()["code"] == "invalid_request"
        orders = api.post("/api/v1/orders/search/", {"id_card": "12345"})
        assert orders.status_code == 400 and orders.json()["errors"]["id_card"][0].startswith("格式不正确")

    def test_a_patient_unknown_to_the_hospital_needs_a_name_to_register(self, api, his):
        response = api.post("/api/v1/cards/", {"hospital_no": "S001", "id_card": patient(8)["id_card"]})
        assert response.status_code == 409 and response.json()["code"] == "hospital_refused"
        assert "UserName" in response.json()["message"]
