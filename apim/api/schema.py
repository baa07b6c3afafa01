"""drf-spectacular extensions: document our auth class and the tenant selector once."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apim.api.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A personal access token, `apimpat_…` (see POST /api/v1/tokens/ or `manage.py token_issue`)."
            ),
        }


TENANT_PARAMETERS = [
    OpenApiParameter(
        "X-Apim-Tenant",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=False,
        description="The tenant's slug. Optional when you belong to exactly one tenant.",
    ),
    OpenApiParameter(
        "tenant",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        required=False,
        description="The tenant's slug (alternative to the X-Apim-Tenant header).",
    ),
]

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe create: the same key and body within 24 h replays the first response; "
    "a different body is refused with 409. Secrets (key and token plaintexts) are not replayed.",
)
