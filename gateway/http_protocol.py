"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools protocol with an intermediary's limits.

Three things uvicorn's ``HttpToolsProtocol`` does not do, and a gateway must:

* **Bounded request heads.** httptools has no limit on the request line or the
  header section, and uvicorn keeps every header it is given: one client could
  grow a worker's memory without end, and a 70 KB header would be forwarded to
  the upstream. A request target over ``max_url_bytes`` gets 414, a header
  section over ``max_header_bytes`` or ``max_headers`` lines gets 431 (RFC 6585
  §5), and the connection is closed; nothing reaches the application.
* **The absolute form** (``GET http://host/path HTTP/1.1``). uvicorn keeps only
  the path and the application would route by the ``Host`` header, which
  RFC 9112 §3.2.2 says to ignore in that case: the target's own authority
  replaces every ``Host`` field, so a front proxy that routes by the target
  and this gateway pick the same tenant.
* **Errors in the envelope.** A request the parser refuses (bad syntax,
  ``Content-Length`` together with ``Transfer-Encoding``, obsolete line folding,
  bare LF...) is answered in the gateway's JSON error envelope with a request
  id, like every other error the gateway generates, instead of uvicorn's plain
  text.

The limits come from settings (``APIM_GATEWAY_MAX_URL_BYTES``,
``APIM_GATEWAY_MAX_HEADER_BYTES``, ``APIM_GATEWAY_MAX_HEADERS``) and are read
once per worker.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import envelope
from gateway.ids import new_request_id

DEFAULT_MAX_URL_BYTES = 8 * 1024
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
DEFAULT_MAX_HEADERS = 100

_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised from a parser callback: stops parsing at once (httptools re-raises it as a parser error)."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def _limits() -> tuple[int, int, int]:
    from django.conf import settings

    return (
        getattr(settings, "APIM_GATEWAY_MAX_URL_BYTES", DEFAULT_MAX_URL_BYTES),
        getattr(settings, "APIM_GATEWAY_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES),
        getattr(settings, "APIM_GATEWAY_MAX_HEADERS", DEFAULT_MAX_HEADERS),
    )


class GatewayHttpProtocol(HttpToolsProtocol):
    """Pass as uvicorn's ``http`` protocol class (``manage.py gateway`` does)."""

    limits: tuple[int, int, int] | None = None  # (url bytes, header bytes, header lines), read on first use

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GatewayHttpProtocol.limits is None:
            GatewayHttpProtocol.limits = _limits()
        self._max_url, self._max_header_bytes, self._max_headers = GatewayHttpProtocol.limits
        self._header_bytes = 0
        self._refusal: HeadTooLarge | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self._max_url:
            self._refuse(414, "uri_too_long", "request_target_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_bytes > self._max_header_bytes:
            self._refuse(431, "header_fields_too_large", "header_section_too_large")
        if len(self.headers) >= self._max_headers:
            self._refuse(431, "header_fields_too_large", "too_many_header_fields")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        url = self.url
        if url[:1] not in (b"/", b"*") and b"://" in url[:10]:
            self._use_target_authority(url)
        super().on_headers_complete()

    def _use_target_authority(self, url: bytes) -> None:
        """Absolute form: the target's authority replaces every Host field (RFC 9112 §3.2.2)."""
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            return  # the application refuses a target it cannot canonicalize
        if not parsed.host:
            return
        host = parsed.host
        if b":" in host:  # an IPv6 literal keeps its brackets in the Host field
            host = b"[" + host + b"]"
        authority = host if parsed.port is None else host + b":" + str(parsed.port).encode()
        self.headers[:] = [(name, value) for name, value in self.headers if name != b"host"]
        self.headers.append((b"host", authority))

    def _refuse(self, status: int, code: str, reason: str) -> None:
        self._refusal = HeadTooLarge(status, code, reason)
        raise self._refusal

    def send_400_response(self, msg: str) -> None:
        """Every request the parser (or a limit above) refuses: the envelope, then close."""
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            status, code, details = refusal.status, refusal.code, {"reason": refusal.reason}
        else:
            status, code, details = 400, "bad_request", {"reason": "malformed_request"}
        message = "The request is not valid HTTP/1.1." if status == 400 else None
        _, body = envelope(code, new_request_id(), status=status, message=message, details=details)
        content = [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"cache-control: no-store\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self.transport.close()
