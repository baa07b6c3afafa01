"""``manage.py apim_import --tenant SLUG FILE [--dry-run] [--prune]``: make the tenant what FILE says.

Prints the diff (``+ create``, ``~ update`` with ``field: old → new``,
``- delete``, ``= keep``). Every problem in the file is printed with its
path and the command exits 1 having written nothing; otherwise the whole
change is applied in one transaction. ``${NAME}`` in a secret field of a
policy config is read from this command's environment.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import CommandError

from apim.declarative.document import MAX_DOCUMENT_BYTES, DocumentInvalid, load_yaml, problem_text
from apim.declarative.importer import config_import
from apim.management.base import ServiceCommand, get_tenant


class Command(ServiceCommand):
    help = "Import a declarative config document (YAML or JSON) into a tenant; idempotent."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug (the document never names one).")
        parser.add_argument("file", help="The document (YAML or JSON); - reads stdin.")
        parser.add_argument("--dry-run", action="store_true", help="Print the diff and write nothing.")
        parser.add_argument("--prune", action="store_true", help="Delete objects the file does not name.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        text = self._read(options["file"], options.get("stdin") or sys.stdin)
        try:
            result = config_import(
                tenant=tenant,
                document=load_yaml(text),
                actor=None,
                dry_run=options["dry_run"],
                prune=options["prune"],
                env=os.environ,
            )
        except DocumentInvalid as exc:
            for path, message in exc.problems:
                self.stderr.write(problem_text(path, message))
            count = len(exc.problems)
            noun = "problem" if count == 1 else "problems"
            raise CommandError(f"{count} {noun} in {options['file']}; nothing was changed.") from None
        self.stdout.write(result.text())

    def _read(self, name: str, stdin: Any) -> str:
        try:
            if name == "-":
                return stdin.read(MAX_DOCUMENT_BYTES + 1)
            with open(name, encoding="utf-8") as handle:
                return handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"Cannot read {name}: {exc.strerror}.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{name} is not UTF-8 text.") from None
