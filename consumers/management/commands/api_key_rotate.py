"""``manage.py api_key_rotate``: a successor key; the old one works for a grace period.

The successor's plaintext is printed once, like ``api_key_issue``'s. Whether
the key may be rotated (not revoked, expired or already rotated) and whether
the grace is valid are the service's rules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apim.management.base import ServiceCommand, get_key, get_tenant
from consumers.services import api_key_rotate


class Command(ServiceCommand):
    help = "Rotate an API key. Prints the new key once; the old key keeps working for the grace period."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("prefix", help="The key's prefix as lists show it, or its bare id.")
        parser.add_argument(
            "--grace-seconds",
            type=int,
            default=None,
            help="How long the old key keeps working (default: API_KEY_ROTATION_GRACE_SECONDS; 0 ends it now).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the new key.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = get_key(get_tenant(options["tenant"]), options["prefix"])
        seconds = options["grace_seconds"]
        issued = api_key_rotate(key=key, grace=None if seconds is None else timedelta(seconds=seconds), actor=None)
        until = key.expires_at.isoformat() if key.expires_at else "never"
        self.success(f"Rotated {key.prefix} → {issued.key.prefix}; the old key works until {until}.")
        self.reveal_key(issued.plaintext)
