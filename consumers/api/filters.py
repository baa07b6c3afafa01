"""Filters for consumer resources; foreign keys by plain UUID (see ``apim.api.filters``)."""

from __future__ import annotations

import django_filters

from consumers.models import APIKey, Application, Consumer, Subscription


class ConsumerFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Consumer
        fields = ["status", "name"]


class ApplicationFilter(django_filters.FilterSet):
    consumer = django_filters.UUIDFilter(field_name="consumer_id")

    class Meta:
        model = Application
        fields = ["consumer", "name"]


class ApiKeyFilter(django_filters.FilterSet):
    application = django_filters.UUIDFilter(field_name="application_id")
    consumer = django_filters.UUIDFilter(field_name="consumer_id")

    class Meta:
        model = APIKey
        fields = ["application", "consumer", "active", "prefix"]


class SubscriptionFilter(django_filters.FilterSet):
    application = django_filters.UUIDFilter(field_name="application_id")
    api = django_filters.UUIDFilter(field_name="api_id")
    plan = django_filters.UUIDFilter(field_name="plan_id")

    class Meta:
        model = Subscription
        fields = ["status", "application", "api", "plan"]
