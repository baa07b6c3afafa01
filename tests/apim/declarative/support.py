"""A catalog of every kind the declarative document holds, built through the services; a state fingerprint."""

from __future__ import annotations

from apim.models import API, AuditEvent, Route, Target, Tenant, Upstream
from apim.services import catalog
from consumers import services as consumer_services
from consumers.models import Plan
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save

JWT_SECRET = "s3cret-hs256-key-that-is-long-enough-0123456789"
UPSTREAM_TOKEN = "Bearer upstream-credential-abcdef"


def build_catalog(tenant: Tenant) -> dict:
    """Two upstreams, three APIs (published, draft, retired), routes, policies at both scopes, plans,
    and a consumer with a key and a subscription (which the document must never carry)."""
    up = catalog.upstream_create(
        tenant=tenant,
        actor=None,
        name="orders-up",
        description="Orders backends",
        load_balancing="weighted_round_robin",
        retries=2,
        targets=["http://127.0.0.1:9101"],
    )
    catalog.target_save(
        target=Target(tenant=tenant, upstream=up, url="http://127.0.0.1:9102", weight=5, enabled=False), actor=None
    )
    spare = catalog.upstream_create(tenant=tenant, actor=None, name="spare", healthcheck_enabled=True)
    orders = catalog.api_create(
        tenant=tenant,
        actor=None,
        name="orders",
        title="Orders",
        base_path="/orders",
        hosts=["API.Example.com."],
        upstream=up,
    )
    catalog.route_save(route=Route(tenant=tenant, api=orders, path="/items", methods=["get"]), actor=None)
    catalog.route_save(
        route=Route(tenant=tenant, api=orders, path="/items/detail", methods=["POST", "GET"], name="detail"), actor=None
    )
    catalog.api_publish(api=orders, actor=None)
    draft = catalog.api_create(
        tenant=tenant, actor=None, name="orders", version="v2", title="Orders 2", base_path="/orders2", upstream=spare
    )
    old = catalog.api_create(tenant=tenant, actor=None, name="legacy", title="Legacy", base_path="/legacy", upstream=up)
    for step in (catalog.api_publish, catalog.api_deprecate, catalog.api_retire):
        step(api=old, actor=None)
    policy_attachment_save(
        attachment=PolicyAttachment(
            tenant=tenant, api=orders, policy="cors", config={"origins": ["https://shop.example.com"]}
        ),
        actor=None,
    )
    policy_attachment_save(
        attachment=PolicyAttachment(
            tenant=tenant,
            api=orders,
            policy="jwt",
            config={"algorithms": ["HS256"], "keys": [{"kid": "k1", "secret": JWT_SECRET}]},
        ),
        actor=None,
    )
    policy_attachment_save(
        attachment=PolicyAttachment(
            tenant=tenant,
            api=draft,
            policy="request-transformer",
            config={"add": {"headers": {"Authorization": UPSTREAM_TOKEN, "X-Team": "orders"}}},
        ),
        actor=None,
    )
    policy_attachment_save(
        attachment=PolicyAttachment(tenant=tenant, policy="ip-restriction", config={"allow": ["10.0.0.0/8"]}),
        actor=None,
    )
    gold = consumer_services.plan_create(
        tenant=tenant,
        name="gold",
        actor=None,
        rate_limit_per_second=10,
        quota_per_month=100_000,
        quota_timezone="Europe/Paris",
    )
    consumer_services.plan_create(tenant=tenant, name="free", actor=None, requires_approval=True, is_public=False)
    consumer = consumer_services.consumer_create(tenant=tenant, name="acme", actor=None)
    application = consumer_services.application_create(consumer=consumer, name="shop", actor=None)
    issued = consumer_services.api_key_issue(application=application, actor=None)
    consumer_services.subscription_create(application=application, api=orders, plan=gold, actor=None)
    policy_attachment_save(
        attachment=PolicyAttachment(
            tenant=tenant, consumer=consumer, policy="rate-limit", config={"limits": {"second": 5}}
        ),
        actor=None,
    )
    return {"orders": orders, "draft": draft, "legacy": old, "upstream": up, "spare": spare, "key": issued}


def db_state(tenant: Tenant) -> dict:
    """Every row the document governs (and the audit trail and config version), for 'nothing changed' checks."""

    def rows(model, *fields):
        return sorted(tuple(str(v) for v in row) for row in model.objects.filter(tenant=tenant).values_list(*fields))

    tenant.refresh_from_db()
    return {
        "upstreams": rows(Upstream, "pk", "name", "description", "retries", "updated_at"),
        "targets": rows(Target, "pk", "url", "weight", "enabled", "updated_at"),
        "apis": rows(API, "pk", "name", "version", "title", "status", "upstream_id", "updated_at"),
        "routes": rows(Route, "pk", "path", "methods", "name", "enabled", "updated_at"),
        "policies": rows(PolicyAttachment, "pk", "policy", "config", "enabled", "api_id", "consumer_id", "updated_at"),
        "plans": rows(Plan, "pk", "name", "rate_limit_per_second", "updated_at"),
        "audit": AuditEvent.objects.filter(tenant=tenant).count(),
        "config_version": tenant.config_version,
    }
