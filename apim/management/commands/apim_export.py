"""``manage.py apim_export --tenant SLUG [-o FILE]``: the tenant's catalog as declarative YAML.

Secrets in policy configs are written as ``<redacted>`` (see
``apim.declarative.secrets``); keys, digests and tokens are never part of the
document at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apim.declarative.document import dump_yaml
from apim.declarative.export import config_export
from apim.management.base import ServiceCommand, get_tenant


class Command(ServiceCommand):
    help = "Export a tenant's APIs, routes, upstreams, targets, policies and plans as one YAML document."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("-o", "--output", default=None, help="Write to this file instead of stdout.")
        parser.add_argument("--format", choices=("yaml", "json"), default="yaml", help="Document format.")

    def handle(self, *args: Any, **options: Any) -> None:
        document = config_export(tenant=get_tenant(options["tenant"]))
        if options["format"] == "json":
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        else:
            text = dump_yaml(document)
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote tenant {options['tenant']!r} to {options['output']}.")
        else:
            self.stdout.write(text, ending="")
