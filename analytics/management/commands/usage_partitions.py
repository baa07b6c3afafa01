"""``manage.py usage_partitions``: create monthly partitions ahead and drop expired ones (what beat runs).

Covers the raw table and the three rollup tables (``am_usage_rollup_{minute,hour,day}``).

Retention drops whole partitions (a catalog operation, instant, no row
deletes); on SQLite, where the table is plain, it deletes the old rows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError

from analytics.partitions import USAGE_RECORDS, list_partitions
from analytics.rollups import ROLLUP_TABLES
from analytics.services import usage_partitions_maintain
from apim.management.base import ServiceCommand


class Command(ServiceCommand):
    help = (
        "Create am_usage_records and rollup partitions ahead; with --retain-months N drop raw partitions older "
        "than N months, with --rollup-retention drop rollup partitions per APIM_ROLLUP_RETENTION_MONTHS_*."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--ahead",
            type=int,
            default=None,
            help="Months after the current one to create (default: APIM_USAGE_PARTITIONS_AHEAD).",
        )
        parser.add_argument(
            "--retain-months",
            type=int,
            default=None,
            help="Drop partitions wholly older than this many months (default: none dropped; 0 = none).",
        )
        parser.add_argument(
            "--rollup-retention",
            action="store_true",
            help="Also drop rollup partitions older than APIM_ROLLUP_RETENTION_MONTHS_{MINUTE,HOUR,DAY}.",
        )
        parser.add_argument("--quiet", action="store_true", help="Print nothing on success.")

    def handle(self, *args: Any, **options: Any) -> None:
        ahead = settings.APIM_USAGE_PARTITIONS_AHEAD if options["ahead"] is None else options["ahead"]
        retain = options["retain_months"]
        if ahead < 2 or ahead > 36:
            raise CommandError("--ahead must be between 2 and 36 (partitions exist at least two months ahead).")
        if retain is not None and (retain < 0 or retain > 1200):
            raise CommandError("--retain-months must be between 0 (keep all) and 1200.")
        try:
            report = usage_partitions_maintain(
                ahead=ahead,
                retain_months=retain,
                rollup_retain_months=settings.APIM_ROLLUP_RETENTION_MONTHS if options["rollup_retention"] else None,
            )
        except DatabaseError as exc:
            raise CommandError(f"Database error, nothing changed after it: {exc}") from None
        created = ", ".join(f"{m:%Y-%m}" for m in report.created) or "none"
        self.success(f"Created partitions: {created}.")
        if retain:
            dropped = ", ".join(f"{m:%Y-%m}" for m in report.dropped) or "none"
            self.success(f"Dropped partitions before {report.cutoff:%Y-%m}: {dropped}.")
        for granularity, cutoff in report.rollup_cutoffs.items():
            dropped = ", ".join(f"{m:%Y-%m}" for m in report.rollup_dropped[granularity]) or "none"
            self.success(f"Dropped {granularity} rollup partitions before {cutoff:%Y-%m}: {dropped}.")
        months = list_partitions(USAGE_RECORDS)
        if months:
            self.say(f"Partitions now: {months[0]:%Y-%m} … {months[-1]:%Y-%m} ({len(months)}).")
        for granularity, table in ROLLUP_TABLES.items():
            months = list_partitions(table)
            if months:
                self.say(f"{granularity} rollup partitions: {months[0]:%Y-%m} … {months[-1]:%Y-%m} ({len(months)}).")
