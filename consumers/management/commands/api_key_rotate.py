"""``manage.py api_key_rotate``: a successor key; the old one works for a grace period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError

from apim.management.base import ServiceCommand, run_service
from consumers.management.base import get_key
from consumers.services import api_key_rotate


class Command(ServiceCommand):
    help = "Rotate an API key. Prints the new key once; the old key keeps working for the grace period."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("prefix")
        parser.add_argument("--grace-seconds", type=int, default=None, help="Default: API_KEY_ROTATION_GRACE_SECONDS.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = get_key(options["tenant"], options["prefix"])
        grace = None
        if options["grace_seconds"] is not None:
            if options["grace_seconds"] < 0:
                raise CommandError("--grace-seconds cannot be negative.")
            grace = timedelta(seconds=options["grace_seconds"])
        issued = run_service(lambda: api_key_rotate(key=key, grace=grace, actor=None))
        key.refresh_from_db()
        until = f"{key.expires_at:%Y-%m-%d %H:%M:%S %Z}"
        self.say(f"Rotated {key.prefix} → {issued.key.prefix}; the old key works until {until}.", self.style.SUCCESS)
        self.say("The new key (shown once, store it now):")
        self.stdout.write(issued.plaintext)
