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
    if value is None:
        return ""
    if not isinstance(value, str):
        value = _default(value)
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        value = value.replace("\x00", "")
    return value[: MAX_LENGTHS[column]]


def _uuid(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None


def _int(value: Any, *, low: int = 0, high: int = _INT32_MAX, nullable: bool = False) -> int | None:
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
    """A database row (``COLUMNS`` order) from a wire record, or None when it has no id or time."""
    if len(record) < FIELD_COUNT:
        record = tuple(record) + (None,) * (FIELD_COUNT - len(record))
    record_id = _text(record[0], "record_id")
    timestamp = timestamp_of(record)
    if not record_id or timestamp is None:
        return None
    return (
        record_id,
        timestamp,
        _text(record[2], "request_id"),
        _uuid(record[3]),
        _uuid(record[4]),
        _text(record[5], "api_version"),
        _text(record[6], "route"),
        _uuid(record[7]),
        _uuid(record[8]),
        _text(record[9], "key_prefix"),
        _text(record[10], "method"),
        _text(record[11], "path"),
        _int(record[12], high=999),
        _text(record[13], "deny_reason"),
        _int(record[14]),
        _int(record[15], nullable=True),
        _int(record[16]),
        _int(record[17], high=_INT64_MAX),
        _int(record[18], high=_INT64_MAX),
        _ip(record[19]),
        _text(record[20], "user_agent"),
        _text(record[21], "upstream_target"),
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
