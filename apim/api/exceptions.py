"""One error shape for the whole REST API: the gateway's envelope.

``{"success": false, "error": {"code", "message", "details"}}`` for every
refusal: DRF's own exceptions (400 validation, 401, 403, 404, 405, 415, 429),
our ``ApplicationError`` hierarchy (by its status and code) and Django's
``ValidationError`` from ``full_clean`` in a service (400, per-field messages
in ``details``). Headers DRF computes (``WWW-Authenticate``, ``Retry-After``,
``Allow``) are kept. Anything else is left to Django's 500 handling, which
logs it: an unexpected error must be seen and fixed, not dressed up.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apim.exceptions import ApplicationError

# DRF's default codes, renamed where ours are clearer.
_CODES = {
    "invalid": "validation_error",
    "not_authenticated": "not_authenticated",
    "authentication_failed": "authentication_failed",
    "permission_denied": "permission_denied",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "unsupported_media_type": "unsupported_media_type",
    "throttled": "throttled",
    "parse_error": "parse_error",
}


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details or {}}}


def _first_message(details: Any, field: str = "") -> str:
    """A human summary: the first message, prefixed by its field path."""
    if isinstance(details, dict):
        for key, value in details.items():
            label = "" if key in ("non_field_errors", "__all__") else key
            return _first_message(value, f"{field}.{label}" if field and label else (label or field))
    if isinstance(details, list) and details:
        return _first_message(details[0], field)
    return f"{field}: {details}" if field else str(details)


def _details(data: Any) -> Any:
    """DRF's ErrorDetail tree as plain JSON (strings keep their text)."""
    if isinstance(data, dict):
        return {str(k): _details(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_details(v) for v in data]
    return str(data)


def _from_django_validation(exc: DjangoValidationError) -> Response:
    if hasattr(exc, "error_dict"):
        details = {("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()}
    else:
        details = {"non_field_errors": exc.messages}
    return Response(envelope("validation_error", _first_message(details), details), status=400)


def envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(envelope(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        return _from_django_validation(exc)
    if isinstance(exc, IntegrityError):
        # Services turn known races into ValidationError; a leftover one is still a conflict, not a crash.
        return Response(envelope("conflict", "The change conflicts with an existing object; retry."), status=409)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        details = _details(exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail})
        response.data = envelope("validation_error", _first_message(details), details)
        return response
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "error"
    details: dict[str, Any] = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        details["retry_after_seconds"] = int(exc.wait) + (0 if float(exc.wait).is_integer() else 1)
    response.data = envelope(_CODES.get(code, code), str(exc.detail), details)
    if response.status_code == status.HTTP_403_FORBIDDEN and code == "not_authenticated":
        response.status_code = status.HTTP_401_UNAUTHORIZED
    return response
