"""JSON log lines, request ids in them, and the redaction filter."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.test import RequestFactory

from apim.observability import tracing
from apim.observability.context import REQUEST_ID, current_request_id
from apim.observability.logs import REDACTED, JsonFormatter, RedactSecrets, TextFormatter, logging_config, redact
from apim.observability.middleware import RequestIdMiddleware

API_KEY = "apim_3kT9xQ2mB7aZ" + "q" * 32 + "Ab12Cd"


@pytest.fixture
def capture():
    """A logger wired exactly as ``logging_config`` wires the console: redaction filter, then formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("apim.test.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, lines, stream
    logger.removeHandler(handler)


def test_json_line_has_the_fields_and_the_request_id(capture):
    logger, lines, _ = capture
    logger.info("outside a request")
    token = REQUEST_ID.set(b"abc123")
    try:
        logger.warning("inside %s", "a request", extra={"api_id": "a1"})
    finally:
        REQUEST_ID.reset(token)
    first, second = lines()
    assert set(first) == {"ts", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "apim.test.observability"
    assert first["ts"].endswith("Z")
    assert second["message"] == "inside a request"
    assert second["request_id"] == "abc123"
    assert second["api_id"] == "a1"
    assert "trace_id" not in second


def test_exception_info_is_one_json_line(capture):
    logger, lines, stream = capture
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    assert len(stream.getvalue().splitlines()) == 1
    (line,) = lines()
    assert line["exc_type"] == "RuntimeError"
    assert "RuntimeError: boom" in line["exc_info"]


def test_trace_ids_when_tracing_is_on(capture, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider

    logger, lines, _ = capture
    monkeypatch.setattr(tracing, "ACTIVE", True)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.info("traced")
        context = span.get_span_context()
    logger.info("no span")
    traced, untraced = lines()
    assert traced["trace_id"] == format(context.trace_id, "032x")
    assert traced["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in untraced


def test_redaction_filter_removes_keys_credentials_and_cookies(capture):
    logger, lines, stream = capture
    headers = [(b"authorization", b"Bearer eyJhbGciOi.secret.sig"), (b"cookie", b"sessionid=s3ss10n"), (b"host", b"x")]
    logger.info("request headers %s", headers)
    logger.info("key %s rejected", API_KEY)
    logger.info("Authorization: Basic dXNlcjpwYXNz")
    logger.info("GET /v1/items?api_key=k3y-in-query&page=2")
    logger.info("config", extra={"headers": {"X-API-Key": API_KEY, "Accept": "*/*"}, "password": "hunter2"})
    try:
        raise ValueError(f"bad key {API_KEY}")
    except ValueError:
        logger.exception("lookup failed")
    text = stream.getvalue()
    for secret in (API_KEY, "eyJhbGciOi", "s3ss10n", "dXNlcjpwYXNz", "k3y-in-query", "hunter2"):
        assert secret not in text, secret
    out = lines()
    assert (
        out[0]["message"]
        == f"request headers [(b'authorization', b'{REDACTED}'), (b'cookie', b'{REDACTED}'), (b'host', b'x')]"
    )
    assert out[1]["message"] == f"key {REDACTED} rejected"
    assert out[3]["message"] == f"GET /v1/items?api_key={REDACTED}&page=2"
    assert out[4]["headers"] == {"X-API-Key": REDACTED, "Accept": "*/*"}
    assert out[4]["password"] == REDACTED
    assert REDACTED in out[5]["exc_info"]


def test_redact_leaves_ordinary_text_alone():
    for text in ("tokens_used=5 in 12 ms", "secret rotation done: 3 keys", "GET /orders/42?page=2", "keys: 3"):
        assert redact(text) == text


def test_text_format_carries_the_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = REQUEST_ID.set("r-1")
    try:
        assert " x [r-1] hello" in TextFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)


def test_logging_config_picks_the_formatter_and_refuses_unknown_formats():
    assert logging_config("json", "INFO")["formatters"]["apim"]["()"].endswith("JsonFormatter")
    assert logging_config("text", "INFO")["formatters"]["apim"]["()"].endswith("TextFormatter")
    assert logging_config("json", "INFO")["handlers"]["console"]["filters"] == ["redact"]
    with pytest.raises(ValueError, match="APIM_LOG_FORMAT"):
        logging_config("xml", "INFO")


def test_middleware_honours_a_safe_request_id_and_echoes_it():
    seen = []

    def view(request):
        from django.http import HttpResponse

        seen.append((current_request_id(), request.request_id))
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    response = middleware(RequestFactory().get("/x", HTTP_X_REQUEST_ID="client-id-42"))
    assert response["X-Request-ID"] == "client-id-42"
    assert seen[-1] == ("client-id-42", "client-id-42")
    assert current_request_id() is None  # reset after the request

    response = middleware(RequestFactory().get("/x", HTTP_X_REQUEST_ID="bad id\r\nX-Evil: 1"))
    generated = response["X-Request-ID"]
    assert generated != "bad id\r\nX-Evil: 1" and generated.isalnum()
    assert seen[-1] == (generated, generated)


@pytest.mark.django_db
def test_middleware_is_in_the_web_stack(client):
    response = client.get("/health", HTTP_X_REQUEST_ID="from-client-1")
    assert response["X-Request-ID"] == "from-client-1"
    assert client.get("/health").has_header("X-Request-ID")


def test_django_request_lines_take_the_id_from_the_attached_request(capture):
    """Django logs "Not Found" after the middleware returned, with the request attached."""
    logger, lines, stream = capture
    request = RequestFactory().get(f"/missing?api_key={API_KEY}")
    request.request_id = "rid-from-request"
    logger.warning("Not Found: %s", request.path, extra={"request": request, "status_code": 404})
    (line,) = lines()
    assert line["request_id"] == "rid-from-request"
    assert line["status_code"] == 404
    assert API_KEY not in stream.getvalue()
