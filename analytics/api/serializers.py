"""Request and response shapes of the analytics and usage-record endpoints.

The input serializers only type the query string; ``analytics.queries`` owns
the rules (defaults, granularity choice, bounds) so the admin page and the
REST API answer the same query the same way. The report serializer is also
what the admin page hands to its charts, so both show the same numbers.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from analytics.models import UsageRecord
from analytics.queries import DEFAULT_TOP, GRANULARITIES, MAX_TOP


class AnalyticsQueryInputSerializer(serializers.Serializer):
    start = serializers.DateTimeField(
        required=False, help_text="Range start (ISO 8601 with a time zone). Default: 24 hours before end."
    )
    end = serializers.DateTimeField(required=False, help_text="Range end, exclusive (ISO 8601). Default: now.")
    granularity = serializers.ChoiceField(
        choices=GRANULARITIES,
        required=False,
        help_text="Bucket size. Default: the finest giving at most 720 points; more than 1500 points is refused.",
    )
    api = serializers.UUIDField(required=False, help_text="Only this API's traffic.")
    consumer = serializers.UUIDField(required=False, help_text="Only this consumer's traffic.")
    application = serializers.UUIDField(required=False, help_text="Only this application's traffic.")
    top = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_TOP, help_text=f"Length of the top-N lists (default {DEFAULT_TOP})."
    )


@extend_schema_serializer(component_name="AnalyticsPoint")
class AnalyticsPointSerializer(serializers.Serializer):
    bucket_start = serializers.DateTimeField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Answers with status >= 400, or none at all.")
    error_rate = serializers.FloatField(allow_null=True, help_text="errors / requests; null without requests.")
    p50 = serializers.FloatField(allow_null=True, help_text="Median total latency, ms (bucket-interpolated).")
    p95 = serializers.FloatField(allow_null=True, help_text="95th percentile latency, ms.")
    p99 = serializers.FloatField(allow_null=True, help_text="99th percentile latency, ms.")
    avg_latency_ms = serializers.FloatField(allow_null=True)
    bytes_in = serializers.IntegerField()
    bytes_out = serializers.IntegerField()


@extend_schema_serializer(component_name="AnalyticsTopRow")
class AnalyticsTopRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The API or consumer id, or the deny reason.")
    name = serializers.CharField(allow_null=True, help_text="Its name; null when the object was deleted.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    bytes_in = serializers.IntegerField()
    bytes_out = serializers.IntegerField()


@extend_schema_serializer(component_name="AnalyticsQueryEcho")
class AnalyticsQueryOutputSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    granularity = serializers.CharField()
    points = serializers.IntegerField()
    api = serializers.UUIDField(source="api_id", allow_null=True)
    consumer = serializers.UUIDField(source="consumer_id", allow_null=True)
    application = serializers.UUIDField(source="application_id", allow_null=True)
    top = serializers.IntegerField()


@extend_schema_serializer(component_name="AnalyticsReport")
class AnalyticsReportOutputSerializer(serializers.Serializer):
    query = AnalyticsQueryOutputSerializer()
    totals = AnalyticsPointSerializer()
    series = AnalyticsPointSerializer(many=True)
    top_apis = AnalyticsTopRowSerializer(many=True)
    top_consumers = AnalyticsTopRowSerializer(many=True)
    deny_reasons = AnalyticsTopRowSerializer(many=True)


class UsageRecordQueryInputSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="Default: 24 hours before end. At most 31 days.")
    end = serializers.DateTimeField(required=False, help_text="Exclusive. Default: now.")
    api = serializers.UUIDField(required=False)
    consumer = serializers.UUIDField(required=False)
    application = serializers.UUIDField(required=False)
    status = serializers.IntegerField(required=False, min_value=0, max_value=999)
    deny_reason = serializers.CharField(required=False, max_length=64)


class UsageRecordOutputSerializer(serializers.ModelSerializer):
    """A raw record. ``key_prefix`` is all a record knows of a key."""

    id = serializers.CharField(source="record_id", read_only=True)

    class Meta:
        model = UsageRecord
        fields = [
            "id",
            "timestamp",
            "request_id",
            "api_id",
            "api_version",
            "route",
            "consumer_id",
            "application_id",
            "key_prefix",
            "method",
            "path",
            "status",
            "deny_reason",
            "latency_us",
            "upstream_latency_us",
            "gateway_latency_us",
            "bytes_in",
            "bytes_out",
            "client_ip",
            "user_agent",
            "upstream_target",
        ]
        read_only_fields = fields
