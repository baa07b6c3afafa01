"""``manage.py api_lifecycle``: move an API through draft → published → deprecated → retired.

The legality of each move (and the publish preconditions: an upstream with an
enabled target) is the service's; this command only resolves names and
reports the service's refusal word for word.
"""

from __future__ import annotations

from typing import Any

from apim.management.base import ServiceCommand, get_api, get_tenant
from apim.models import ApiStatus
from apim.services.catalog import api_transition

ACTIONS = {"publish": ApiStatus.PUBLISHED, "deprecate": ApiStatus.DEPRECATED, "retire": ApiStatus.RETIRED}


class Command(ServiceCommand):
    help = "Publish, deprecate or retire an API. Only draft → published → deprecated → retired is legal."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        # ``--version`` means the API's version here, replacing Django's "print Django's version".
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("name", help="API name, or NAME:VERSION.")
        parser.add_argument("action", choices=list(ACTIONS))
        parser.add_argument(
            "--version", "--api-version", dest="api_version", default=None, help="API version (e.g. v2)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        api = get_api(tenant, options["name"], options["api_version"])
        was = api.status
        api_transition(api=api, to=ACTIONS[options["action"]], actor=None)
        self.success(f"API {api} of tenant {tenant.slug!r}: {was} → {api.status}.")
