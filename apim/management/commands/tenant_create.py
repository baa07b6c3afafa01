"""``manage.py tenant_create``: a tenant and its first admin (a staff user who owns it)."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from apim.management.base import ServiceCommand, run_service
from apim.services.tenants import tenant_create_with_admin


class Command(ServiceCommand):
    help = "Create a tenant with its first admin user (owner). Prints a generated password once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug", help="Machine name, e.g. acme.")
        parser.add_argument("--name", default="", help="Display name (default: the slug).")
        parser.add_argument("--host", action="append", default=[], help="Gateway hostname of the tenant (repeatable).")
        parser.add_argument("--default", action="store_true", help="Serve requests whose Host matches no tenant.")
        parser.add_argument("--admin-username", required=True)
        parser.add_argument("--admin-email", default="")
        parser.add_argument(
            "--admin-password-stdin", action="store_true", help="Read the admin's password from standard input."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        generated = not options["admin_password_stdin"]
        password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
        if not password:
            from django.core.management.base import CommandError

            raise CommandError("The password read from standard input is empty.")
        tenant, user = run_service(
            lambda: tenant_create_with_admin(
                slug=options["slug"],
                name=options["name"] or options["slug"],
                username=options["admin_username"],
                email=options["admin_email"],
                password=password,
                hosts=options["host"],
                is_default=options["default"],
                actor=None,
            )
        )
        self.say(f"Created tenant {tenant.slug!r} with owner {user.get_username()!r}.", self.style.SUCCESS)
        if generated and user.check_password(password):
            self.say(f"Password (shown once): {password}")
