"""The hotline's day in the staff console (issue 13), in Chromium at 1366×768 with an English browser:
find a patient's order by ID number, phone and name, open it, cancel it with its refund."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from booking.models import LedgerEntry, Order
from tests import console
from tests.base import fake_id, lock
from tests.console import assert_no_english, login, shot, staff

english_page = console.english_page  # the fixture: Chromium at 1366×768 asking for English

# Codes a Chinese page still shows: the channel's code and the platform's order-number prefix.
CODES = {"JKMZWX", "YY"}
WIDTH = 1366


def identifier_words(order_no: str) -> set[str]:
    """Letters inside the order's own identifiers (the hospital's WorkFlowId, the trade and
    transaction numbers, hex UUIDs) that the order page shows: codes, not English."""
    order = Order.objects.get(order_no=order_no)
    values = [order.order_no, order.workflow_id, order.lock_transaction_id, order.pay_trade_no]
    values += list(order.outbox.values_list("transaction_id", flat=True))
    return {w for v in values for w in re.findall(r"[A-Za-z][A-Za-z']+", v or "")}


def result_rows(page) -> int:
    return page.locator("#result_list tbody tr").count()


def assert_columns_on_screen(page, *columns: str) -> None:
    """The list's key columns are on the screen and inside the list's own box (not scrolled off
    to the right of it, under the filters)."""
    results = page.locator("#changelist .results").bounding_box()
    right = min(WIDTH, results["x"] + results["width"])
    for column in columns:
        box = page.locator(f"#result_list th.column-{column}").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= right, f"{column}列超出屏幕：{box}"
    assert page.evaluate("document.querySelector('#changelist .results').scrollWidth") <= results["width"] + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class HotlineConsoleTests:
    def test_the_hotline_finds_a_patients_order_and_cancels_it_with_a_refund(
        self,
        english_page,
        public_url,
        api,
        bookable,  # noqa: F811 - the fixture imported above
    ):
        page = english_page
        _, schedule = bookable(slots=5)
        order = lock(api, schedule, 1)
        api.pay(order)
        lock(api, schedule, 2)  # another patient's order, which no search may find
        # A Chinese account name: the header greets the user by it.
        login(page, public_url, staff("hotline", username="客服一号"), next_path="/admin/booking/order/")

        for term in (fake_id(1), "13400000001", "测试患者1"):
            page.goto(f"{public_url}/admin/booking/order/")
            page.fill("#searchbar", term)
            page.press("#searchbar", "Enter")
            page.wait_for_load_state("load")
            assert result_rows(page) == 1, f"搜索“{term[:4]}…”应只找到一笔订单"
            assert page.locator(f'#result_list [title="{order["order_no"]}"]').count() == 1
            assert_no_english(page, CODES)
        text = page.inner_text("#result_list")
        assert "已支付" in text and "测**" in text and "12.50" in text
        assert_columns_on_screen(page, "state", "patient", "visit", "fee_display")
        shot(page, "hotline-search")

        page.click(f'#result_list a:has([title="{order["order_no"]}"])')
        page.wait_for_load_state("load")
        assert_no_english(page, CODES | identifier_words(order["order_no"]))
        assert "锁号中 → 已预约" in page.inner_text("body") and fake_id(1) not in page.content()
        shot(page, "hotline-order")

        page.click(".object-tools a:text('退号退费')")
        page.wait_for_load_state("load")
        assert "确认退号退费" in page.locator("input[type=submit]").first.get_attribute("value")
        page.fill("#id_reason", "患者来电要求退号")
        assert_no_english(page, CODES)
        shot(page, "hotline-cancel")
        page.click("input[type=submit][value='确认退号退费']")
        page.wait_for_load_state("load")
        assert "已退号，挂号费12.50元已记入退款流水、原路退回" in page.inner_text(".messagelist")
        assert_no_english(page, CODES | identifier_words(order["order_no"]))

        page.goto(f"{public_url}/admin/booking/schedule/")
        assert page.locator(f'#result_list [title="{schedule.work_id}"]').count() == 1
        assert "4/5" in page.inner_text("#result_list")  # 余号/总数 after the cancellation gave the number back
        assert_columns_on_screen(page, "work_date_short", "session_short", "slots", "price_short", "status")
        assert_no_english(page, CODES | {"D"})
        shot(page, "hotline-schedules")

        cancelled = Order.objects.get(order_no=order["order_no"])
        assert (cancelled.status, cancelled.cancelled_by) == (Order.CANCELLED, Order.BY_STAFF)
        refund = LedgerEntry.objects.get(order=cancelled, kind=LedgerEntry.REFUND)
        assert refund.amount == Decimal("12.50")
        assert cancelled.transitions.last().actor == "工作人员客服一号"
