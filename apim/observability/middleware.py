"""Request ids for the web process: honour the caller's ``X-Request-ID``, else make one; echo it back.

The same rule as the gateway (``gateway.headers.safe_request_id``): a client's
id is kept only when it is a safe token, so a log line or a response header
can never carry what an attacker typed. The id is put in the request-id
contextvar for log lines, on ``request.request_id`` for views, and on the
current trace span when tracing is on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from apim.observability import tracing
from apim.observability.context import REQUEST_ID
from gateway.headers import safe_request_id
from gateway.ids import new_request_id

HEADER = "X-Request-ID"


def request_id_for(request: HttpRequest) -> str:
    given = request.META.get("HTTP_X_REQUEST_ID")
    if given is not None:
        safe = safe_request_id(given.encode("latin-1", "replace"))
        if safe is not None:
            return safe.decode("latin-1")
    return new_request_id().decode("latin-1")


class RequestIdMiddleware:
    """Sync and async: Django runs it in whichever mode the stack is in, without a thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        rid = self._begin(request)
        token = REQUEST_ID.set(rid)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response[HEADER] = rid
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        rid = self._begin(request)
        token = REQUEST_ID.set(rid)
        try:
            response = await self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response[HEADER] = rid
        return response

    @staticmethod
    def _begin(request: HttpRequest) -> str:
        rid = request_id_for(request)
        request.request_id = rid  # type: ignore[attr-defined]
        if tracing.ACTIVE:
            from opentelemetry import trace

            trace.get_current_span().set_attribute("apim.request_id", rid)
        return rid
