"""The usage record as it travels: a plain tuple, its wire format, and its row form.

The gateway builds one tuple per request (``FIELDS`` order) and nothing else on
the request path: no dict, no JSON, no validation. Everything that costs time
happens off the path: a batch of tuples is packed with msgpack once (one Redis
stream entry or one spill-file frame per batch), and the ingesting side turns
each tuple into a database row with ``to_row``, which also defends the table
against whatever a buggy or hostile producer put on the stream (too long
strings, bad UUIDs, nonsense numbers): a bad value becomes empty/NULL, it never
blocks the batch.

This module imports no Django model so the gateway can use it freely.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack

# Wire/tuple order. Append new fields at the end only: batches already in a
# stream or a spill file keep decoding (missing trailing fields become defaults).
FIELDS: tuple[str, ...] = (
    "record_id",
    "timestamp_us",
    "request_id",
    "tenant_id",
    "api_id",
    "api_version",
    "route",
    "consumer_id",
    "application_id",
    "key_prefix",
    "method",
    "path",
    "status",
    "deny_reason",
    "latency_us",
    "upstream_latency_us",
    "gateway_latency_us",
    "bytes_in",
    "bytes_out",
    "client_ip",
    "user_agent",
    "upstream_target",
)
FIELD_COUNT = len(FIELDS)

# Database columns in ``to_row`` order (the COPY column list): the fields, with the
# wire's integer microseconds stored as a timestamp column.
COLUMNS: tuple[str, ...] = tuple("timestamp" if name == "timestamp_us" else name for name in FIELDS)

# Column widths; ``to_row`` truncates to them (models.py declares the same).
MAX_LENGTHS = {
    "record_id": 40,
    "request_id": 64,
    "api_version": 64,
    "route": 512,
    "key_prefix": 32,
    "method": 16,
    "path": 2048,
    "deny_reason": 64,
    "user_agent": 512,
    "upstream_target": 512,
}
_SHORT = min(MAX_LENGTHS.values())  # a string this short fits every column
(_MAX_ID, _MAX_REQ, _MAX_VER, _MAX_ROUTE, _MAX_KP, _MAX_MTH, _MAX_PATH, _MAX_DENY, _MAX_UA, _MAX_TARGET) = (
    MAX_LENGTHS[name]
    for name in ("record_id", "request_id", "api_version", "route", "key_prefix", "method", "path", "deny_reason",
                 "user_agent", "upstream_target")
)  # fmt: skip
WIRE_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1

Record = tuple[Any, ...]


class RecordIds:
    """Unique record ids made without a system call: a random per-process token plus a counter.

    The id is fixed when the gateway records the request, so a batch that is
    retried (a flush that timed out after Redis stored it, a stream entry
    delivered twice) carries the same ids and the ``ON CONFLICT DO NOTHING``
    insert keeps one row per request.
    """

    __slots__ = ("_counter", "_token")

    def __init__(self) -> None:
        self._token = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._token}{next(self._counter):012x}"


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def pack_batch(records: Sequence[Record]) -> bytes:
    """One msgpack document for a whole batch: ``[version, [record, ...]]``."""
    return msgpack.packb([WIRE_VERSION, list(records)], default=_default, use_bin_type=True)


class BatchFormatError(ValueError):
    """A stream entry or spill frame that is not a batch of usage records."""


def unpack_batch(payload: bytes) -> list[Record]:
    try:
        document = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
        raise BatchFormatError(f"not msgpack: {exc}") from None
    return batch_from_document(document)


def batch_from_document(document: Any) -> list[Record]:
    if not (isinstance(document, list) and len(document) == 2 and document[0] == WIRE_VERSION):
        raise BatchFormatError("not a version-1 usage batch")
    records = document[1]
    if not isinstance(records, list) or not all(isinstance(r, list | tuple) for r in records):
        raise BatchFormatError("records must be a list of arrays")
    return [tuple(r) for r in records]


def _text(value: Any, column: str) -> str:
    if type(value) is str and len(value) <= _SHORT and "\x00" not in value:
        return value
    if value is None:
        return ""
    if not isinstance(value, str):
        value = _default(value)
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        value = value.replace("\x00", "")
    return value[: MAX_LENGTHS[column]]


# Fast paths for what the gateway always sends (canonical UUIDs, dotted IPv4, ints): the
# ingest worker validates every field of every record, and the general parsers
# (uuid.UUID, ipaddress) cost most of its time (measured: ~75 % of a drain).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch


def _uuid(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is str and _CANONICAL_UUID(value):
        return value
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None


def _int(value: Any, *, low: int = 0, high: int = _INT32_MAX, nullable: bool = False) -> int | None:
    if type(value) is int:
        return value if low <= value <= high else min(max(value, low), high)
    if value is None or isinstance(value, bool):
        return None if nullable else low
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None if nullable else low
    return min(max(number, low), high)


def _ip(value: Any) -> str | None:
    if not value:
        return None
    if type(value) is str and _CANONICAL_IPV4(value):
        return value
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def timestamp_of(record: Record) -> datetime | None:
    """The record's time as an aware datetime (exact to the microsecond), or None if unusable."""
    try:
        micros = int(record[1])
        return _EPOCH + timedelta(microseconds=micros)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def to_row(record: Record) -> tuple[Any, ...] | None:
    """A database row (``COLUMNS`` order) from a wire record, or None when it has no id or time.

    Each field is checked inline for the shape the gateway always sends (a
    short str without NUL, an int in range, a canonical UUID or IPv4) and only
    otherwise handed to the general ``_text`` / ``_int`` / ``_uuid`` / ``_ip``:
    the same result, at about half the cost per record on the ingest worker.
    """
    if len(record) < FIELD_COUNT:
        record = tuple(record) + (None,) * (FIELD_COUNT - len(record))
    (rid, _ts, req, tenant, api, ver, route, consumer, app, kp, mth, path, status, deny, latency,
     upstream, gateway, b_in, b_out, ip, ua, tgt) = record[:FIELD_COUNT]  # fmt: skip
    record_id = rid if type(rid) is str and len(rid) <= _MAX_ID and "\x00" not in rid else _text(rid, "record_id")
    timestamp = timestamp_of(record)
    if not record_id or timestamp is None:
        return None
    uuid_ok = _CANONICAL_UUID
    return (
        record_id,
        timestamp,
        req if type(req) is str and len(req) <= _MAX_REQ and "\x00" not in req else _text(req, "request_id"),
        tenant if type(tenant) is str and uuid_ok(tenant) else _uuid(tenant),
        api if type(api) is str and uuid_ok(api) else _uuid(api),
        ver if type(ver) is str and len(ver) <= _MAX_VER and "\x00" not in ver else _text(ver, "api_version"),
        route if type(route) is str and len(route) <= _MAX_ROUTE and "\x00" not in route else _text(route, "route"),
        consumer if type(consumer) is str and uuid_ok(consumer) else _uuid(consumer),
        app if type(app) is str and uuid_ok(app) else _uuid(app),
        kp if type(kp) is str and len(kp) <= _MAX_KP and "\x00" not in kp else _text(kp, "key_prefix"),
        mth if type(mth) is str and len(mth) <= _MAX_MTH and "\x00" not in mth else _text(mth, "method"),
        path if type(path) is str and len(path) <= _MAX_PATH and "\x00" not in path else _text(path, "path"),
        status if type(status) is int and 0 <= status <= 999 else _int(status, high=999),
        deny if type(deny) is str and len(deny) <= _MAX_DENY and "\x00" not in deny else _text(deny, "deny_reason"),
        latency if type(latency) is int and 0 <= latency <= _INT32_MAX else _int(latency),
        upstream if type(upstream) is int and 0 <= upstream <= _INT32_MAX else _int(upstream, nullable=True),
        gateway if type(gateway) is int and 0 <= gateway <= _INT32_MAX else _int(gateway),
        b_in if type(b_in) is int and 0 <= b_in <= _INT64_MAX else _int(b_in, high=_INT64_MAX),
        b_out if type(b_out) is int and 0 <= b_out <= _INT64_MAX else _int(b_out, high=_INT64_MAX),
        ip if type(ip) is str and _CANONICAL_IPV4(ip) else _ip(ip),
        ua if type(ua) is str and len(ua) <= _MAX_UA and "\x00" not in ua else _text(ua, "user_agent"),
        tgt if type(tgt) is str and len(tgt) <= _MAX_TARGET and "\x00" not in tgt else _text(tgt, "upstream_target"),
    )


def rows_of(records: Iterable[Record]) -> tuple[list[tuple[Any, ...]], int]:
    """Rows for the usable records, and how many were unusable (no id or time)."""
    rows = []
    bad = 0
    for record in records:
        row = to_row(record)
        if row is None:
            bad += 1
        else:
            rows.append(row)
    return rows, bad
