"""One family of domain errors, each with a stable code and a Chinese message.

Every protocol maps them once: SOAP to `ResultCode` 1 with `ErrorMsg`, the referral servlet to
`result` false/error with `message`, REST to JSON with `code` and `message`.
"""

from __future__ import annotations

from collections.abc import Iterable

from regional.messages.schema import Violation


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


class InvalidInput(DomainError):
    """Input that breaks one or more rules, every broken rule listed as a Violation (the field's
    path and a Chinese message), whichever interface or page it came from. Serializers and forms
    only shape the input (types, presence); the service decides and raises this."""

    code = "invalid_request"
    http_status = 400

    def __init__(self, violations: Iterable[Violation]):
        self.violations = list(violations)
        super().__init__("；".join(str(v) for v in self.violations) or "请求参数有误")

    @property
    def errors(self) -> dict[str, str]:
        """Path → message (the first for a path), as a form attaches them to its fields."""
        errors: dict[str, str] = {}
        for v in self.violations:
            errors.setdefault(v.path, v.message)
        return errors
