"""``manage.py api_key_issue``: issue an API key and print it once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apim.management.base import ServiceCommand, get_api, get_tenant, run_service
from consumers.models import Application
from consumers.services import api_key_issue


def _expiry(options: dict[str, Any]) -> datetime | None:
    if options["expires_at"] and options["expires_in_days"] is not None:
        raise CommandError("Give --expires-at or --expires-in-days, not both.")
    if options["expires_in_days"] is not None:
        if options["expires_in_days"] <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        return timezone.now() + timedelta(days=options["expires_in_days"])
    if options["expires_at"]:
        try:
            value = parse_datetime(options["expires_at"])
        except ValueError:
            value = None
        if value is None:
            raise CommandError(f"--expires-at {options['expires_at']!r} is not an ISO 8601 date and time.")
        return value if timezone.is_aware(value) else timezone.make_aware(value, timezone.utc)
    return None


class Command(ServiceCommand):
    help = "Issue an API key for an application. The key is printed once and cannot be shown again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--consumer", required=True, help="Consumer name.")
        parser.add_argument("--application", required=True, help="Application name (of that consumer).")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument("--scope", action="append", default=[], help="Scope (repeatable).")
        parser.add_argument("--api", action="append", default=[], help="Allowed API NAME or NAME:VERSION (repeatable).")
        parser.add_argument("--expires-at", default=None, help="ISO 8601, e.g. 2027-01-31T00:00:00Z.")
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument("--quiet", action="store_true", help="Print only the key.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        application = (
            Application.objects.select_related("consumer")
            .filter(tenant=tenant, consumer__name=options["consumer"], name=options["application"])
            .first()
        )
        if application is None:
            raise CommandError(
                f"Tenant {tenant.slug!r} has no application {options['application']!r} "
                f"of consumer {options['consumer']!r}."
            )
        apis = [get_api(tenant, spec) for spec in options["api"]]
        expires_at = _expiry(options)
        issued = run_service(
            lambda: api_key_issue(
                application=application,
                name=options["name"],
                scopes=options["scope"],
                allowed_apis=apis,
                expires_at=expires_at,
                actor=None,
            )
        )
        if options["quiet"]:
            self.stdout.write(issued.plaintext)
            return
        self.say(f"Issued key {issued.key.prefix} for {application}.", self.style.SUCCESS)
        self.say("The key (shown once, store it now):")
        self.stdout.write(issued.plaintext)
