"""Monthly range partitions on PostgreSQL, written by hand (no pg_partman, no extra packages).

A partitioned table here is a parent ``<table>`` with children named
``<table>_pYYYY_MM`` covering ``[first instant of the month, first instant of
the next)`` in UTC. Only children with that exact name shape are ever touched,
so a partition an operator attached by hand is left alone.

* ``ensure_months`` creates missing partitions (``CREATE TABLE IF NOT EXISTS
  ... PARTITION OF``; concurrent callers are harmless).
* ``drop_before`` drops whole partitions whose month is wholly before a cutoff:
  retention is a catalog operation, never a row-by-row DELETE.

On other databases the table is plain: creation is a no-op and retention
deletes rows by time (the embedded SQLite install must not grow for ever).

The ``PartitionedTable`` value carries the table and column names so the
rollup tables can reuse all of this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connections, transaction


@dataclass(frozen=True)
class PartitionedTable:
    name: str
    column: str = "timestamp"

    def partition_name(self, month: date) -> str:
        return f"{self.name}_p{month.year:04d}_{month.month:02d}"

    @property
    def partition_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^{re.escape(self.name)}_p(\d{{4}})_(\d{{2}})$")


USAGE_RECORDS = PartitionedTable("am_usage_records")


def month_start(moment: datetime | date) -> date:
    """The first day of the UTC month containing ``moment``."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return date(moment.year, moment.month, 1)
    return moment.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = add_months(month, 1)
    return start, datetime(end_month.year, end_month.month, 1, tzinfo=UTC)


def is_partitioned(using: str = "default") -> bool:
    return connections[using].vendor == "postgresql"


def list_partitions(table: PartitionedTable, *, using: str = "default") -> list[date]:
    """Months that have a partition of ours, oldest first (empty on non-PostgreSQL)."""
    if not is_partitioned(using):
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            JOIN pg_namespace ns ON ns.oid = parent.relnamespace
            WHERE parent.relname = %s AND ns.nspname = current_schema()
            """,
            [table.name],
        )
        names = [row[0] for row in cursor.fetchall()]
    months = []
    pattern = table.partition_pattern
    for name in names:
        match = pattern.match(name)
        if match:
            months.append(date(int(match[1]), int(match[2]), 1))
    return sorted(months)


def ensure_months(table: PartitionedTable, months: Iterable[date], *, using: str = "default") -> list[date]:
    """Create the partitions for ``months`` that do not exist yet; return the ones created."""
    wanted = sorted({month_start(m) for m in months})
    if not wanted or not is_partitioned(using):
        return []
    existing = set(list_partitions(table, using=using))
    created = []
    connection = connections[using]
    for month in wanted:
        if month in existing:
            continue
        start, end = month_bounds(month)
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Identifiers come from PartitionedTable (our own constants), bounds from datetimes.
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS "{table.partition_name(month)}" PARTITION OF "{table.name}" '
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        created.append(month)
    return created


def ensure_ahead(table: PartitionedTable, *, now: datetime, ahead: int, using: str = "default") -> list[date]:
    """Partitions for the current month and ``ahead`` months after it."""
    current = month_start(now)
    return ensure_months(table, (add_months(current, i) for i in range(ahead + 1)), using=using)


def retention_cutoff(*, now: datetime, retain_months: int) -> date:
    """The first month kept: partitions for months before it hold only records older than
    ``retain_months`` months, so dropping them never loses a record younger than that."""
    return add_months(month_start(now), -retain_months)


def drop_before(table: PartitionedTable, cutoff: date, *, using: str = "default") -> list[date]:
    """Drop whole partitions for months before ``cutoff``; return the months dropped.

    Elsewhere than PostgreSQL, delete the rows older than ``cutoff`` instead.
    """
    if not is_partitioned(using):
        start, _ = month_bounds(cutoff)
        connection = connections[using]
        with transaction.atomic(using=using), connection.cursor() as cursor:
            bound = connection.ops.adapt_datetimefield_value(start)  # stored as text on SQLite: same format
            cursor.execute(f'DELETE FROM "{table.name}" WHERE "{table.column}" < %s', [bound])  # noqa: S608
        return []
    dropped = []
    for month in list_partitions(table, using=using):
        if month >= cutoff:
            break
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{table.partition_name(month)}"')
        dropped.append(month)
    return dropped


def partition_of(table: PartitionedTable, moment: datetime) -> str:
    return table.partition_name(month_start(moment))
