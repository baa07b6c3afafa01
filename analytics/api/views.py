"""Analytics and raw usage records over REST: read-only, tenant-scoped, viewers may read.

``GET /api/v1/analytics/`` answers one query (time range, granularity,
API / consumer / application filters) from the rollups: a series, totals, top
APIs, top consumers and deny reasons; ``GET /api/v1/analytics/csv/`` is the
same query as CSV. ``GET /api/v1/usage-records/`` pages through raw records
(cursor pagination, newest first: no ``COUNT(*)`` over a partitioned table).
Developers are refused (like the audit trail): these show every consumer's traffic.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import pagination, renderers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import queries
from apim.api.schema import TENANT_PARAMETERS
from apim.api.viewsets import ERRORS, ListMixin, TenantViewSet
from apim.models import READER_ROLES

from . import serializers as s


class ReportSchema(AutoSchema):
    """The analytics ``list`` answers one report object, not a page of rows."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


class CsvRenderer(renderers.BaseRenderer):
    """Lets clients send ``Accept: text/csv``; errors still come as the JSON envelope's text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return json.dumps(data).encode()


def _query_params(view: TenantViewSet, serializer_class: Any) -> dict[str, Any]:
    serializer = serializer_class(data=view.request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def analytics_csv_response(report: queries.AnalyticsReport, *, filename: str) -> HttpResponse:
    """The report as a CSV download (shared with the admin page's export)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(queries.analytics_csv_rows(report))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def csv_filename(query: queries.AnalyticsQuery) -> str:
    return f"analytics-{query.tenant.slug}-{query.start:%Y%m%dT%H%M}-{query.end:%Y%m%dT%H%M}-{query.granularity}.csv"


class AnalyticsApi(TenantViewSet):
    noun = "analytics"
    read_roles = READER_ROLES
    schema = ReportSchema()
    pagination_class = None
    filter_backends: ClassVar[list] = []

    def _report(self) -> queries.AnalyticsReport:
        params = _query_params(self, s.AnalyticsQueryInputSerializer)
        query = queries.analytics_query_build(
            tenant=self.tenant,
            start=params.get("start"),
            end=params.get("end"),
            granularity=params.get("granularity"),
            api_id=params.get("api"),
            consumer_id=params.get("consumer"),
            application_id=params.get("application"),
            top=params.get("top"),
        )
        return queries.analytics_report(query)

    @extend_schema(
        tags=["analytics"],
        parameters=[*TENANT_PARAMETERS, s.AnalyticsQueryInputSerializer],
        responses={200: s.AnalyticsReportOutputSerializer, **ERRORS},
        summary="Requests, errors, latency percentiles and bytes over time, with top APIs, consumers and deny reasons",
    )
    def list(self, request: Request) -> Response:
        return Response(s.AnalyticsReportOutputSerializer(self._report()).data)

    @extend_schema(
        tags=["analytics"],
        parameters=[*TENANT_PARAMETERS, s.AnalyticsQueryInputSerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same report as CSV."),
            **ERRORS,
        },
        summary="The analytics report as CSV (series, totals, top lists; spreadsheet-formula safe)",
    )
    @action(detail=False, methods=["get"], url_path="csv", renderer_classes=[renderers.JSONRenderer, CsvRenderer])
    def csv(self, request: Request) -> HttpResponse:
        report = self._report()
        return analytics_csv_response(report, filename=csv_filename(report.query))


class UsageRecordCursor(pagination.CursorPagination):
    ordering = ("-timestamp", "-record_id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class UsageRecordApi(ListMixin, TenantViewSet):
    """Raw records, for drilling into what a chart shows. Never a key: records hold only its prefix."""

    noun = "usage records"
    read_roles = READER_ROLES
    output_serializer_class = s.UsageRecordOutputSerializer
    pagination_class = UsageRecordCursor
    filter_backends: ClassVar[list] = []

    def select(self, *, tenant: Any) -> Any:
        params = _query_params(self, s.UsageRecordQueryInputSerializer)
        return queries.usage_record_list(
            tenant=tenant,
            start=params.get("start"),
            end=params.get("end"),
            api_id=params.get("api"),
            consumer_id=params.get("consumer"),
            application_id=params.get("application"),
            status=params.get("status"),
            deny_reason=params.get("deny_reason"),
        )

    @extend_schema(
        tags=["analytics"],
        parameters=[*TENANT_PARAMETERS, s.UsageRecordQueryInputSerializer],
        responses={200: s.UsageRecordOutputSerializer(many=True), **ERRORS},
        summary="Raw usage records, newest first (cursor-paginated; at most 31 days per query)",
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
