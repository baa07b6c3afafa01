"""``manage.py usage_dead_letters``: see, and requeue, usage batches the drain could not write.

The drain moves a batch it can never write (undecodable, or refused by the
database for its content) to ``<stream>:dead`` so that it cannot block the
stream. Once the cause is fixed (a deploy, a migration), ``--requeue`` puts the
batches back on the usage stream; the next drain writes them, idempotently.
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.core.management.base import CommandError

from analytics.pipeline import dead_letter_stream, dead_letters_list, dead_letters_requeue
from apim.management.base import ServiceCommand


class Command(ServiceCommand):
    help = "List the usage stream's dead letters, or requeue them (all, or the given entry ids)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("ids", nargs="*", help="Dead-letter entry ids to requeue (with --requeue; default all).")
        parser.add_argument("--requeue", action="store_true", help="Move them back onto the usage stream.")
        parser.add_argument("--limit", type=int, default=100, help="How many to list (default 100).")

    def handle(self, *args: Any, **options: Any) -> None:
        url = settings.APIM_USAGE_REDIS_URL
        if not url:
            raise CommandError("No usage Redis configured (APIM_USAGE_REDIS_URL / REDIS_URL): there is no stream.")
        if options["ids"] and not options["requeue"]:
            raise CommandError("Entry ids are only meaningful with --requeue.")
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        stream = settings.APIM_USAGE_STREAM
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        try:
            if options["requeue"]:
                moved = dead_letters_requeue(client=client, stream=stream, ids=options["ids"] or None)
                self.success(f"Requeued {moved} dead-lettered batches onto {stream}; the next drain writes them.")
                return
            letters = dead_letters_list(client=client, stream=stream, limit=options["limit"])
            total = client.xlen(dead_letter_stream(stream))
        except redis.RedisError as exc:
            raise CommandError(f"Redis unavailable: {exc}") from None
        finally:
            client.close()
        self.say(f"{total} dead-lettered batches in {dead_letter_stream(stream)}")
        for letter in letters:
            self.say(f"{letter.entry_id}  was {letter.original_id}  {letter.size} bytes  {letter.reason}")
