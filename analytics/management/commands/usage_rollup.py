"""``manage.py usage_rollup --since ... [--until ...]``: recompute rollups for a past range (backfill).

Beat recomputes only the last ``APIM_ROLLUP_GRACE_SECONDS``; records that
arrived later (a long outage drained afterwards, a replayed spill file) or
rollups lost to an incident are rebuilt with this. Recomputing is idempotent,
so an overlapping or repeated run is harmless. Only closed minutes are
aggregated, and nothing older than the source's retention is touched.

``--every SECONDS`` instead runs what beat runs (the recent grace window) in a
loop, for installations without Celery beat (the embedded defaults).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.utils.dateparse import parse_date, parse_datetime

from analytics.rollups import RollupReport, usage_rollup_range, usage_rollup_recent
from apim.management.base import ServiceCommand


def parse_moment(value: str, option: str) -> datetime:
    """An ISO date or datetime; naive values are UTC."""
    moment = None
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{option}: {value!r} is not an ISO date or datetime (e.g. 2026-11-27T10:00Z).")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(ServiceCommand):
    help = "Recompute minute, hour and day usage rollups for [--since, --until) from the raw records."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", default=None, help="Start (ISO date or datetime; naive = UTC).")
        parser.add_argument("--until", default=None, help="End, exclusive (default: now; only closed minutes).")
        parser.add_argument(
            "--every",
            type=float,
            default=None,
            help="Instead of a range: recompute the recent grace window every SECONDS (what beat does).",
        )
        parser.add_argument("--times", type=int, default=None, help="With --every: stop after N runs.")
        parser.add_argument("--quiet", action="store_true", help="Print nothing on success.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["every"] is not None:
            self.watch(every=options["every"], times=options["times"], ranged=options["since"] or options["until"])
            return
        if not options["since"]:
            raise CommandError("--since is required (or --every SECONDS to keep the recent rollups current).")
        now = datetime.now(UTC)
        since = parse_moment(options["since"], "--since")
        until = parse_moment(options["until"], "--until") if options["until"] else now
        if since >= until:
            raise CommandError("--since must be before --until.")
        try:
            report = usage_rollup_range(since=since, until=until, now=now)
        except DatabaseError as exc:
            raise CommandError(f"Database error; batches committed before it stay recomputed: {exc}") from None
        self.print_report(report)

    def watch(self, *, every: float, times: int | None, ranged: Any) -> None:
        if ranged:
            raise CommandError("--every recomputes the recent window; it takes no --since/--until.")
        if every <= 0 or (times is not None and times < 1):
            raise CommandError("--every must be positive and --times at least 1.")
        runs = 0
        while times is None or runs < times:
            if runs:
                time.sleep(every)
            if connection.connection is not None and not connection.is_usable():
                connection.close()  # broken by an outage: the next query reconnects
            try:
                report = usage_rollup_recent()
            except DatabaseError as exc:  # keep watching: the next run recomputes the same window
                self.stderr.write(f"Database error, retrying in {every:g} s: {exc}")
            else:
                self.print_report(report)
            runs += 1

    def print_report(self, report: RollupReport) -> None:
        for granularity, result in report.results.items():
            if result.start is None:
                self.success(f"{granularity}: nothing to recompute (no data, or not closed yet, or past retention).")
            else:
                self.success(
                    f"{granularity}: {result.buckets} buckets from {result.start:%Y-%m-%d %H:%M} "
                    f"to {result.end:%Y-%m-%d %H:%M} UTC, {result.rows} rows."
                )
