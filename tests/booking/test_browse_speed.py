"""The browse path's shortcuts keep their answers: the channel behind a token kept per process (and
forgotten at once when a channel changes, in this process or another), and schedule pages run from
SQL compiled once per combination of filters."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from booking import selectors
from booking.api import channel_cache
from booking.api.serializers import ScheduleOut
from booking.api.views import SchedulePagination
from booking.models import Channel, Schedule
from booking.services.channels import channel_issue_token
from regional.models import Doctor
from tests.base import apply, record

TOMORROW = timezone.localdate() + dt.timedelta(days=1)


@pytest.fixture
def region(hospital):
    """H0001 with two doctors' sessions, tomorrow and the day after."""
    apply(
        hospital,
        [
            record(1),
            record(2, DoctorId="D02", DoctorName="李时珍", DepartmentId="K02", DepartmentName="儿科"),
            record(3, WorkDate=(TOMORROW + dt.timedelta(days=1)).isoformat()),
            record(4, DoctorId="D02", DoctorName="李时珍", DepartmentId="K02", DepartmentName="儿科"),
        ],
    )
    return hospital


def browse(client, token: str, path: str = "/api/v1/hospitals/", **params):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Token {token}")


def channel_queries(captured) -> int:
    return sum('"booking_channel"' in q["sql"] for q in captured.captured_queries)


@pytest.mark.django_db
class ChannelTokenCacheTests:
    def test_a_known_token_is_looked_up_once_per_process(self, client, region):
        _, token = channel_issue_token(code="JKMZWX", name="微信")
        with CaptureQueriesContext(connection) as first:
            assert browse(client, token).status_code == 200
        with CaptureQueriesContext(connection) as second:
            assert browse(client, token).status_code == 200
        assert (channel_queries(first), channel_queries(second)) == (1, 0)

    def test_a_reissued_token_stops_at_the_next_request(self, client, region):
        _, old = channel_issue_token(code="JKMZWX", name="微信")
        assert browse(client, old).status_code == 200
        _, new = channel_issue_token(code="JKMZWX")
        assert browse(client, old).status_code == 401
        assert browse(client, new).status_code == 200

    def test_a_channel_switched_off_is_refused_at_the_next_request(self, client, region):
        channel, token = channel_issue_token(code="JKMZWX", name="微信")
        assert browse(client, token).status_code == 200
        channel.is_active = False
        channel.save(update_fields=["is_active"])
        assert browse(client, token).status_code == 401

    def test_a_change_committed_by_another_process_stops_the_token_here(self, client, region):
        channel, token = channel_issue_token(code="JKMZWX", name="微信")
        assert browse(client, token).status_code == 200
        # Another worker switches the channel off: the row changes (no signal runs in this process)
        # and that worker's commit moves the shared generation.
        Channel.objects.filter(pk=channel.pk).update(is_active=False)
        assert browse(client, token).status_code == 200  # this process still holds the channel
        cache.set(channel_cache.GENERATION_KEY, "set-by-another-worker", timeout=None)
        assert browse(client, token).status_code == 401

    def test_when_the_generation_cannot_be_read_every_request_asks_the_database(self, client, region, monkeypatch):
        _, token = channel_issue_token(code="JKMZWX", name="微信")
        # Injected fault: the shared cache answers nothing (as the resilient Redis cache does while Redis is away).
        monkeypatch.setattr(channel_cache.cache, "get", lambda *args, **kwargs: None)
        for _ in range(2):
            with CaptureQueriesContext(connection) as captured:
                assert browse(client, token).status_code == 200
            assert channel_queries(captured) == 1

    def test_a_wrong_token_is_never_kept(self, client, region):
        for _ in range(3):
            assert browse(client, "not-a-token").status_code == 401
        assert channel_cache._entries == {}


@pytest.mark.django_db
class CompiledSchedulePageTests:
    FILTERS = {"hospital_no": "H0001", "department_id": "K02", "doctor_id": "D02", "date": TOMORROW.isoformat()}

    def test_every_combination_of_filters_gives_the_rows_of_the_orm(self, region):
        ordering = SchedulePagination.ordering
        for n in range(len(self.FILTERS) + 1):
            for names in itertools.combinations(self.FILTERS, n):
                filters = {name: self.FILTERS[name] for name in names}
                expected = list(selectors.schedules(**filters).values(*ScheduleOut.COLUMNS).order_by(*ordering)[0:51])
                for _ in range(2):  # compiled on the first call, bound on the second
                    rows = selectors.schedule_rows(columns=ScheduleOut.COLUMNS, **filters)
                    assert list(rows.order_by(*ordering)[0:51]) == expected, filters
                assert expected or "date" in filters, filters  # the data covers the combinations
        compiled = [sql for shape, sql in selectors.CompiledValues._compiled.items() if shape[1][0] == "schedules"]
        assert len(compiled) >= 16 and None not in compiled  # every combination ran from compiled SQL

    def test_a_cursor_position_and_offset_are_bound_like_any_value(self, region):
        day_after = (TOMORROW + dt.timedelta(days=1)).isoformat()
        rows = selectors.schedule_rows(columns=ScheduleOut.COLUMNS, hospital_no="H0001").order_by("work_date", "id")
        assert [r["work_id"] for r in rows.filter(work_date__gt=TOMORROW.isoformat())[0:10]] == ["W00003"]
        assert [r["work_id"] for r in rows.filter(work_date__lt=day_after)[1:3]] == ["W00002", "W00004"]

    def test_the_pages_of_the_api_follow_one_another(self, client, region):
        _, token = channel_issue_token(code="JKMZWX", name="微信")
        seen, path = [], "/api/v1/schedules/?hospital=H0001&page_size=1"
        while path:
            body = browse(client, token, path).json()
            seen += [s["work_id"] for s in body["results"]]
            path = (body["next"] or "").replace("http://testserver", "")
        assert seen == ["W00001", "W00002", "W00004", "W00003"]

    def test_a_lookup_that_rewrites_its_value_is_left_to_the_orm(self, region):
        rows = selectors.CompiledValues(
            ("doctors-by-name",),
            lambda q: Doctor.objects.filter(name__contains=q).values("doctor_id", "name"),
            {"q": "时珍"},
            model=Doctor,
        )
        assert list(rows.order_by("doctor_id")[0:10]) == [{"doctor_id": "D02", "name": "李时珍"}]
        assert list(rows.order_by("doctor_id")[0:10]) == [{"doctor_id": "D02", "name": "李时珍"}]

    def test_a_stopped_session_is_offered_and_a_withdrawn_one_is_not(self, region):
        Schedule.objects.filter(work_id="W00002").update(status=Schedule.STOPPED)
        Schedule.objects.filter(work_id="W00004").update(status=Schedule.WITHDRAWN)
        rows = selectors.schedule_rows(columns=ScheduleOut.COLUMNS, hospital_no="H0001", date=TOMORROW.isoformat())
        assert [(r["work_id"], r["status"]) for r in rows.order_by("work_date", "start_time", "id")[0:51]] == [
            ("W00001", "normal"), ("W00002", "stopped"),
        ]  # fmt: skip
