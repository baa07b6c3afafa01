"""Log lines: one JSON object per line (production) or plain text (local), secrets redacted.

``APIM_LOG_FORMAT=json|text`` picks the formatter (``logging_config``). A JSON
line carries ``ts``, ``level``, ``logger``, ``message``, ``request_id`` inside a
request (``apim.observability.context``), ``trace_id``/``span_id`` when tracing
is on and there is a current span, ``exc_info`` for an exception, and any
``extra=`` fields the call passed.

``RedactSecrets`` runs on every handler before the formatter: API keys
(``apim_…``), bearer/basic credentials, ``Authorization``/``Cookie``/
``X-API-Key``-style header values, and ``password=``/``secret=``/``token=``
pairs are replaced in the message, its arguments, the exception text and the
extra fields, so a careless ``logger.info("headers %s", headers)`` cannot leak
a key. It works on what was logged, not on what the code meant: it is a
safety net, not a licence to log secrets.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from apim.observability import tracing
from apim.observability.context import current_request_id

REDACTED = "[REDACTED]"
FORMATS = ("json", "text")

# A key as issued (apim_ + 50 base62 characters), or anything that starts like one.
_API_KEY = re.compile(r"apim_[0-9A-Za-z]{12,}")
# Credentials after an auth scheme.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|digest|apikey|token)(\s+)[^\s,;\"'\]}]+")
# Header-like or assignment-like pairs whose value is a secret: "authorization: x", "'cookie': 'x'",
# "password=x", "client_secret=x". The value runs to the end of the quoted string or the next separator.
_SENSITIVE_NAMES = (
    r"authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?key|apikey|"
    r"password|passwd|secret|client[-_]secret|token|access[-_]token|refresh[-_]token|pepper"
)
_PAIR = re.compile(
    r"(?i)(?P<name>[\"']?\b[\w-]*(?:" + _SENSITIVE_NAMES + r")\b[\"']?)(?P<sep>\s*[:=]\s*|\"?\s*,\s*\"?|'?\s*,\s*'?)"
    r"(?P<b>b(?=[\"']))?(?P<q>[\"'])?(?P<value>(?!\[REDACTED\])(?(q)[^\"']*|[^\s,;&)\]}]+))"
)
# A header line ("Cookie: a=1; b=2"): an unquoted value runs to the end of the line.
_HEADER_LINE = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key)(\s*:\s*)(?![\"'\s])[^\r\n]+"
)
_SENSITIVE_KEY = re.compile(r"(?i)(" + _SENSITIVE_NAMES + r")")

# LogRecord attributes that are not "extra" fields.
# uvicorn's ``color_message`` is a terminal copy of the message, not a field.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message", "rid"}
)


def redact(text: str) -> str:
    """``text`` with every secret it visibly carries replaced by ``[REDACTED]``."""
    if not text:
        return text
    text = _API_KEY.sub(REDACTED, text)
    text = _HEADER_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PAIR.sub(_redact_pair, text)
    return _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def _redact_pair(match: re.Match[str]) -> str:
    if not match.group("value"):
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{match.group('b') or ''}{match.group('q') or ''}{REDACTED}"


def redact_value(value: Any, key: str | None = None) -> Any:
    """A structured value with secrets removed: sensitive keys lose their values, strings are scanned."""
    if key is not None and _SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("latin-1"))
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Header lists: [(name, value), ...] — the name decides.
        if len(value) == 2 and isinstance(value[0], str | bytes):
            name = value[0].decode("latin-1") if isinstance(value[0], bytes) else value[0]
            if _SENSITIVE_KEY.fullmatch(name.strip()):
                return type(value)((value[0], REDACTED))
        return type(value)(redact_value(item) for item in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (a Django request, an exception) is logged as its text: redact that text.
    return redact(str(value))


class RedactSecrets(logging.Filter):
    """Rewrites each record so no handler or formatter ever sees a secret it carried."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        # Django's "Not Found"/"Internal Server Error" lines are logged outside the request-id
        # middleware, with the request attached: take the id from it before it becomes text.
        request_id = getattr(getattr(record, "request", None), "request_id", None)
        if isinstance(request_id, str) and not hasattr(record, "request_id"):
            record.request_id = request_id
        for name, value in list(vars(record).items()):
            if name not in _STANDARD:
                setattr(record, name, redact_value(value, name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises for an odd extra value (``str`` of it instead)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        ids = tracing.current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
            if record.exc_info and record.exc_info[0] is not None:
                entry["exc_type"] = record.exc_info[0].__name__
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger [request id] message`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = current_request_id()
        record.rid = f" [{request_id}]" if request_id else ""
        return super().format(record)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` setting for ``APIM_LOG_FORMAT`` (``json`` or ``text``)."""
    if log_format not in FORMATS:
        raise ValueError(f"APIM_LOG_FORMAT must be 'json' or 'text', not {log_format!r}")
    formatter = f"apim.observability.logs.{'JsonFormatter' if log_format == 'json' else 'TextFormatter'}"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "apim.observability.logs.RedactSecrets"}},
        "formatters": {"apim": {"()": formatter}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "apim", "filters": ["redact"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own console handler (DEBUG only) would print a second, unredacted copy.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.db.backends": {"level": "INFO"},
            # uvicorn's lines (start-up, errors, the access log with its query strings) through the
            # same filter and format; the level stays what uvicorn's --log-level made it.
            "uvicorn": {"handlers": ["console"], "propagate": False},
            "uvicorn.access": {"handlers": ["console"], "propagate": False},
        },
    }
