"""``manage.py api_lifecycle``: move an API through draft → published → deprecated → retired."""

from __future__ import annotations

from typing import Any

from apim.management.base import ServiceCommand, get_api, get_tenant, run_service
from apim.models import ApiStatus
from apim.services.catalog import api_transition

ACTIONS = {"publish": ApiStatus.PUBLISHED, "deprecate": ApiStatus.DEPRECATED, "retire": ApiStatus.RETIRED}


class Command(ServiceCommand):
    help = "Publish, deprecate or retire an API. Only draft→published→deprecated→retired is legal."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("name", help="API name (or NAME:VERSION).")
        parser.add_argument("action", choices=sorted(ACTIONS))
        parser.add_argument("--api-version", default=None, help="API version when the name has several.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        api = get_api(tenant, options["name"], options["api_version"])
        run_service(lambda: api_transition(api=api, to=ACTIONS[options["action"]], actor=None))
        self.say(f"API {api} is now {api.status}.", self.style.SUCCESS)
