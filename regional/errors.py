"""One family of domain errors, each with a stable code and a Chinese message.

Every protocol maps them once: SOAP to `ResultCode` 1 with `ErrorMsg`, the referral servlet to
`result` false/error with `message`, REST to JSON with `code` and `message`.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    code = "conflict"
    http_status = 409


class Forbidden(DomainError):
    code = "forbidden"
    http_status = 403


class NotOpen(DomainError):
    """An interface of the specification whose implementation has not been switched on."""

    code = "not_open"
    http_status = 501
