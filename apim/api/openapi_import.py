"""POST /api/v1/apis/import-openapi/: the REST face of ``apim.services.openapi_import``.

The document arrives as the raw request body (``application/yaml``,
``application/json``, ``application/vnd.oai.openapi`` … any media type but
multipart) or as the ``file`` field of a ``multipart/form-data`` upload; the
options as query parameters (or form fields beside ``file``). Nothing is ever
fetched from a URL. A body over ``APIM_OPENAPI_MAX_BYTES`` is refused with 413
before it is parsed, read at most one byte past the limit.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from apim.exceptions import ApplicationError
from apim.openapi_documents import DocumentTooLarge
from apim.services.openapi_import import OpenApiImportResult, openapi_import

from .fields import ErrorEnvelopeSerializer
from .serializers import ApiOutputSerializer

# Multipart framing around the file: boundaries, part headers and the option fields.
_MULTIPART_SLACK = 64 * 1024


class OpenApiDocumentParser(BaseParser):
    """Any non-multipart body, kept as bytes (bounded): the service parses it strictly itself."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        if stream is None:
            return b""
        return stream.read(settings.APIM_OPENAPI_MAX_BYTES + 1)


class OpenApiImportOptionsSerializer(serializers.Serializer):
    api = serializers.CharField(
        required=False, max_length=64, help_text="API name to create or update (default: the slug of info.title)."
    )
    upstream = serializers.CharField(
        required=False, max_length=64, help_text="Upstream name or id in this tenant (never taken from servers)."
    )
    base_path = serializers.CharField(
        required=False, max_length=200, help_text="Base path (default: the API's current one, else /<name>)."
    )
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Validate and report the changes; write nothing."
    )


class OpenApiImportUploadSerializer(OpenApiImportOptionsSerializer):
    file = serializers.FileField(help_text="The OpenAPI 3.0/3.1 document, YAML or JSON.")


@extend_schema_serializer(component_name="OpenApiImportChange")
class OpenApiImportChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["api", "route", "policy"])
    action = serializers.ChoiceField(choices=["create", "update", "delete", "unchanged"])
    label = serializers.CharField(help_text="What changed, e.g. 'GET /pets'.")
    id = serializers.CharField(allow_null=True, help_text="The object's id (null on a dry run).")


class OpenApiImportOutputSerializer(serializers.Serializer):
    api = ApiOutputSerializer(allow_null=True, help_text="The API as imported (null on a dry run).")
    created = serializers.BooleanField(help_text="A new API was (or, on a dry run, would be) created.")
    dry_run = serializers.BooleanField()
    operations = serializers.IntegerField(help_text="Operations found in the document.")
    changes = OpenApiImportChangeSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


OPENAPI_IMPORT_PARAMETERS = [
    OpenApiParameter(
        name,
        OpenApiTypes.BOOL if name == "dry_run" else OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        required=False,
        description=str(field.help_text),
    )
    for name, field in OpenApiImportOptionsSerializer().fields.items()
]
OPENAPI_IMPORT_REQUEST = {
    "application/yaml": OpenApiTypes.STR,
    "application/json": OpenApiTypes.OBJECT,
    "multipart/form-data": OpenApiImportUploadSerializer,
}
OPENAPI_IMPORT_RESPONSES = {
    200: OpenApiResponse(OpenApiImportOutputSerializer, description="An existing API updated (or a dry run)."),
    201: OpenApiResponse(OpenApiImportOutputSerializer, description="A new API created."),
    413: OpenApiResponse(ErrorEnvelopeSerializer, description="The document is over APIM_OPENAPI_MAX_BYTES."),
}


def _document_and_options(request: Request) -> tuple[bytes, dict[str, Any]]:
    limit = settings.APIM_OPENAPI_MAX_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit + _MULTIPART_SLACK:
        message = f"The request is {length} bytes; the document limit is {limit} bytes (APIM_OPENAPI_MAX_BYTES)."
        raise DocumentTooLarge(message, [{"path": "", "message": message}])
    data = request.data
    options: dict[str, Any] = dict(request.query_params.items())
    upload = request.FILES.get("file") if hasattr(request, "FILES") else None
    if upload is not None:
        raw = upload.read(limit + 1)
        options.update({k: v for k, v in data.items() if k in OpenApiImportOptionsSerializer().fields})
    elif isinstance(data, bytes):
        raw = data
    else:
        raw = b""
    if not raw:
        raise ApplicationError(
            "Send the OpenAPI document as the request body (YAML or JSON) or as the multipart field 'file'.",
            code="validation_error",
            details={"file": ["No document was sent."]},
        )
    serializer = OpenApiImportOptionsSerializer(data=options)
    serializer.is_valid(raise_exception=True)
    return raw, dict(serializer.validated_data)


def import_openapi_response(request: Request, *, tenant: Any, actor: Any, context: dict[str, Any]) -> Response:
    raw, options = _document_and_options(request)
    result: OpenApiImportResult = openapi_import(
        tenant=tenant,
        raw=raw,
        api_name=options.get("api"),
        upstream=options.get("upstream"),
        base_path=options.get("base_path"),
        dry_run=options["dry_run"],
        actor=actor,
    )
    body = {
        "api": None if result.dry_run else ApiOutputSerializer(result.api, context=context).data,
        "created": result.created,
        "dry_run": result.dry_run,
        "operations": result.operations,
        "changes": [
            {"kind": c.kind, "action": c.action, "label": c.label, "id": None if result.dry_run else c.id}
            for c in result.changes
        ],
        "warnings": result.warnings,
    }
    created = result.created and not result.dry_run
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
