"""``manage.py token_issue``: a personal access token for the REST API, printed once.

For bootstrapping automation (the first token of a CI pipeline) where nobody
can sign in to create one. The plaintext is written to stdout exactly once,
alone on the last line (``--quiet``: the only line), and never logged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from apim.management.base import ServiceCommand
from apim.services.tokens import token_issue


class Command(ServiceCommand):
    help = "Issue a personal access token for a user. The token is printed once and cannot be shown again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="Username the token acts as.")
        parser.add_argument("--name", required=True, help="A label for the token, e.g. 'ci-deploy'.")
        parser.add_argument("--read-only", action="store_true", help="Allow only GET, HEAD and OPTIONS.")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Lifetime (default 90, max 365).")
        parser.add_argument("--quiet", action="store_true", help="Print only the token.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        days = options["expires_in_days"]
        if days is not None and days <= 0:
            raise CommandError(f"--expires-in-days must be a positive number of days, not {days}.")
        issued = token_issue(
            user=user,
            name=options["name"],
            read_only=options["read_only"],
            expires_at=timezone.now() + timedelta(days=days) if days is not None else None,
            actor=None,
        )
        token = issued.token
        self.success(f"Issued token {token.prefix} for {user.get_username()}.")
        self.say(f"  Access  : {'read-only' if token.read_only else 'read-write'}")
        self.say(f"  Expires : {token.expires_at.isoformat()}")
        self.say("The token (shown once; it cannot be recovered, store it now):")
        self.stdout.write(issued.plaintext)
