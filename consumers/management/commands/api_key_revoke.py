"""``manage.py api_key_revoke``: stop a key at once."""

from __future__ import annotations

from typing import Any

from apim.management.base import ServiceCommand, run_service
from consumers.management.base import get_key
from consumers.services import api_key_revoke


class Command(ServiceCommand):
    help = "Revoke an API key (by its prefix apim_XXXXXXXXXXXX)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("prefix", help="The key's prefix as lists show it, or its bare id.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = get_key(options["tenant"], options["prefix"])
        was_active = key.active
        run_service(lambda: api_key_revoke(key=key, actor=None))
        self.say(f"Key {key.prefix} {'revoked' if was_active else 'was already revoked'}.", self.style.SUCCESS)
