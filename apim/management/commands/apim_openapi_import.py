"""``manage.py apim_openapi_import --tenant SLUG FILE``: register or update an API from an OpenAPI 3.0/3.1 document.

Reads a local file (or ``-`` for standard input); URLs are never fetched. See
``apim/services/openapi_import.py`` for what is created and how it is matched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from apim.management.base import ServiceCommand, get_tenant
from apim.openapi_documents import InvalidOpenApiDocument
from apim.services.openapi_import import openapi_import


class Command(ServiceCommand):
    help = "Create or update an API, its routes and request validation from an OpenAPI 3.0/3.1 document."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path of the YAML or JSON document, or - for standard input.")
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--api", dest="api_name", help="API name (default: the slug of info.title).")
        parser.add_argument("--upstream", help="Upstream name or id to route the API to (never taken from servers).")
        parser.add_argument("--base-path", help="Base path (default: the API's current one, else /<name>).")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report the changes; write nothing.")
        parser.add_argument("--quiet", action="store_true", help="Print nothing on success.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        raw = self._read(options["file"])
        try:
            result = openapi_import(
                tenant=tenant,
                raw=raw,
                api_name=options["api_name"],
                upstream=options["upstream"],
                base_path=options["base_path"],
                dry_run=options["dry_run"],
                actor=None,
            )
        except InvalidOpenApiDocument as exc:
            lines = [exc.message, *(f"  {e['path'] or '(document)'}: {e['message']}" for e in exc.errors)]
            raise CommandError("\n".join(lines)) from None
        for change in result.changes:
            if change.action == "unchanged":
                if options["verbosity"] > 1:
                    self.say(f"unchanged {change.kind} {change.label}")
            else:
                self.say(f"{'would ' if result.dry_run else ''}{change.action} {change.kind} {change.label}")
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        verb = "Would import" if result.dry_run else "Imported"
        summary = (
            "no changes" if not result.changed else f"{sum(c.action != 'unchanged' for c in result.changes)} changes"
        )
        self.success(f"{verb} API {result.api} ({result.operations} operations): {summary}.")

    def _read(self, name: str) -> bytes:
        limit = settings.APIM_OPENAPI_MAX_BYTES
        try:
            if name == "-":
                return sys.stdin.buffer.read(limit + 1)
            with Path(name).open("rb") as handle:
                return handle.read(limit + 1)  # one byte over: the service refuses it with the limit's message
        except OSError as exc:
            raise CommandError(f"Cannot read {name}: {exc.strerror or exc}.") from None
