"""ReconciliationInfo (2.5) on /ws/center through a zeep client generated from the WSDL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Q, Sum
from lxml import etree

from booking.models import LedgerEntry
from regional.models import MessageLog
from tests.base import local as at
from tests.base import spec_example
from tests.factories import pay, refund

NAME = "成都市龙泉驿区中医医院"


def results(text: str) -> tuple[dict, list[dict]]:
    root = etree.fromstring(text.encode())
    head = {child.tag: (child.text or "") for child in root if child.tag != "List"}
    records = [{f.tag: (f.text or "") for f in r} for r in root.iterfind("List/Result")]
    return head, records


def request(tx: str, hos_org_code: str = "H0001", **replace: str) -> str:
    """The specification's example, filled in; its layout (`</HosOrgCode >` included) kept."""
    xml = spec_example("center.ReconciliationInfo.request.xml")
    xml = xml.replace("<TransactionId></TransactionId>", f"<TransactionId>{tx}</TransactionId>")
    xml = xml.replace("<HosOrgCode></HosOrgCode >", f"<HosOrgCode>{hos_org_code}</HosOrgCode >")
    for old, new in replace.items():
        xml = xml.replace(old, new)
    return xml


@pytest.fixture
def ledger(make_hospital):
    """The spec's response example as a ledger (paid 2018-01-10, refunded on the 16th), and more."""
    hospital = make_hospital("H0001", name=NAME)
    other = make_hospital("H0002", name="测试第二医院")
    jan = {d: dt.date(2018, 1, d) for d in (10, 15, 16, 17, 18)}
    example = pay(
        hospital, day=jan[10], batch="4200000061123456112030797890", trade_no="WD20180111111111111",
        amount="6.00", name="张三", when=at(jan[10], 16, 51, 58),
    )  # fmt: skip
    refund(example, when=at(jan[16], 9, 30))
    partial = pay(hospital, day=jan[16], amount="25.00", name="李四", pay_channel="alipay", type="2")
    refund(partial, when=at(jan[17], 10), amount="5.50")
    refund(partial, when=at(jan[18], 10), amount="4.00")  # after the range: not in its figures
    pay(hospital, day=jan[17], amount="12.50", name="王五", when=at(jan[17], 23, 59, 59))
    pay(hospital, day=jan[15], amount="8.00", name="赵六")  # before the range, untouched in it
    pay(hospital, day=jan[18], amount="8.00", name="钱七", when=at(jan[18], 0, 0, 0))  # after it
    pay(other, day=jan[16], amount="99.00", name="孙八", batch="OTHER-HOSPITAL-0001")
    return hospital


@pytest.mark.django_db(transaction=True)
class ReconciliationInfoTests:
    def test_the_specifications_example_answers_from_the_ledger_to_the_cent(self, ledger, center_client):
        head, records = results(center_client().service.ReconciliationInfo(request("H0001-R-0001")))

        assert head == {"ResultCode": "0", "ErrorMsg": ""}
        # The first record is the specification's response example, field for field.
        _, expected = results(spec_example("center.ReconciliationInfo.response.xml"))
        assert records[0] == {k: v.strip() for k, v in expected[0].items()}
        assert [r["PatientName"] for r in records] == ["张三", "李四", "王五"]
        partial = records[1]
        assert partial["Type"] == "2" and partial["HosOrgName"] == NAME
        assert (partial["PayAmount"], partial["RefundAmount"], partial["Total"]) == ("25.00", "5.50", "19.50")
        assert records[2]["AddTime"] == "2018-01-17 23:59:59"
        # Every figure is the ledger's, to the cent.
        end = at(dt.date(2018, 1, 18), 0)
        for record in records:
            entries = LedgerEntry.objects.filter(batch=record["Batch"], created_at__lt=end)
            sums = entries.aggregate(
                paid=Sum("amount", filter=Q(kind="payment")), refunded=Sum("amount", filter=Q(kind="refund"))
            )
            paid, refunded = sums["paid"] or Decimal("0.00"), sums["refunded"] or Decimal("0.00")
            assert Decimal(record["PayAmount"]) == paid and Decimal(record["RefundAmount"]) == refunded
            assert Decimal(record["Total"]) == paid - refunded
            assert record["PayTradeNo"] == entries.first().pay_trade_no
        log = MessageLog.objects.get(interface="ReconciliationInfo")
        assert log.ok and "张*" in log.response_text and "张三" not in log.response_text

    def test_the_replayable_answer_is_stored_encrypted_and_still_replays(self, ledger, center_client, postgres):
        # Issue 14 item 11: the stored answer was the only plaintext patient name in a pg_dump.
        import subprocess

        from django.db import connection

        from regional.models import InboundTransaction
        from tests.services import find_binary

        first = center_client().service.ReconciliationInfo(request("H0001-R-ENC"))
        assert "王五" in first
        db = connection.settings_dict
        dump = subprocess.run(
            [find_binary("pg_dump"), "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], "--data-only", db["NAME"]],
            capture_output=True, check=True, timeout=120,
        ).stdout.decode("utf-8", "replace")  # fmt: skip
        assert "H0001-R-ENC" in dump  # the row is in the dump
        assert "王五" not in dump and "张三" not in dump  # the masked message log keeps 王* only
        assert InboundTransaction.objects.get(transaction_id="H0001-R-ENC").response_text == first
        assert center_client().service.ReconciliationInfo(request("H0001-R-ENC")) == first  # a replay

    def test_batches_are_answered_for_the_calling_hospital_only(self, ledger, center_client):
        xml = request(
            "H0001-R-0002",
            **{"<Batch></Batch>": "<Batch>4200000061123456112030797890，OTHER-HOSPITAL-0001, NOPE</Batch>"},
        )
        head, records = results(center_client().service.ReconciliationInfo(xml))
        assert head["ResultCode"] == "0"
        assert [(r["Batch"], r["Total"]) for r in records] == [("4200000061123456112030797890", "0.00")]

    def test_another_hospitals_code_is_refused(self, ledger, center_client):
        head, records = results(center_client().service.ReconciliationInfo(request("H0001-R-0003", "H0002")))
        assert head["ResultCode"] == "1" and records == []

    def test_a_query_without_batch_or_dates_or_over_too_long_a_range_is_an_error(self, ledger, center_client):
        no_dates = request(
            "H0001-R-0004",
            **{"<StartDate>2018-01-16</StartDate>": "<StartDate></StartDate>", "<EndDate>2018-01-17</EndDate>": ""},
        )
        head, _ = results(center_client().service.ReconciliationInfo(no_dates))
        assert head["ResultCode"] == "1" and "应填写Batch" in head["ErrorMsg"]
        too_long = request("H0001-R-0005", **{"<StartDate>2018-01-16</StartDate>": "<StartDate>2017-01-16</StartDate>"})
        head, _ = results(center_client().service.ReconciliationInfo(too_long))
        assert head["ResultCode"] == "1" and "不能超过31天" in head["ErrorMsg"]
