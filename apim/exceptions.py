"""The rule-violation hierarchy every service raises.

Each error carries a stable ``code`` and a human ``message``; the admin shows
the message, commands print it, and the REST API and gateway turn it into the
uniform envelope ``{"success": false, "error": {"code", "message", "details"}}``.
Field validation uses Django's ``ValidationError`` (which carries per-field
messages); these are for rules that are not about one field's format.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code = "application_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def as_envelope(self) -> dict[str, Any]:
        return {"success": False, "error": {"code": self.code, "message": self.message, "details": self.details}}


class IllegalTransition(ApplicationError):
    code = "illegal_transition"
    status = 409


class Conflict(ApplicationError):
    code = "conflict"
    status = 409


class NotFound(ApplicationError):
    code = "not_found"
    status = 404


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    status = 403
