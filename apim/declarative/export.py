"""Export: a tenant's catalog as a declarative document, secrets redacted.

The document is deterministic (objects sorted by their natural keys, every
field written, defaults included), so exporting twice gives the same bytes and
a round trip through an empty tenant gives the same document back. Consumers,
applications, keys and subscriptions are not part of it (the issue scopes the
file to APIs, upstreams, targets, policies and plans), so policies attached to
a consumer or to an API+consumer pair are left out too: they would name
objects the file does not hold.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from apim.models import API, Route, Target, Tenant, Upstream
from consumers.models import Plan
from policies.models import PolicyAttachment

from .document import API_KIND, FORMAT_VERSION, PLAN, POLICY, ROUTE, TARGET, UPSTREAM, Kind
from .secrets import redact


def _fields(kind: Kind, obj: Any) -> dict[str, Any]:
    out = {name: getattr(obj, name) for name in (*kind.key, *kind.fields)}
    if kind is POLICY:
        out["config"] = redact(obj.policy, obj.config)
    return out


def config_export(*, tenant: Tenant) -> dict[str, Any]:
    """The tenant's APIs (routes, API policies), upstreams (targets), plans and tenant-wide policies."""
    targets: dict[Any, list[Target]] = defaultdict(list)
    for target in Target.objects.filter(tenant=tenant).order_by("url"):
        targets[target.upstream_id].append(target)
    routes: dict[Any, list[Route]] = defaultdict(list)
    for route in Route.objects.filter(tenant=tenant):
        routes[route.api_id].append(route)
    api_policies: dict[Any, list[PolicyAttachment]] = defaultdict(list)
    tenant_policies: list[PolicyAttachment] = []
    for attachment in PolicyAttachment.objects.filter(tenant=tenant, consumer__isnull=True).order_by("policy"):
        if attachment.api_id is None:
            tenant_policies.append(attachment)
        else:
            api_policies[attachment.api_id].append(attachment)

    upstreams = []
    names: dict[Any, str] = {}
    for upstream in Upstream.objects.filter(tenant=tenant).order_by("name"):
        names[upstream.pk] = upstream.name
        entry = _fields(UPSTREAM, upstream)
        entry["targets"] = [_fields(TARGET, target) for target in targets[upstream.pk]]
        upstreams.append(entry)
    apis = []
    for api in API.objects.filter(tenant=tenant).order_by("name", "version"):
        entry = _fields(API_KIND, api)
        entry["upstream"] = names.get(api.upstream_id)
        entry["status"] = api.status
        ordered = sorted(routes[api.pk], key=lambda r: (r.path, r.methods, r.name, not r.enabled))
        entry["routes"] = [_fields(ROUTE, route) for route in ordered]
        entry["policies"] = [_fields(POLICY, attachment) for attachment in api_policies[api.pk]]
        apis.append(entry)
    return {
        "format_version": FORMAT_VERSION,
        "upstreams": upstreams,
        "apis": apis,
        "plans": [_fields(PLAN, plan) for plan in Plan.objects.filter(tenant=tenant).order_by("name")],
        "policies": [_fields(POLICY, attachment) for attachment in tenant_policies],
    }
