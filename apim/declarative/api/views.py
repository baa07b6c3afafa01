"""Declarative config over REST: ``GET /api/v1/config/export/`` and ``POST /api/v1/config/import/``.

Export is for readers (owner, admin, viewer; secrets are redacted, so a viewer
learns nothing the policy list does not show); import is for the tenant's
operators. The tenant is always the caller's (``resolve_tenant``); the document
names none, and a name in it never resolves outside the tenant. ``${ENV}``
secret references are refused here (see ``apim.declarative.secrets``).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import yaml
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, renderers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apim.api.fields import ErrorEnvelopeSerializer
from apim.api.schema import TENANT_PARAMETERS
from apim.api.viewsets import ERRORS, WRITE_ERRORS, TenantViewSet
from apim.declarative.document import MAX_DOCUMENT_BYTES, dump_yaml, load_yaml
from apim.declarative.export import config_export
from apim.declarative.importer import config_import
from apim.exceptions import ApplicationError
from apim.models import OPERATOR_ROLES, READER_ROLES

from . import serializers as s


class DocumentTooLarge(ApplicationError):
    code = "document_too_large"
    status = 413


class YamlParser(parsers.BaseParser):
    """A YAML request body (safe loading, no aliases, size-capped)."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = stream.read(MAX_DOCUMENT_BYTES + 1) if stream is not None else b""
        return load_yaml(data)


class XYamlParser(YamlParser):
    media_type = "application/x-yaml"


class TextYamlParser(YamlParser):
    media_type = "text/yaml"


class YamlRenderer(renderers.BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        plain = json.loads(json.dumps(data, default=str))  # DRF's ErrorDetail is a str subclass YAML cannot dump
        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True).encode()


def _wants_json(request: Request) -> bool:
    """YAML unless the client asked for JSON by name (``Accept: application/json`` or ``?format=json``)."""
    if getattr(request.accepted_renderer, "format", None) != "json":
        return False
    return "json" in request.headers.get("Accept", "") or request.query_params.get("format") == "json"


class DeclarativeConfigApi(TenantViewSet):
    """The tenant's catalog as one declarative document (like Kong's decK): export it, import it."""

    noun = "the declarative config"
    read_roles = READER_ROLES
    write_roles = OPERATOR_ROLES
    pagination_class = None
    filter_backends: ClassVar[list] = []
    # JSON first: errors and plain clients get the envelope as JSON; the export itself defaults to YAML.
    renderer_classes: ClassVar[list] = [renderers.JSONRenderer, YamlRenderer]
    parser_classes: ClassVar[list] = [parsers.JSONParser, YamlParser, XYamlParser, TextYamlParser]

    @extend_schema(
        tags=["config"],
        parameters=list(TENANT_PARAMETERS),
        responses={
            (200, "application/yaml"): OpenApiResponse(OpenApiTypes.OBJECT, description="The document (YAML)."),
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The document (JSON)."),
            **ERRORS,
        },
        summary="Export the tenant's APIs, routes, upstreams, targets, policies and plans (secrets redacted)",
    )
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> Response | HttpResponse:
        document = config_export(tenant=self.tenant)
        if _wants_json(request):
            return Response(document)
        response = HttpResponse(dump_yaml(document), content_type="application/yaml; charset=utf-8")
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(
        tags=["config"],
        parameters=[*TENANT_PARAMETERS, s.ConfigImportQuerySerializer],
        request={
            "application/yaml": OpenApiTypes.OBJECT,
            "application/json": OpenApiTypes.OBJECT,
        },
        responses={
            200: s.ConfigImportOutputSerializer,
            **WRITE_ERRORS,
            413: OpenApiResponse(ErrorEnvelopeSerializer, description="The document is too large."),
        },
        summary="Import a declarative config document: validate it whole, then apply the diff in one transaction",
        description=(
            "Idempotent: importing the same document twice changes nothing. Objects the document does not name "
            "are kept (op 'keep') unless prune=true. An invalid document is refused with 400 invalid_config, "
            "details mapping each field path (e.g. apis[2].routes[0].methods) to its messages; nothing is written."
        ),
    )
    @action(detail=False, methods=["post"], url_path="import")
    def import_config(self, request: Request) -> Response:
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > MAX_DOCUMENT_BYTES:
            raise DocumentTooLarge(f"The document is larger than {MAX_DOCUMENT_BYTES} bytes.")
        query = s.ConfigImportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = config_import(
            tenant=self.tenant,
            document=request.data,
            actor=self.actor,
            dry_run=query.validated_data["dry_run"],
            prune=query.validated_data["prune"],
            env=None,
        )
        return Response(result.as_dict())
