"""Filters for the core resources.

Foreign keys filter by plain UUID (``UUIDFilter``), not ``ModelChoiceFilter``:
the latter checks the id exists in *any* tenant, which would tell a caller
that another tenant's id is real (400) where a missing one gives an empty page.
"""

from __future__ import annotations

import django_filters

from apim.models import API, AuditEvent, Route, Target


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


class AuditEventFilter(django_filters.FilterSet):
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["action", "object_type", "object_id", "actor"]
