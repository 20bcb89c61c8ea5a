"""Two-way reconciliation on PostgreSQL with real bill files from the sandbox channel: a clean day,
each kind of difference, re-runs, a day without a bill, and bad files."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from reconciliation import selectors, services
from reconciliation.models import Discrepancy, ReconciliationRun, Statement, StatementLine
from reconciliation.statements import StatementFileError
from regional.errors import Conflict, DomainError
from regional.models import AuditEntry
from sandbox import payments as sandbox
from tests.base import bill, import_bill, yesterday
from tests.base import local as at
from tests.factories import pay, refund, source

T = Discrepancy.Type
Run = ReconciliationRun


def a_day_of_payments(hospital, day, pay_channel="wepay", n=20):
    """n payments, one refunded the same day, one refunded in part, one refunded in two parts."""
    payments = [pay(hospital, day=day, pay_channel=pay_channel, amount=f"{10 + i}.50") for i in range(n)]
    refund(payments[3], when=at(day, 20))
    refund(payments[4], when=at(day, 20, 5), amount="5.00")
    refund(payments[5], when=at(day, 20, 10), amount="1.00")
    refund(payments[5], when=at(day, 20, 15), amount="2.00")
    return payments


def reconcile(day, **kw) -> ReconciliationRun:
    return services.reconciliation_run(date_from=day, date_to=day, **kw)


def found(run: ReconciliationRun) -> set[tuple[str, str]]:
    return set(Discrepancy.objects.filter(run=run).values_list("batch", "type"))


@pytest.mark.django_db
class CleanDayTests:
    @pytest.mark.parametrize(
        "pay_channel,encoding", [("wepay", "utf-8"), ("wepay", "gbk"), ("alipay", "gbk"), ("alipay", "utf-8-sig")]
    )
    def test_a_clean_day_balances_to_the_cent(self, hospital, pay_channel, encoding):
        day = yesterday()
        a_day_of_payments(hospital, day, pay_channel)
        import_bill(pay_channel, day, encoding=encoding)
        statement = Statement.objects.get()
        assert statement.encoding == {"utf-8": "UTF-8", "gbk": "GBK", "utf-8-sig": "UTF-8（带BOM）"}[encoding]
        assert StatementLine.objects.filter(hospital=hospital).count() == 24

        run = reconcile(day, pay_channel=pay_channel)

        assert (run.status, run.result) == (Run.Status.DONE, Run.Result.BALANCED)
        assert run.discrepancy_count == 0 and run.matched_count == 20
        assert run.ledger_payment_count == run.statement_payment_count == 20
        assert run.ledger_payment_total == run.statement_payment_total == Decimal("400.00")
        assert run.ledger_refund_count == run.statement_refund_count == 4
        assert run.ledger_refund_total == run.statement_refund_total == Decimal("21.50")
        assert AuditEntry.objects.filter(model="reconciliation.ReconciliationRun", action="对账完成").exists()

    def test_a_day_without_a_bill_is_incomplete_rather_than_all_missing(self, hospital):
        day = yesterday()
        a_day_of_payments(hospital, day, "alipay", n=6)
        run = reconcile(day)
        assert run.result == Run.Result.INCOMPLETE and run.discrepancy_count == 0
        assert run.missing_statements == f"支付宝{day:%Y-%m-%d}"
        assert run.ledger_payment_count == 6 and run.statement_payment_count == 0
        assert "缺少对账单" in run.note


@pytest.mark.django_db
class DifferenceTests:
    @pytest.mark.parametrize("pay_channel,encoding", [("wepay", "gbk"), ("alipay", "utf-8")])
    def test_each_kind_of_difference_is_found_with_its_amounts(self, hospital, pay_channel, encoding):
        day = yesterday()
        a_day_of_payments(hospital, day, pay_channel)
        manifest = import_bill(
            pay_channel, day, encoding=encoding, missing_payment=1, extra_payment=1, amount_mismatch=1,
            refund_channel_only=1, refund_platform_only=1,
        )  # fmt: skip
        run = reconcile(day)
        assert run.result == Run.Result.DISCREPANCIES and run.discrepancy_count == 5
        assert found(run) == {
            (manifest.missing_payment[0], T.PLATFORM_ONLY),
            (manifest.extra_payment[0], T.CHANNEL_ONLY),
            (manifest.amount_mismatch[0], T.AMOUNT_MISMATCH),
            (manifest.refund_channel_only[0], T.REFUND_CHANNEL_ONLY),
            (manifest.refund_platform_only[0], T.REFUND_PLATFORM_ONLY),
        }
        by_type = {d.type: d for d in Discrepancy.objects.filter(run=run)}
        mismatch = by_type[T.AMOUNT_MISMATCH]
        assert mismatch.statement_amount - mismatch.ledger_amount == Decimal("1.00")
        assert mismatch.difference == Decimal("-1.00") and mismatch.entry_kind == "payment"
        extra = by_type[T.CHANNEL_ONLY]
        assert extra.ledger_amount is None and extra.statement_amount == Decimal("9.99")
        assert extra.hospital == hospital  # attributed through the hospital code in 商户数据包/备注
        assert by_type[T.REFUND_PLATFORM_ONLY].entry_kind == "refund"
        assert all(d.status == Discrepancy.Status.OPEN and d.day == day for d in by_type.values())
        assert run.statement_payment_total - run.ledger_payment_total == Decimal("9.99") + Decimal("1.00") - (
            by_type[T.PLATFORM_ONLY].ledger_amount
        )

    def test_a_payment_billed_after_midnight_is_a_cross_day_difference(self, hospital):
        first, second = yesterday() - dt.timedelta(days=1), yesterday()
        late = pay(hospital, day=first, when=at(first, 23, 59, 59))
        pay(hospital, day=first)
        # The channel's clock saw the late payment after midnight: it is on the next day's bill.
        out = io.BytesIO()
        moved = sandbox.BillEntry(late.batch, late.pay_trade_no, "payment", late.amount, at(second, 0, 0, 2), "H0001")
        sandbox.write_bill(layout="wechat", bill_date=second, entries=[moved], out=out)
        out.seek(0)
        services.statement_import(source=source("wepay"), bill_date=second, file=out)
        # Re-bill the first day without the late payment.
        early = [e for e in selectors.ledger_bill_entries(pay_channel="wepay", day=first) if e.batch != late.batch]
        out = io.BytesIO()
        sandbox.write_bill(layout="wechat", bill_date=first, entries=early, out=out)
        out.seek(0)
        services.statement_import(source=source("wepay"), bill_date=first, file=out)

        run = services.reconciliation_run(date_from=first, date_to=second)

        rows = Discrepancy.objects.filter(run=run).order_by("day")
        assert [(d.day, d.batch, d.type) for d in rows] == [
            (first, late.batch, T.CROSS_DAY),
            (second, late.batch, T.CROSS_DAY),
        ]
        assert rows[0].detail == f"对账单在{second:%Y-%m-%d}记有此笔支付（{late.amount}元）"
        assert rows[1].detail == f"平台流水在{first:%Y-%m-%d}记有此笔支付（{late.amount}元）"


@pytest.mark.django_db
class RerunTests:
    def test_a_rerun_replaces_open_differences_and_keeps_resolved_ones(self, hospital, admin_user):
        day = yesterday()
        a_day_of_payments(hospital, day)
        manifest = import_bill(
            "wepay", day, missing_payment=1, extra_payment=1, amount_mismatch=1, refund_platform_only=1
        )
        first = reconcile(day)
        assert first.discrepancy_count == 4
        explained = Discrepancy.objects.get(type=T.CHANNEL_ONLY)
        corrected = Discrepancy.objects.get(type=T.PLATFORM_ONLY)
        services.discrepancy_resolve(
            discrepancy=explained, status="explained", reason="渠道测试交易，非平台订单", user=admin_user
        )
        services.discrepancy_resolve(
            discrepancy=corrected, status="corrected", reason="已补记渠道入账", user=admin_user
        )

        second = reconcile(day)

        assert second.discrepancy_count == 2 and second.resolved_count == 2
        assert Discrepancy.objects.filter(status="open").count() == 2
        assert set(Discrepancy.objects.filter(status="open").values_list("run", flat=True)) == {second.pk}
        assert found(second) == {
            (manifest.amount_mismatch[0], T.AMOUNT_MISMATCH),
            (manifest.refund_platform_only[0], T.REFUND_PLATFORM_ONLY),
        }
        explained.refresh_from_db()
        assert (explained.status, explained.resolution, explained.resolved_by) == (
            "explained",
            "渠道测试交易，非平台订单",
            admin_user,
        )
        assert explained.run_id == first.pk  # history kept

        # The channel sends a corrected bill: the remaining differences go, the history stays.
        import_bill("wepay", day)
        third = reconcile(day)
        assert third.result == Run.Result.BALANCED and third.discrepancy_count == 0
        assert Discrepancy.objects.filter(status="open").count() == 0
        assert Discrepancy.objects.exclude(status="open").count() == 2

    def test_running_the_same_day_twice_gives_the_same_differences(self, hospital):
        day = yesterday()
        a_day_of_payments(hospital, day)
        import_bill("wepay", day, missing_payment=2, refund_channel_only=1)
        first = reconcile(day)
        keys = sorted(Discrepancy.objects.values_list("day", "batch", "type", "ledger_amount", "statement_amount"))
        second = reconcile(day)
        assert (first.discrepancy_count, second.discrepancy_count) == (3, 3)
        assert (
            sorted(Discrepancy.objects.values_list("day", "batch", "type", "ledger_amount", "statement_amount")) == keys
        )
        assert Discrepancy.objects.count() == 3

    def test_a_hospital_run_leaves_other_hospitals_differences_alone(self, make_hospital):
        one, two = make_hospital("H0001"), make_hospital("H0002", name="测试第二医院")
        day = yesterday()
        pay(one, day=day, when=at(day, 0, 1))
        pay(two, day=day, when=at(day, 0, 2))
        a_day_of_payments(one, day, n=6)
        a_day_of_payments(two, day, n=6)
        import_bill("wepay", day, missing_payment=2)  # the first two payments of the day: one of each
        everyone = reconcile(day)
        assert everyone.discrepancy_count == 2
        mine = reconcile(day, hospital=two)
        assert mine.discrepancy_count == 1 and mine.ledger_payment_count == 7
        assert Discrepancy.objects.get(run=mine).hospital == two
        assert Discrepancy.objects.filter(status="open").count() == 2
        assert Discrepancy.objects.get(hospital=one).run == everyone


@pytest.mark.django_db
class ResolutionTests:
    def test_a_difference_is_resolved_once_with_a_reason_and_an_audit_entry(self, hospital, admin_user):
        day = yesterday()
        pay(hospital, day=day)
        import_bill("wepay", day, missing_payment=1)
        reconcile(day)
        discrepancy = Discrepancy.objects.get()
        with pytest.raises(DomainError, match="请填写处理意见"):
            services.discrepancy_resolve(discrepancy=discrepancy, status="explained", reason=" ", user=admin_user)
        with pytest.raises(DomainError, match="处理结果"):
            services.discrepancy_resolve(discrepancy=discrepancy, status="open", reason="x", user=admin_user)
        services.discrepancy_resolve(
            discrepancy=discrepancy, status="corrected", reason="渠道补发对账单", user=admin_user
        )
        with pytest.raises(Conflict, match="差异已处理（已更正）"):
            services.discrepancy_resolve(discrepancy=discrepancy, status="explained", reason="x", user=admin_user)
        entry = AuditEntry.objects.get(model="reconciliation.Discrepancy", action="差异已更正")
        assert entry.user == admin_user and entry.reason == "渠道补发对账单"
        assert entry.before == {"status": "open", "resolution": "", "resolved_by": None, "resolved_at": None}


@pytest.mark.django_db
class StatementImportTests:
    def test_a_bad_file_leaves_nothing_behind_and_keeps_the_previous_bill(self, hospital):
        day = yesterday()
        a_day_of_payments(hospital, day, n=6)
        import_bill("wepay", day)
        before = (Statement.objects.get().sha256, StatementLine.objects.count())
        content, _ = bill("wepay", day)
        lines = content.decode().splitlines()
        lines[5] = lines[5].replace("`SUCCESS", "`CLOSED")
        with pytest.raises(StatementFileError, match="对账单第6行：交易状态“CLOSED”无法识别"):
            services.statement_import(source=source("wepay"), bill_date=day, file=io.BytesIO("\n".join(lines).encode()))
        assert (Statement.objects.get().sha256, StatementLine.objects.count()) == before

    def test_a_bad_file_for_a_new_day_creates_no_bill(self, hospital):
        day = yesterday()
        a_day_of_payments(hospital, day, n=6)
        content, _ = bill("alipay", day)
        truncated = b"\n".join(content.splitlines()[:-4])
        with pytest.raises(StatementFileError, match="业务明细列表结束"):
            services.statement_import(source=source("alipay"), bill_date=day, file=io.BytesIO(truncated))
        assert not Statement.objects.exists() and not StatementLine.objects.exists()

    def test_the_same_file_twice_is_one_import_and_another_file_replaces_it(self, hospital):
        day = yesterday()
        a_day_of_payments(hospital, day, n=6)
        content, _ = bill("wepay", day)
        first, replaced = services.statement_import(source=source("wepay"), bill_date=day, file=io.BytesIO(content))
        again, replaced_again = services.statement_import(
            source=source("wepay"), bill_date=day, file=io.BytesIO(content)
        )
        assert (again.pk, replaced, replaced_again) == (first.pk, False, False)
        other, _ = bill("wepay", day, extra_payment=2)
        second, replaced = services.statement_import(source=source("wepay"), bill_date=day, file=io.BytesIO(other))
        assert replaced and second.pk != first.pk and second.payment_count == 8
        assert StatementLine.objects.count() == 12
        assert AuditEntry.objects.filter(action="替换对账单").count() == 1


@pytest.mark.django_db
class RangeTests:
    def test_runs_are_refused_for_today_reversed_or_too_long_ranges(self, hospital):
        import django.utils.timezone as tz

        today = tz.localdate()
        with pytest.raises(DomainError, match="已结束的日期"):
            reconcile(today)
        with pytest.raises(DomainError, match="结束日期不能早于开始日期"):
            services.reconciliation_run(date_from=yesterday(), date_to=yesterday() - dt.timedelta(days=1))
        with pytest.raises(DomainError, match="最多31天"):
            services.reconciliation_run(date_from=yesterday() - dt.timedelta(days=40), date_to=yesterday())


@pytest.mark.django_db(transaction=True)
class ConcurrentRunTests:
    def test_two_runs_of_the_same_day_at_once_leave_one_set_of_differences(self, hospital):
        import threading

        from django.db import connection

        day = yesterday()
        a_day_of_payments(hospital, day)
        import_bill("wepay", day, missing_payment=2, extra_payment=1)
        barrier, outcomes = threading.Barrier(2), []

        def run() -> None:
            try:
                barrier.wait(5)
                outcomes.append(reconcile(day, hospital_check=Run.HospitalCheck.NONE).result)
            except Exception as exc:  # noqa: BLE001 - reported below
                outcomes.append(repr(exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes == [Run.Result.DISCREPANCIES] * 2
        assert Discrepancy.objects.filter(status="open").count() == 3
        assert Discrepancy.objects.values("run").distinct().count() == 1
