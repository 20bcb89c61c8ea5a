"""Patient notifications through the pluggable notifier: the log (default) and an SMS gateway (a small
local HTTP server standing in for it), persisted rows, retries and the sweeper."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from booking import notify
from booking.models import Channel, Order, PatientNotification, Schedule
from regional.pii import mask
from tests.base import apply, record

pytestmark = pytest.mark.django_db(transaction=True)


class Gateway:
    """A stand-in SMS gateway: records every POST, answers with `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, str]] = []
        self.status = 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.received.append((json.loads(body), self.headers.get("X-Api-Key", "")))
                self.send_response(gateway.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):  # keep the test output (and its leak scan) quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(settings):
    server = Gateway()
    settings.NOTIFIER = "regional.notify.SmsGatewayBackend"
    settings.SMS_GATEWAY_URL = server.url
    settings.SMS_GATEWAY_KEY = "test-gateway-key"
    yield server
    server.close()


@pytest.fixture
def order(hospital) -> Order:
    apply(hospital, [record(1)])
    channel = Channel.objects.create(code="JKMZWX", name="微信", token_hash="x" * 64)
    schedule = Schedule.objects.get()
    return Order.objects.create(
        order_no="YY20260101000000000001", channel=channel, hospital=hospital, schedule=schedule, status=Order.BOOKED,
        lock_transaction_id="t" * 32, fee=schedule.price, patient_name="测试患者一", id_card="3306XXXXXXXXXX0001",
        phone="13400000001",
    )  # fmt: skip


def tell(order: Order, kind: str = PatientNotification.LOCKED) -> PatientNotification:
    with transaction.atomic():
        row = notify.notify_patient(order=order, kind=kind, message=f"您的预约（订单号{order.order_no}）已锁定")
    row.refresh_from_db()
    return row


class NotifierTests:
    def test_the_default_backend_writes_the_log_with_the_phone_masked(self, order, caplog):
        with caplog.at_level(logging.INFO, logger="regional.notify"):
            row = tell(order)
        assert row.status == "sent" and row.backend == "LogBackend" and row.attempts == 1
        assert "134****0001" in caplog.text and "13400000001" not in caplog.text

    def test_the_sms_gateway_receives_phone_message_reference_and_key(self, order, gateway):
        row = tell(order)
        assert row.status == "sent" and row.backend == "SmsGatewayBackend"
        body, key = gateway.received[0]
        assert body == {"phone": "13400000001", "message": row.message, "reference": f"booking-{row.pk}"}
        assert key == "test-gateway-key"

    def test_a_notification_is_written_once_per_order_and_event(self, order):
        tell(order)
        with transaction.atomic():
            assert notify.notify_patient(order=order, kind="locked", message="again") is not None
        assert PatientNotification.objects.count() == 1

    def test_a_failing_gateway_is_retried_by_the_sweeper_with_the_same_reference(self, order, gateway):
        gateway.status = 500
        row = tell(order)
        assert row.status == "pending" and row.attempts == 1 and "HTTP 500" in row.last_error
        assert row.next_attempt_at > timezone.now()
        gateway.status = 200
        assert notify.notifications_sweep(now=timezone.now()) == 0  # its backoff has not passed
        assert notify.notifications_sweep(now=timezone.now() + dt.timedelta(hours=1)) == 1
        row.refresh_from_db()
        assert row.status == "sent" and row.attempts == 2
        assert [body["reference"] for body, _ in gateway.received] == [f"booking-{row.pk}"] * 2

    def test_after_the_retry_budget_it_fails_and_staff_can_send_it_again(self, order, gateway, settings):
        settings.DELIVERY_MAX_ATTEMPTS = 1
        gateway.status = 503
        row = tell(order)
        assert row.status == "failed"
        gateway.status = 200
        assert notify.notifications_retry(notification_ids=[row.pk]) == 1
        row.refresh_from_db()
        assert row.status == "sent"

    def test_an_unconfigured_gateway_is_a_failure_to_retry_not_a_crash(self, order, settings):
        settings.NOTIFIER = "regional.notify.SmsGatewayBackend"
        settings.SMS_GATEWAY_URL = ""
        row = tell(order)
        assert row.status == "pending" and "BOOKING_SMS_GATEWAY_URL" in row.last_error

    def test_the_row_keeps_the_phone_encrypted(self, order):
        from django.db import connection

        tell(order)
        with connection.cursor() as cursor:
            cursor.execute("SELECT phone FROM booking_patientnotification")
            assert "1340000" not in cursor.fetchone()[0]
        assert mask(PatientNotification.objects.get().phone, "phone") == "134****0001"
