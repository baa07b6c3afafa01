"""``manage.py idempotency_purge``: delete stored REST create responses past ``APIM_IDEMPOTENCY_TTL``.

Beat does the same every hour (``apim.idempotency_records_purge_task``); the
command is for installations without a beat process and for a first cleanup.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from apim.management.base import ServiceCommand
from apim.services.idempotency import idempotency_records_expired_count, idempotency_records_purge


class Command(ServiceCommand):
    help = "Delete idempotency records older than APIM_IDEMPOTENCY_TTL (or --older-than-hours)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than-hours",
            type=int,
            default=None,
            help="Override the age (default: APIM_IDEMPOTENCY_TTL_HOURS). Never below the TTL.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        ttl = settings.APIM_IDEMPOTENCY_TTL
        hours = options["older_than_hours"]
        if hours is not None:
            if hours < 0:
                raise CommandError(f"--older-than-hours must be 0 or more, not {hours}.")
            if timedelta(hours=hours) < ttl:
                # A younger record may still be replayed to a client retrying its create.
                raise CommandError(
                    f"--older-than-hours {hours} is below APIM_IDEMPOTENCY_TTL ({ttl}); "
                    "records younger than the TTL are still in use."
                )
            ttl = timedelta(hours=hours)
        if options["dry_run"]:
            count = idempotency_records_expired_count(ttl=ttl)
            self.stdout.write(f"{count} idempotency record(s) older than {ttl} would be deleted.")
            return
        deleted = idempotency_records_purge(ttl=ttl)
        self.stdout.write(f"Deleted {deleted} idempotency record(s) older than {ttl}.")
