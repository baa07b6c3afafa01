"""Consumers, applications, keys, plans and subscriptions over REST.

Developers manage only the applications and keys of consumers whose ``user``
is them: ``owner_field`` narrows every queryset (another consumer's objects
are simply not found) and the input fields offer only their own consumers and
applications. Key plaintexts appear once, in the issue or rotate response.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apim.api.viewsets import (
    CreateMixin,
    DestroyMixin,
    ListMixin,
    RetrieveMixin,
    TenantViewSet,
    UpdateMixin,
    action_schema,
    apply_fields,
    documented,
)
from apim.models import OPERATOR_ROLES, Role, Tenant
from consumers import selectors, services
from consumers.models import APIKey, Application, Consumer, Plan, Subscription

from . import filters
from . import serializers as s

DEVELOPER_WRITES = (*OPERATOR_ROLES, Role.DEVELOPER)


@documented(["consumers"])
class ConsumerApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "consumers"
    owner_field = "user"
    output_serializer_class = s.ConsumerOutputSerializer
    create_serializer_class = s.ConsumerInputSerializer
    update_serializer_class = s.ConsumerInputSerializer
    filterset_class = filters.ConsumerFilter
    ordering_fields = ["name", "status", "created_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Consumer]:
        return selectors.consumer_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Consumer:
        return services.consumer_create(tenant=self.tenant, actor=self.actor, **data)

    def perform_update(self, instance: Consumer, data: dict[str, Any]) -> Consumer:
        return services.consumer_save(consumer=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: Consumer) -> None:
        services.consumer_delete(consumer=instance, actor=self.actor)

    @action_schema(["consumers"], response=s.ConsumerOutputSerializer, summary="Suspend (its keys stop at once)")
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, pk: str) -> Response:
        return Response(self.output(services.consumer_suspend(consumer=self.get_object(), actor=self.actor)))

    @action_schema(["consumers"], response=s.ConsumerOutputSerializer, summary="Re-activate a suspended consumer")
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str) -> Response:
        return Response(self.output(services.consumer_activate(consumer=self.get_object(), actor=self.actor)))


@documented(["applications"])
class ApplicationApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "applications"
    owner_field = "consumer__user"
    write_roles = DEVELOPER_WRITES
    output_serializer_class = s.ApplicationOutputSerializer
    create_serializer_class = s.ApplicationInputSerializer
    update_serializer_class = s.ApplicationUpdateInputSerializer
    filterset_class = filters.ApplicationFilter
    ordering_fields = ["name", "created_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Application]:
        return selectors.application_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Application:
        consumer = data.pop("consumer")
        return services.application_create(consumer=consumer, actor=self.actor, **data)

    def perform_update(self, instance: Application, data: dict[str, Any]) -> Application:
        return services.application_save(application=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: Application) -> None:
        services.application_delete(application=instance, actor=self.actor)


@documented(["keys"], create_response=s.ApiKeyIssuedOutputSerializer)
class ApiKeyApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    """Issue returns the plaintext once; Idempotency-Key replays carry ``key: null`` (never stored)."""

    noun = "API keys"
    owner_field = "consumer__user"
    write_roles = DEVELOPER_WRITES
    action_roles = {"destroy": OPERATOR_ROLES}
    secret_fields = ("key",)
    output_serializer_class = s.ApiKeyOutputSerializer
    create_serializer_class = s.ApiKeyIssueInputSerializer
    update_serializer_class = s.ApiKeyUpdateInputSerializer
    filterset_class = filters.ApiKeyFilter
    ordering_fields = ["created_at", "expires_at", "name", "last_used_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[APIKey]:
        return selectors.api_key_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> services.IssuedKey:
        return services.api_key_issue(actor=self.actor, **data)

    def created_output(self, instance: services.IssuedKey) -> Any:
        return self._issued(instance)

    def _issued(self, issued: services.IssuedKey) -> Any:
        context = {**self.get_serializer_context(), "plaintext": issued.plaintext}
        return s.ApiKeyIssuedOutputSerializer(issued.key, context=context).data

    def perform_update(self, instance: APIKey, data: dict[str, Any]) -> APIKey:
        return services.api_key_update(key=instance, actor=self.actor, **data)

    def perform_destroy(self, instance: APIKey) -> None:
        services.api_key_delete(key=instance, actor=self.actor)

    @action_schema(
        ["keys"],
        request=s.ApiKeyRotateInputSerializer,
        response=s.ApiKeyIssuedOutputSerializer,
        summary="Rotate: a successor key (plaintext shown once); the old one lives for the grace period",
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str) -> Response:
        key = self.get_object()
        data = self.validated(s.ApiKeyRotateInputSerializer)
        grace = timedelta(seconds=data["grace_seconds"]) if "grace_seconds" in data else None
        return Response(self._issued(services.api_key_rotate(key=key, actor=self.actor, grace=grace)))

    @action_schema(["keys"], response=s.ApiKeyOutputSerializer, summary="Revoke: the key stops at once")
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        return Response(self.output(services.api_key_revoke(key=self.get_object(), actor=self.actor)))


@documented(["plans"])
class PlanApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "plans"
    output_serializer_class = s.PlanOutputSerializer
    create_serializer_class = s.PlanInputSerializer
    update_serializer_class = s.PlanInputSerializer
    filterset_fields = ["requires_approval", "is_public", "name"]
    ordering_fields = ["name", "created_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Plan]:
        return selectors.plan_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Plan:
        return services.plan_create(tenant=self.tenant, actor=self.actor, **data)

    def perform_update(self, instance: Plan, data: dict[str, Any]) -> Plan:
        return services.plan_save(plan=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: Plan) -> None:
        services.plan_delete(plan=instance, actor=self.actor)


def _subscription_action(verb: str, summary: str):  # type: ignore[no-untyped-def]
    service = getattr(services, f"subscription_{verb}", None)

    def handler(self: SubscriptionApi, request: Request, pk: str) -> Response:
        subscription = self.get_object()
        if service is None:  # resume: suspended → active
            changed = services.subscription_transition(subscription=subscription, to="active", actor=self.actor)
        else:
            changed = service(subscription=subscription, actor=self.actor)
        return Response(self.output(changed))

    # DRF maps the HTTP method to the function's name, so name it before decorating.
    handler.__name__ = handler.__qualname__ = verb
    handler = action(detail=True, methods=["post"])(handler)
    return action_schema(["subscriptions"], response=s.SubscriptionOutputSerializer, summary=summary)(handler)


@documented(["subscriptions"])
class SubscriptionApi(ListMixin, RetrieveMixin, CreateMixin, TenantViewSet):
    noun = "subscriptions"
    owner_field = "application__consumer__user"
    output_serializer_class = s.SubscriptionOutputSerializer
    create_serializer_class = s.SubscriptionCreateInputSerializer
    filterset_class = filters.SubscriptionFilter
    ordering_fields = ["created_at", "status", "decided_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Subscription]:
        return selectors.subscription_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Subscription:
        return services.subscription_create(actor=self.actor, **data)

    approve = _subscription_action("approve", "Approve a pending subscription")
    reject = _subscription_action("reject", "Reject a pending subscription")
    suspend = _subscription_action("suspend", "Suspend an active subscription")
    resume = _subscription_action("resume", "Resume a suspended subscription")
    cancel = _subscription_action("cancel", "Cancel a subscription (final)")
