"""``manage.py api_key_issue``: issue an API key and print it once.

The plaintext exists only in the service's return value; this command writes
it to stdout exactly once, alone on the last line (``--quiet``: the only
line), and never to a log. Only the prefix identifies the key afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apim.management.base import ServiceCommand, get_api, get_application, get_consumer, get_tenant
from consumers.services import api_key_issue


def parse_expiry(*, expires_at: str | None, expires_in_days: int | None) -> datetime | None:
    """The expiry from either option; a time without an offset is taken as UTC.

    Whether it is in the future is the service's rule (same message as the admin).
    """
    if expires_in_days is not None:
        if expires_in_days <= 0:
            raise CommandError(f"--expires-in-days must be a positive number of days, not {expires_in_days}.")
        return timezone.now() + timedelta(days=expires_in_days)
    if not expires_at:
        return None
    try:
        value = parse_datetime(expires_at.strip())
    except ValueError:
        value = None
    if value is None:
        raise CommandError(f"--expires-at {expires_at!r} is not an ISO 8601 date and time (e.g. 2027-01-31T00:00Z).")
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


class Command(ServiceCommand):
    help = "Issue an API key for an application. The key is printed once and cannot be shown again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--consumer", required=True, help="Consumer name.")
        parser.add_argument("--application", required=True, help="Application name (of that consumer).")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument("--scope", action="append", default=[], help="Scope (repeatable).")
        parser.add_argument(
            "--api", action="append", default=[], help="Restrict to this API, NAME or NAME:VERSION (repeatable)."
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-at", default=None, help="ISO 8601, e.g. 2027-01-31T00:00:00Z (UTC if no offset)."
        )
        expiry.add_argument("--expires-in-days", type=int, default=None, help="Expire N days from now.")
        parser.add_argument("--quiet", action="store_true", help="Print only the key.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        application = get_application(get_consumer(tenant, options["consumer"]), options["application"])
        apis = [get_api(tenant, spec) for spec in options["api"]]
        expires_at = parse_expiry(expires_at=options["expires_at"], expires_in_days=options["expires_in_days"])
        issued = api_key_issue(
            application=application,
            name=options["name"],
            scopes=options["scope"],
            allowed_apis=apis,
            expires_at=expires_at,
            actor=None,
        )
        key = issued.key
        self.success(f"Issued key {key.prefix} for {application} (tenant {tenant.slug!r}).")
        self.say(f"  Scopes  : {', '.join(key.scopes) or 'none'}")
        self.say(f"  APIs    : {', '.join(str(api) for api in apis) or 'every subscribed API'}")
        self.say(f"  Expires : {key.expires_at.isoformat() if key.expires_at else 'never'}")
        self.reveal_key(issued.plaintext)
