"""Three-way reconciliation: the ledger, the channel's bill and the hospital's own view of the order
(GetOrderDetailInfo), against the sandbox hospital over HTTP."""

from __future__ import annotations

from decimal import Decimal

import pytest

from booking.models import Order
from reconciliation import services
from reconciliation.models import Discrepancy, ReconciliationRun
from regional import hospital_wsdl
from regional.models import MessageLog
from sandbox.models import SandboxOrder
from tests.base import import_bill, yesterday
from tests.base import local as at
from tests.factories import pay, platform_order, refund, session
from tests.services import free_port

T = Discrepancy.Type
Run = ReconciliationRun


@pytest.fixture
def hospital(sandbox_hospital):
    """Here `hospital` is the platform's record of the sandbox hospital S001 (`sandbox_his`)."""
    return sandbox_hospital


def his_order(sandbox_his, workflow_id: str, status: str, fee: str = "12.50") -> SandboxOrder:
    """The hospital's own record of the order, as its HIS holds it."""
    schedule = session(sandbox_his, slots=3, price=fee, days_ahead=0)
    return SandboxOrder.objects.create(
        hospital=sandbox_his, work_flow_id=workflow_id, schedule=schedule, serial_number=1, fee=Decimal(fee), status=status,
        name="测试患者一", id_code="3306XXXXXXXXXX0001", telephone="13400000001",
    )  # fmt: skip


def paid(hospital, order, amount="12.50"):
    return pay(hospital, day=yesterday(), batch=order.order_no, order=order, amount=amount)


@pytest.mark.django_db(transaction=True)
class ThreeWayTests:
    def test_orders_whose_money_and_states_disagree_are_checked_at_their_hospital(self, hospital, sandbox_his):
        day = yesterday()
        # The hospital cancelled at its counter and told the platform (2.4), but nobody refunded.
        told = platform_order(hospital, workflow_id="WF-TOLD", status=Order.CANCELLED)
        his_order(sandbox_his, "WF-TOLD", SandboxOrder.CANCELLED)
        paid(hospital, told)
        # Paid at the channel, yet the platform never marked the order paid; the hospital neither.
        unpaid = platform_order(hospital, workflow_id="WF-UNPAID", status=Order.BOOKED)
        his_order(sandbox_his, "WF-UNPAID", SandboxOrder.BOOKED)
        paid(hospital, unpaid)
        # Refunded in full, yet the hospital still shows the patient as paid.
        active = platform_order(hospital, workflow_id="WF-ACTIVE", status=Order.PAID)
        his_order(sandbox_his, "WF-ACTIVE", SandboxOrder.PAID)
        refund(paid(hospital, active), when=at(day, 18))
        # Agreed everywhere: never asked.
        fine = platform_order(hospital, workflow_id="WF-FINE", status=Order.PAID)
        his_order(sandbox_his, "WF-FINE", SandboxOrder.PAID)
        paid(hospital, fine)
        import_bill("wepay", day)

        run = services.reconciliation_run(date_from=day, date_to=day)

        assert run.result == Run.Result.DISCREPANCIES and run.hospital_checked == 3
        found = {(d.batch, d.type, d.hospital_status) for d in Discrepancy.objects.filter(run=run)}
        assert found == {
            (told.order_no, T.HOSPITAL_CANCELLED_PAID, "3"),
            (unpaid.order_no, T.HOSPITAL_UNPAID, "1"),
            (active.order_no, T.HOSPITAL_ACTIVE_REFUNDED, "2"),
        }
        cancelled = Discrepancy.objects.get(type=T.HOSPITAL_CANCELLED_PAID)
        assert cancelled.ledger_amount == cancelled.statement_amount == Decimal("12.50")
        assert cancelled.order_id == told.pk and cancelled.detail == "医院显示已退号，仍收款12.50元未退"
        calls = MessageLog.objects.filter(interface="GetOrderDetailInfo", direction="out")
        assert calls.count() == 3 and all(c.ok for c in calls)

    def test_a_difference_with_the_channel_carries_the_hospitals_status(self, hospital, sandbox_his):
        day = yesterday()
        order = platform_order(hospital, workflow_id="WF-1", status=Order.PAID)
        his_order(sandbox_his, "WF-1", SandboxOrder.PAID, fee="15.00")
        paid(hospital, order)
        manifest = import_bill("wepay", day, missing_payment=1)
        assert manifest.missing_payment == [order.order_no]

        run = services.reconciliation_run(date_from=day, date_to=day)

        rows = {d.type: d for d in Discrepancy.objects.filter(run=run)}
        assert set(rows) == {T.PLATFORM_ONLY, T.HOSPITAL_FEE_MISMATCH}
        assert rows[T.PLATFORM_ONLY].hospital_status == "2" and rows[T.PLATFORM_ONLY].order_id == order.pk
        assert rows[T.HOSPITAL_FEE_MISMATCH].detail == "医院挂号费15.00元，实收12.50元"

    def test_every_paid_order_is_checked_when_the_run_asks_for_it(self, hospital, sandbox_his):
        day = yesterday()
        # Cancelled at the hospital without a word to the platform: only a full check finds it.
        silent = platform_order(hospital, workflow_id="WF-SILENT", status=Order.PAID)
        his_order(sandbox_his, "WF-SILENT", SandboxOrder.CANCELLED)
        paid(hospital, silent)
        import_bill("wepay", day)
        quiet = services.reconciliation_run(date_from=day, date_to=day)
        assert quiet.result == Run.Result.BALANCED and quiet.hospital_checked == 0

        full = services.reconciliation_run(date_from=day, date_to=day, hospital_check=Run.HospitalCheck.ALL)

        assert full.hospital_checked == 1
        assert set(Discrepancy.objects.filter(run=full).values_list("type", flat=True)) == {T.HOSPITAL_CANCELLED_PAID}

    def test_an_unreachable_hospital_leaves_the_run_incomplete_and_keeps_what_it_said_before(
        self, hospital, sandbox_his
    ):
        day = yesterday()
        told = platform_order(hospital, workflow_id="WF-TOLD", status=Order.CANCELLED)
        his_order(sandbox_his, "WF-TOLD", SandboxOrder.CANCELLED)
        paid(hospital, told)
        import_bill("wepay", day)
        first = services.reconciliation_run(date_from=day, date_to=day)
        kept = Discrepancy.objects.get(run=first, type=T.HOSPITAL_CANCELLED_PAID)

        hospital.endpoint_url = f"http://127.0.0.1:{free_port()}/ws"
        hospital.save()
        hospital_wsdl.clear_clients()
        second = services.reconciliation_run(date_from=day, date_to=day)

        assert (second.result, second.hospital_checked, second.hospital_unchecked) == (Run.Result.INCOMPLETE, 0, 1)
        assert "医院状态未能核对" in second.note
        assert list(Discrepancy.objects.filter(status="open")) == [kept]

    def test_an_order_the_hospital_does_not_know_is_reported(self, hospital, sandbox_his):
        day = yesterday()
        ghost = platform_order(hospital, workflow_id="WF-GHOST", status=Order.CANCELLED)
        paid(hospital, ghost)
        import_bill("wepay", day)
        run = services.reconciliation_run(date_from=day, date_to=day)
        row = Discrepancy.objects.get(run=run)
        assert row.type == T.HOSPITAL_NO_ORDER and "WF-GHOST" in row.detail
