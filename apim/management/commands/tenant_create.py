"""``manage.py tenant_create``: a tenant and its first admin (a staff user who owns it).

The password is either read from standard input (for scripts; checked with
the project's password validators) or generated and printed once. It is never
taken as an argument, where it would end up in shell history and ``ps``.
If the username already exists, that user becomes the tenant's owner and keeps
its password.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.management.base import CommandError

from apim.management.base import ServiceCommand
from apim.services.tenants import tenant_create_with_admin


class Command(ServiceCommand):
    help = "Create a tenant with its first admin user (owner). A generated password is printed once."
    # Tests pass ``stdin=StringIO(...)``, as with Django's createsuperuser.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug", help="Machine name, e.g. acme.")
        parser.add_argument("--name", default="", help="Display name (default: the slug).")
        parser.add_argument("--host", action="append", default=[], help="Gateway hostname of the tenant (repeatable).")
        parser.add_argument("--default", action="store_true", help="Also serve requests whose Host matches no tenant.")
        parser.add_argument("--admin-username", required=True, help="The owner's login (created if new).")
        parser.add_argument("--admin-email", default="", help="The owner's email address.")
        parser.add_argument(
            "--admin-password-stdin", action="store_true", help="Read a new owner's password from standard input."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["admin_username"]
        existing = get_user_model().objects.filter(username=username).exists()
        if options["admin_password_stdin"]:
            password = self._read_password(options.get("stdin") or sys.stdin, username, options["admin_email"])
        else:
            password = secrets.token_urlsafe(18)
        tenant, user = tenant_create_with_admin(
            slug=options["slug"],
            name=options["name"] or options["slug"],
            username=username,
            email=options["admin_email"],
            password=password,
            hosts=options["host"],
            is_default=options["default"],
            actor=None,
        )
        hosts = ", ".join(tenant.hosts.values_list("host", flat=True)) or "none"
        self.success(f"Created tenant {tenant.slug!r} ({tenant.name}).")
        self.say(f"  Hosts         : {hosts}{' (and every unmatched host)' if tenant.is_default else ''}")
        self.say(f"  Admin console : http://127.0.0.1:{settings.APIM_WEB_PORT}/admin/")
        if existing:
            self.say(f"  Login         : {user.get_username()} (existing user, password unchanged; now owner)")
        elif options["admin_password_stdin"]:
            self.say(f"  Login         : {user.get_username()} (password from standard input)")
        else:
            self.say(f"  Login         : {user.get_username()} / {password}   (shown once)")

    @staticmethod
    def _read_password(stream: Any, username: str, email: str) -> str:
        password = stream.readline().rstrip("\r\n")
        if not password:
            raise CommandError("--admin-password-stdin: standard input gave an empty password.")
        # Raises ValidationError (turned into CommandError) with the validators' messages.
        validate_password(password, user=get_user_model()(username=username, email=email))
        return password
