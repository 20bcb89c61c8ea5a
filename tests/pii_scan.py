"""The suite's own leak check (loaded with `-p tests.pii_scan`).

Everything the platform writes where people read it, across the whole run: every log line as
the configured handlers format it, every message-log entry, every error page (HTTP status ≥ 400),
and the log files of the worker processes the tests start. At the end of the session all of it
is searched for ID numbers and phone numbers that are not masked; any find fails the run and is
reported masked (the report itself must not leak).
"""

from __future__ import annotations

import logging
import os
import re

import pytest

# An unmasked 身份证号 (digits or the specification's 3306XXXX… style) or mainland mobile number.
LEAKS = re.compile(r"(?<![\w*])(?:\d{17}[\dXx]|\d{15}|3306X{6,}\d{2,4}|1[3-9]\d{9})(?![\w*])")
_found: list[tuple[str, str]] = []
_scanned = {"log": 0, "messagelog": 0, "error_page": 0, "file": 0}


def _check(where: str, text: str) -> None:
    if not text:
        return
    for match in LEAKS.finditer(text):
        value = match.group(0)
        _found.append((where, value[:3] + "*" * (len(value) - 7) + value[-4:]))


class _Tee(logging.Filter):
    """Sees each record after the handler's own masking filters ran (filters run in order)."""

    def __init__(self, handler: logging.Handler):
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = self.handler.format(record)
        except Exception:  # noqa: BLE001
            return True
        _scanned["log"] += 1
        _check(f"log {record.name}", text)
        return True


def pytest_sessionstart(session):
    import django

    django.setup()
    for handler in logging.getLogger().handlers:
        if any(type(f).__name__ == "MaskPersonalDataFilter" for f in handler.filters):
            handler.addFilter(_Tee(handler))

    from django.core.handlers.base import BaseHandler
    from django.db.models.signals import post_save

    original = BaseHandler.get_response

    def get_response(self, request):
        response = original(self, request)
        own = getattr(response, "shows_own_personal_data", False)  # a form shown to the party that sent the data
        if response.status_code >= 400 and not getattr(response, "streaming", False) and not own:
            _scanned["error_page"] += 1
            _check(f"error page {request.path} {response.status_code}", response.content.decode("utf-8", "replace"))
        return response

    BaseHandler.get_response = get_response

    def on_message_log(sender, instance, **kwargs):
        _scanned["messagelog"] += 1
        _check(
            f"message log {instance.interface}", f"{instance.request_text}\n{instance.response_text}\n{instance.error}"
        )

    post_save.connect(on_message_log, sender="regional.MessageLog", weak=False, dispatch_uid="pii-scan")


def pytest_sessionfinish(session, exitstatus):
    var = os.environ.get("REGIONAL_VAR_DIR", "")
    if var and os.path.isdir(var):
        for name in os.listdir(var):
            if name.endswith(".log"):
                _scanned["file"] += 1
                with open(os.path.join(var, name), encoding="utf-8", errors="replace") as fh:
                    _check(f"file {name}", fh.read())
    if _found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    counts = ", ".join(f"{k} {v}" for k, v in _scanned.items())
    if _found:
        terminalreporter.section("personal data leak check: FAILED", red=True)
        for where, shown in _found[:50]:
            terminalreporter.write_line(f"unmasked value {shown} in {where}")
        terminalreporter.write_line(f"{len(_found)} finds; scanned {counts}")
    else:
        terminalreporter.write_line(f"personal data leak check: no unmasked ID or phone number (scanned {counts})")
