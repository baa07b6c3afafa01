"""``manage.py api_key_revoke``: stop a key at once (gateways learn it through the config event)."""

from __future__ import annotations

from typing import Any

from apim.management.base import ServiceCommand, get_key, get_tenant
from consumers.services import api_key_revoke


class Command(ServiceCommand):
    help = "Revoke an API key by its prefix (apim_XXXXXXXXXXXX) or bare id. Revoking twice is harmless."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("prefix", help="The key's prefix as lists show it, or its bare id.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = get_key(get_tenant(options["tenant"]), options["prefix"])
        if not key.active:
            self.say(f"Key {key.prefix} was already revoked; nothing to do.")
            return
        api_key_revoke(key=key, actor=None)
        self.success(f"Key {key.prefix} revoked.")
