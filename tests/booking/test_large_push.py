"""A large synchronizedWorkInfo over HTTP through a zeep client: every record applied, broken records
named by their index, and the message log keeping a masked head of it."""

from __future__ import annotations

import pytest

from booking.models import Schedule
from regional.models import InboundTransaction, MessageLog
from tests.base import record, sync_message
from tests.base import reply_fields as answer

RECORDS = 3000


def records(count: int, **overrides) -> list[dict]:
    return [record(n, DoctorId=f"D{n % 30:02d}", DepartmentId=f"K{n % 7}", **overrides) for n in range(1, count + 1)]


@pytest.mark.django_db(transaction=True)
class LargePushTests:
    def test_every_record_of_a_large_push_is_applied_and_its_log_keeps_a_masked_head(self, hospital, center_client):
        result = answer(center_client().service.synchronizedWorkInfo(sync_message(records(RECORDS), tx="big-1")))
        assert result == {"ResultCode": "0", "ErrorMsg": "", "Count": str(RECORDS), "HospitalNo": "H0001"}
        assert Schedule.objects.filter(hospital=hospital).count() == RECORDS
        last = Schedule.objects.select_related("doctor", "department").get(work_id=f"W{RECORDS:05d}")
        assert (last.doctor.doctor_id, last.department.department_id, last.remaining) == ("D00", "K4", 18)
        log = MessageLog.objects.get(interface="synchronizedWorkInfo", transaction_id="big-1")
        assert log.ok and log.request_text.startswith("<Request><TransactionId>big-1</TransactionId>")
        assert f"<WorkInfo>的{RECORDS}项中记录了前" in log.request_text
        assert InboundTransaction.objects.filter(transaction_id="big-1").exists()

    def test_broken_records_of_a_large_push_are_named_by_their_index_and_nothing_is_applied(
        self, hospital, center_client
    ):
        sent = records(RECORDS)
        sent[0]["WorkDate"] = "2026-13-01"
        sent[RECORDS - 2]["RegistrationNumber"] = "25"  # more than the 20 in total
        result = answer(center_client().service.synchronizedWorkInfo(sync_message(sent, tx="big-2")))
        assert result["ResultCode"] == "1"
        assert result["ErrorMsg"] == "WorkInfo/Record[1]/WorkDate 格式应为yyyy-mm-dd"
        sent[0]["WorkDate"] = sent[1]["WorkDate"]
        result = answer(center_client().service.synchronizedWorkInfo(sync_message(sent, tx="big-3")))
        assert result["ErrorMsg"] == f"WorkInfo/Record[{RECORDS - 1}]/RegistrationNumber 剩余号源数25大于号源总数20"
        assert not Schedule.objects.filter(hospital=hospital).exists()
