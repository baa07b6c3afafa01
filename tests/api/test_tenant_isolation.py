"""Tenant isolation, generated from the URL conf.

For every endpoint and method under /api/v1/: tenant B's admin aimed at tenant
A's objects gets the same answer as for an id that does not exist (404 for
tenant resources), and nothing changes. A new endpoint whose basename is not
in ``OBJECT_FOR`` fails ``test_every_endpoint_is_covered``.
"""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.forms.models import model_to_dict

from apim.models import AuditEvent, IdempotencyRecord, PersonalAccessToken
from consumers.models import APIKey, Application, Consumer, Subscription
from tests.api.conftest import bearer
from tests.api.endpoints import endpoints

# basename → the key in TenantWorld.objects of the object the detail routes act on.
OBJECT_FOR = {
    "tenant": "tenant",
    "member": "member",
    "api": "api",
    "route": "route",
    "upstream": "upstream",
    "target": "target",
    "consumer": "consumer",
    "application": "application",
    "apikey": "apikey",
    "plan": "plan",
    "subscription": "subscription",
    "policy": "policy",
    "auditevent": "auditevent",
    "accesstoken": None,  # user-scoped: another user's token (see below)
    "analytics": None,  # aggregates, no objects: see test_lists_show_only_own_tenant
    "usagerecord": None,  # list only; records carry tenant_id, not a tenant foreign key
    "config": None,  # declarative export/import: no objects of its own, see test_lists_show_only_own_tenant
}
# Outside any tenant: a non-staff caller's writes are refused at list level (403) for any id.
USER_SCOPED = {"tenant", "accesstoken"}
HIJACK = {
    "name": "hijacked",
    "title": "hijacked",
    "description": "hijacked",
    "role": "owner",
    "enabled": False,
    "weight": 1,
    "organization": "hijacked",
    "config": {},
    "slug": "hijacked",
}
ENDPOINTS = endpoints()


def test_every_endpoint_is_covered():
    missing = sorted({e.basename for e in ENDPOINTS} - set(OBJECT_FOR))
    assert not missing, f"add these endpoints to the isolation suite: {missing}"


def _state(world_a):
    rows = {name: model_to_dict(obj) for name, obj in world_a.objects.items() if obj is not None}
    fresh = {}
    for name, obj in world_a.objects.items():
        if obj is None:
            continue
        stored = type(obj)._default_manager.filter(pk=obj.pk).first()
        fresh[name] = model_to_dict(stored) if stored is not None else None
    counts = tuple(
        m.objects.count()
        for m in (AuditEvent, APIKey, Application, Consumer, Subscription, PersonalAccessToken, IdempotencyRecord)
    )
    return fresh, counts, rows


def _call(client, endpoint, pk=None):
    method = getattr(client, endpoint.method)
    url = endpoint.url(pk)
    if endpoint.method in ("post", "patch", "put"):
        return method(url, HIJACK, format="json")
    return method(url)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.detail], ids=lambda e: e.id)
def test_other_tenants_object_is_not_found(endpoint, world_a, world_b):
    if endpoint.basename == "accesstoken":
        target_pk = PersonalAccessToken.objects.filter(user=world_a.users["owner"]).first().pk
    else:
        target_pk = world_a.objects[OBJECT_FOR[endpoint.basename]].pk
    # B's owner may do everything in B, so only isolation can stop it.
    attacker = world_b.client("owner")
    before = _state(world_a)[:2]
    foreign = _call(attacker, endpoint, target_pk)
    missing = _call(world_b.client("owner"), endpoint, uuid.uuid4())
    assert _state(world_a)[:2] == before, "a request against another tenant's object changed something"
    assert foreign.status_code == missing.status_code, foreign.content
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"]
    expected = 403 if endpoint.basename == "tenant" and endpoint.method != "get" else 404
    assert foreign.status_code == expected, foreign.content
    assert str(target_pk) not in foreign.json()["error"]["message"]


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.detail], ids=lambda e: e.id)
def test_other_tenant_cannot_be_selected(endpoint, world_a, world_b):
    """Naming tenant A while being a member of B only: the tenant is not found; nothing is created."""
    attacker = bearer(world_b.tokens["owner"], world_a.tenant)
    before = _state(world_a)[:2]
    response = _call(attacker, endpoint)
    if endpoint.basename in USER_SCOPED:
        # The caller may create their own token; tenant A's rows must stay as they were.
        assert _state(world_a)[0] == before[0]
    else:
        assert _state(world_a)[:2] == before
    if endpoint.basename in USER_SCOPED:
        # Not tenant-scoped: the header is irrelevant; the caller only ever sees their own rows.
        assert response.status_code in (200, 201, 400, 403), response.content
        if endpoint.method == "get":
            ids = {row["id"] for row in response.json()["results"]}
            assert str(world_a.tenant.pk) not in ids
        return
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "tenant_not_found"


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.detail and e.method == "get"], ids=lambda e: e.id)
def test_lists_show_only_own_tenant(endpoint, world_a, world_b):
    response = world_b.client("owner").get(endpoint.url())
    assert response.status_code == 200
    if endpoint.basename == "analytics":
        # Both worlds have the same traffic: B's sums must be B's alone, and A's ids never appear.
        body = response.content.decode()
        if endpoint.action == "list":
            assert response.json()["totals"]["requests"] == world_b.usage["requests"]
        else:
            totals = next(row for row in csv.DictReader(io.StringIO(body)) if row["section"] == "totals")
            assert int(totals["requests"]) == world_b.usage["requests"]
        for name in ("api", "consumer", "application"):
            assert str(world_a.objects[name].pk) not in body, f"{endpoint.id} leaks tenant A's {name}"
        assert str(world_b.objects["api"].pk) in body
        return
    if endpoint.basename == "config":
        # The export names objects by natural key: none of A's may appear, B's must.
        body = response.content.decode()
        for name in ("api", "upstream", "plan"):
            assert world_a.objects[name].name not in body, f"{endpoint.id} leaks tenant A's {name}"
            assert world_b.objects[name].name in body
        assert str(world_a.objects["target"].url) not in body
        return
    listed = {str(row["id"]) for row in response.json()["results"]}
    if endpoint.basename == "accesstoken":
        foreign = PersonalAccessToken.objects.filter(user__in=world_a.users.values())
    elif endpoint.basename == "tenant":
        foreign = type(world_a.tenant).objects.filter(pk=world_a.tenant.pk)
    elif endpoint.basename == "usagerecord":
        foreign = type(world_a.usage["record"]).objects.filter(tenant_id=world_a.tenant.pk)
        assert listed == {world_b.usage["record"].record_id}
    else:
        model = type(world_a.objects[OBJECT_FOR[endpoint.basename]])
        foreign = model._default_manager.filter(tenant=world_a.tenant)
    id_field = "record_id" if endpoint.basename == "usagerecord" else "pk"
    foreign_ids = {str(pk) for pk in foreign.values_list(id_field, flat=True)}
    assert foreign_ids, "the world has none of these to leak"
    assert not listed & foreign_ids, f"{endpoint.id} leaks tenant A's rows"


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/routes/", lambda a: {"api": str(a["api"].pk), "path": "/x"}),
        ("/api/v1/targets/", lambda a: {"upstream": str(a["upstream"].pk), "url": "http://127.0.0.1:9"}),
        ("/api/v1/applications/", lambda a: {"consumer": str(a["consumer"].pk), "name": "x"}),
        ("/api/v1/keys/", lambda a: {"application": str(a["application"].pk)}),
        ("/api/v1/apis/", lambda a: {"name": "x", "title": "x", "base_path": "/x", "upstream": str(a["upstream"].pk)}),
        (
            "/api/v1/subscriptions/",
            lambda a: {"application": str(a["application"].pk), "api": str(a["api"].pk), "plan": str(a["plan"].pk)},
        ),
        ("/api/v1/policies/", lambda a: {"policy": "cors", "api": str(a["api"].pk), "config": {}}),
    ],
)
def test_foreign_ids_in_bodies_are_refused_like_missing_ones(url, body, world_a, world_b):
    client = world_b.client("owner")
    before = _state(world_a)[:2]
    response = client.post(url, body(world_a.objects), format="json")
    assert response.status_code == 400, response.content
    assert "does not exist" in response.content.decode()
    assert _state(world_a)[:2] == before


def test_filters_by_foreign_ids_look_like_missing_ones(world_a, world_b):
    client = world_b.client("admin")
    foreign = client.get(f"/api/v1/routes/?api={world_a.objects['api'].pk}")
    missing = client.get(f"/api/v1/routes/?api={uuid.uuid4()}")
    assert foreign.status_code == missing.status_code == 200
    assert foreign.json()["count"] == missing.json()["count"] == 0
