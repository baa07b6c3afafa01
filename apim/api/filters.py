"""Filters for the core resources.

Foreign keys filter by plain UUID (``UUIDFilter``), not ``ModelChoiceFilter``:
the latter checks the id exists in *any* tenant, which would tell a caller
that another tenant's id is real (400) where a missing one gives an empty page.
"""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from apim.models import API, AuditEvent, Route, Target

MAX_UTC_OFFSET = timedelta(hours=14)  # Pacific/Kiritimati; the furthest any timezone is from UTC


class ApiFilter(django_filters.FilterSet):
    upstream = django_filters.UUIDFilter(field_name="upstream_id")
    name = django_filters.CharFilter()
    search = django_filters.CharFilter(field_name="title", lookup_expr="icontains")

    class Meta:
        model = API
        fields = ["status", "version", "name", "upstream"]


class RouteFilter(django_filters.FilterSet):
    api = django_filters.UUIDFilter(field_name="api_id")

    class Meta:
        model = Route
        fields = ["api", "enabled"]


class TargetFilter(django_filters.FilterSet):
    upstream = django_filters.UUIDFilter(field_name="upstream_id")

    class Meta:
        model = Target
        fields = ["upstream", "enabled"]


class RealOffsetIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, with a UTC offset no timezone has (beyond ±14:00) refused as invalid input.

    Python accepts offsets up to ±23:59, PostgreSQL only up to ±15:59: without
    this, ``?created_after=0111-05-06T03:43:42-17:35`` was a 500 there
    (schemathesis found it), where it should be a 400.
    """

    def to_python(self, value):  # type: ignore[no-untyped-def]
        parsed = super().to_python(value)
        offset = parsed.utcoffset() if parsed is not None else None
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise ValidationError("Enter a valid date/time: the UTC offset is beyond ±14:00.", code="invalid")
        return parsed


class RealOffsetIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = RealOffsetIsoDateTimeField


class AuditEventFilter(django_filters.FilterSet):
    created_after = RealOffsetIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = RealOffsetIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["action", "object_type", "object_id", "actor"]
