"""``manage.py usage_drain``: move the usage stream into the database now (what beat runs).

For operators (drain a backlog after an outage, watch it progress) and tests.
Exits 1 with one line when Redis or the database is unreachable; the entries
not yet written stay pending in the stream for the next run.
"""

from __future__ import annotations

from typing import Any

import redis
from django.core.management.base import CommandError
from django.db import DatabaseError

from analytics.services import usage_drain
from apim.management.base import ServiceCommand


class Command(ServiceCommand):
    help = "Drain the usage Redis stream into am_usage_records (COPY, idempotent, acknowledged after commit)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--consumer", default="", help="Consumer name in the group (default: host:pid).")
        parser.add_argument("--max-entries", type=int, default=None, help="Stop after this many stream entries.")
        parser.add_argument("--time-budget", type=float, default=None, help="Stop after this many seconds.")
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=None,
            help="Claim other consumers' entries pending this long (default: APIM_USAGE_CLAIM_IDLE_MS).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print nothing on success.")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("max_entries", "time_budget", "claim_idle_ms"):
            if options[name] is not None and options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must not be negative.")
        try:
            result = usage_drain(
                consumer=options["consumer"] or None,
                max_entries=options["max_entries"],
                time_budget=options["time_budget"],
                claim_idle_ms=options["claim_idle_ms"],
            )
        except redis.RedisError as exc:
            raise CommandError(f"Redis unavailable, nothing drained: {exc}") from None
        except DatabaseError as exc:
            raise CommandError(f"Database unavailable, entries stay pending in the stream: {exc}") from None
        if result is None:
            self.say("No usage Redis configured (APIM_USAGE_REDIS_URL / REDIS_URL): the gateway writes directly.")
            return
        self.success(
            f"Drained {result.entries} stream entries: {result.records} records, {result.inserted} new rows, "
            f"{result.claimed} claimed from other consumers, {result.dead_letters} dead-lettered."
        )
