"""Draining the usage stream into PostgreSQL: consumer group, at-least-once, idempotent.

Each stream entry is one gateway batch. A drain:

1. makes sure the consumer group exists (created at id ``0``: entries written
   before the first drain are not skipped);
2. re-reads this consumer's own pending entries (a previous run of the same
   consumer that failed before acknowledging);
3. claims entries another consumer left pending for longer than
   ``claim_idle_ms`` (``XAUTOCLAIM``: a worker that died mid-batch);
4. reads new entries (``XREADGROUP >``).

Entries are written in groups of up to ``count`` with one ``COPY`` transaction
(``analytics.ingest``) and acknowledged (``XACK`` + ``XDEL``) only after that
transaction committed. If the database is down the drain raises and nothing is
acknowledged: the entries stay pending and land on a later run. Duplicated
delivery is harmless because the insert skips rows whose (record id,
timestamp) already exists.

An entry that can never be written — not a usage batch, or refused by the
database for its content even when written on its own — is moved to
``<stream>:dead`` and acknowledged, so one poison entry cannot block the
stream for ever.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from django.db import DataError, IntegrityError

from analytics import metrics
from analytics.ingest import usage_records_ingest
from analytics.records import BatchFormatError, Record, unpack_batch

logger = logging.getLogger(__name__)

PAYLOAD_FIELD = b"b"


@dataclass
class DrainResult:
    entries: int = 0
    records: int = 0
    inserted: int = 0
    dead_letters: int = 0
    claimed: int = 0


def dead_letter_stream(stream: str) -> str:
    return f"{stream}:dead"


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def usage_stream_drain(
    *,
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    count: int = 100,
    claim_idle_ms: int = 60_000,
    max_entries: int | None = None,
    time_budget: float | None = None,
    using: str = "default",
) -> DrainResult:
    """Move entries from the stream into the database until it is empty (or a budget is spent).

    Raises on a database or Redis failure; whatever was not yet acknowledged
    stays pending in the stream.
    """
    ensure_group(client, stream, group)
    result = DrainResult()
    deadline = time.monotonic() + time_budget if time_budget else None

    def budget_left() -> bool:
        if max_entries is not None and result.entries >= max_entries:
            return False
        return deadline is None or time.monotonic() < deadline

    # 2. Our own pending entries (a failed earlier run of this consumer).
    while budget_left():
        response = client.xreadgroup(group, consumer, {stream: "0"}, count=count)
        entries = _entries_of(response)
        if not entries:
            break
        _process(client, stream, group, entries, result, using)

    # 3. Entries of consumers that died holding them.
    start = "0-0"
    while budget_left():
        start, entries, _deleted = _autoclaim(client, stream, group, consumer, claim_idle_ms, start, count)
        if entries:
            result.claimed += len(entries)
            _process(client, stream, group, entries, result, using)
        if start in ("0-0", b"0-0"):
            break

    # 4. New entries.
    while budget_left():
        response = client.xreadgroup(group, consumer, {stream: ">"}, count=count)
        entries = _entries_of(response)
        if not entries:
            break
        _process(client, stream, group, entries, result, using)
    return result


def _autoclaim(client, stream, group, consumer, idle_ms, start, count):
    response = client.xautoclaim(stream, group, consumer, min_idle_time=idle_ms, start_id=start, count=count)
    next_start, entries = response[0], response[1]
    deleted = response[2] if len(response) > 2 else []
    # Entries trimmed from the stream while pending come back as None: nothing to write.
    return next_start, [e for e in entries if e and e[1] is not None], deleted


def _entries_of(response) -> list[tuple[bytes, dict]]:
    if not response:
        return []
    entries = response[0][1]
    return [e for e in entries if e[1] is not None]


def _process(client, stream, group, entries, result: DrainResult, using: str) -> None:
    decoded: list[tuple[bytes, list[Record]]] = []
    dead: list[tuple[bytes, bytes, str]] = []
    for entry_id, fields in entries:
        payload = fields.get(PAYLOAD_FIELD, b"")
        try:
            decoded.append((entry_id, unpack_batch(payload)))
        except BatchFormatError as exc:
            dead.append((entry_id, payload, str(exc)))
    if decoded:
        records = [record for _, batch in decoded for record in batch]
        try:
            ingested = usage_records_ingest(records=records, using=using)
        except (DataError, IntegrityError):
            # Something in the group is refused for its content: find it entry by entry.
            ingested = None
        if ingested is not None:
            result.inserted += ingested.inserted
        else:
            for entry_id, batch in decoded:
                try:
                    result.inserted += usage_records_ingest(records=batch, using=using).inserted
                except (DataError, IntegrityError) as exc:
                    dead.append((entry_id, _raw_payload(entries, entry_id), f"refused: {exc}"))
        result.records += len(records)
    if dead:
        _dead_letter(client, stream, dead)
        result.dead_letters += len(dead)
    ids = [entry_id for entry_id, _ in entries]
    pipe = client.pipeline(transaction=False)
    pipe.xack(stream, group, *ids)
    pipe.xdel(stream, *ids)
    pipe.execute()
    result.entries += len(entries)


def _raw_payload(entries, entry_id) -> bytes:
    for candidate, fields in entries:
        if candidate == entry_id:
            return fields.get(PAYLOAD_FIELD, b"")
    return b""


def _dead_letter(client: redis.Redis, stream: str, dead: list[tuple[bytes, bytes, str]]) -> None:
    for entry_id, payload, reason in dead:
        logger.error("usage stream entry %s moved to the dead-letter stream: %s", entry_id, reason[:200])
        client.xadd(dead_letter_stream(stream), {"id": entry_id, "b": payload, "reason": reason[:500]})
    metrics.STREAM_DEAD_LETTERS.inc(len(dead))


@dataclass
class DeadLetter:
    entry_id: str  # in the dead-letter stream
    original_id: str  # in the usage stream
    reason: str
    size: int  # payload bytes


def dead_letters_list(*, client: redis.Redis, stream: str, limit: int = 100) -> list[DeadLetter]:
    """The oldest ``limit`` dead-lettered entries, without their payloads."""
    letters = []
    for entry_id, fields in client.xrange(dead_letter_stream(stream), count=limit):
        letters.append(
            DeadLetter(
                entry_id=entry_id.decode(),
                original_id=fields.get(b"id", b"").decode(),
                reason=fields.get(b"reason", b"").decode("utf-8", "replace"),
                size=len(fields.get(PAYLOAD_FIELD, b"")),
            )
        )
    return letters


def dead_letters_requeue(*, client: redis.Redis, stream: str, ids: list[str] | None = None) -> int:
    """Put dead-lettered batches back on the usage stream (after the cause was fixed); returns how many.

    Each entry is re-added and removed from the dead-letter stream in one
    MULTI/EXEC, so a batch is never in both streams nor in neither. The next
    drain writes it like any other; one that still fails comes back here.
    """
    dead = dead_letter_stream(stream)
    wanted = None if ids is None else set(ids)
    moved = 0
    start = "-"
    while True:
        page = client.xrange(dead, min=start, count=100)
        if not page:
            return moved
        for entry_id, fields in page:
            if wanted is not None and entry_id.decode() not in wanted:
                continue
            pipe = client.pipeline(transaction=True)
            pipe.xadd(stream, {PAYLOAD_FIELD: fields.get(PAYLOAD_FIELD, b"")})
            pipe.xdel(dead, entry_id)
            pipe.execute()
            moved += 1
        start = "(" + page[-1][0].decode()
