"""The one notifier: texts to patients and reminders to hospitals or staff, through one backend.

The setting NOTIFIER names the backend (default `regional.notify.LogBackend`, the log;
`regional.notify.SmsGatewayBackend` posts to an SMS gateway). A backend is any class with
`send(notice)`; raising means "not delivered, try again" — the delivery engine
(regional.delivery) keeps the row and retries it. Notices name the hospital, the session and the
order or referral number, never the patient's identity; the phone number is masked in logs.

Settings: NOTIFIER (dotted path), SMS_GATEWAY_URL, SMS_GATEWAY_KEY, SMS_GATEWAY_TIMEOUT (seconds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

import requests
from django.conf import settings
from django.utils.module_loading import import_string

from regional.delivery import Courier, DeliveryRow, Sent, TryLater
from regional.pii import mask

logger = logging.getLogger("regional.notify")


@dataclass(frozen=True)
class Notice:
    """One message to one recipient: a mobile number (a patient) or a named recipient
    (`hospital:<HospitalNo>`, `staff`). `reference` is stable per row, so a gateway can drop a repeat;
    an `urgent` notice (something waits for someone) is logged as a warning."""

    subject: str
    message: str
    reference: str
    phone: str = ""
    recipient: str = ""
    urgent: bool = False

    def to_display(self) -> str:
        return mask(self.phone, "phone") if self.phone else self.recipient


class Backend(Protocol):
    def send(self, notice: Notice) -> None: ...


class LogBackend:
    """Writes each notice to the `regional.notify` log, the phone number masked (the default)."""

    def send(self, notice: Notice) -> None:
        level = logging.WARNING if notice.urgent else logging.INFO
        logger.log(level, "%s → %s：%s", notice.subject, notice.to_display(), notice.message)


class SmsGatewayBackend:
    """POSTs each notice with a mobile number as JSON to the SMS gateway at SMS_GATEWAY_URL,
    authenticated with SMS_GATEWAY_KEY (header `X-Api-Key`); any non-2xx answer is a failure to
    retry. Body: `{"phone": "...", "message": "...", "reference": "..."}`.

    A notice without a mobile number (a reminder to a hospital or to staff) is written to the log:
    the gateway could not deliver it, and it must not fail for ever.
    """

    def __init__(self) -> None:
        self.url = settings.SMS_GATEWAY_URL
        self.key = settings.SMS_GATEWAY_KEY
        self.timeout = float(settings.SMS_GATEWAY_TIMEOUT)
        if not self.url:
            # Names the old variable as well: a deployment may still set only that one.
            raise RuntimeError("SMS_GATEWAY_URL（旧名BOOKING_SMS_GATEWAY_URL）未配置，无法使用短信网关发送通知")

    def send(self, notice: Notice) -> None:
        if not notice.phone:
            LogBackend().send(notice)
            return
        response = requests.post(
            self.url,
            json={"phone": notice.phone, "message": notice.message, "reference": notice.reference},
            headers={"X-Api-Key": self.key},
            timeout=self.timeout,
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"短信网关返回HTTP {response.status_code}")


@lru_cache(maxsize=8)
def _load(path: str) -> type:
    return import_string(path)


def backend() -> Backend:
    """A fresh instance of the configured backend (it reads its settings when made)."""
    return _load(settings.NOTIFIER)()


def backend_name() -> str:
    return settings.NOTIFIER.rsplit(".", 1)[-1]


Row = TypeVar("Row", bound=DeliveryRow)


class NoticeCourier(Courier[Row]):
    """A kind of row delivered as a notice through the configured notifier: a subclass says which
    notice one row is (`notice()`); any failure of the backend means "try again later"."""

    def notice(self, row: Row) -> Notice:
        raise NotImplementedError

    def send(self, row: Row) -> Sent | None:
        try:
            backend().send(self.notice(row))
        except Exception as exc:  # noqa: BLE001 - any backend failure means "retry later", never lose the row
            raise TryLater(f"{type(exc).__name__}: {exc}") from exc
        return None
