"""Viewer / developer / admin / owner / staff × every write endpoint (enumerated from the URL conf).

"Allowed" means the role check let the request through to the service: the
answer is 2xx, or a 400/409 from the service's own rules (e.g. deprecating a
draft). "Denied" is 403 with the envelope, and nothing changes.
"""

from __future__ import annotations

import pytest

from apim.models import AuditEvent, PersonalAccessToken
from tests.api.conftest import bearer
from tests.api.endpoints import UNSAFE, endpoints
from tests.factories import UserFactory

OPS = {"admin", "owner", "staff"}
ALL = {"viewer", "developer", "admin", "owner", "staff"}
ALLOWED = {
    "tenant": {"staff"},
    "member": {"owner", "staff"},
    "api": OPS,
    "route": OPS,
    "upstream": OPS,
    "target": OPS,
    "consumer": OPS,
    "application": OPS | {"developer"},
    "apikey": OPS | {"developer"},
    "apikey.destroy": OPS,
    "plan": OPS,
    "subscription": OPS,
    "policy": OPS,
    "accesstoken": ALL,
    "config": OPS,
}
# A developer acts on the objects of their own consumer; everyone else on the shared ones.
DEVELOPER_OBJECT = {"application": "dev_application", "apikey": "dev_apikey", "consumer": "dev_consumer"}
WRITES = [e for e in endpoints() if e.method in UNSAFE]


def _create_body(basename, objects, role, outsider):
    app = objects["dev_application"]
    return {
        "tenant": {"slug": "brandnew", "name": "Brand new"},
        "member": {"username": outsider.username, "role": "viewer"},
        "api": {"name": "newapi", "title": "New", "base_path": "/newapi"},
        "route": {"api": str(objects["api"].pk), "path": "/new"},
        "upstream": {"name": "newup"},
        "target": {"upstream": str(objects["upstream"].pk), "url": "http://127.0.0.1:9999"},
        "consumer": {"name": "newconsumer"},
        "application": {
            "consumer": str(objects["dev_consumer" if role == "developer" else "consumer"].pk),
            "name": "n",
        },
        "apikey": {"application": str(app.pk), "name": "new"},
        "plan": {"name": "newplan"},
        "subscription": {"application": str(app.pk), "api": str(objects["api"].pk), "plan": str(objects["plan"].pk)},
        "policy": {"policy": "cors", "config": {}},
        "accesstoken": {"name": "new"},
    }[basename]


UPDATE_BODY = {
    "tenant": {"name": "Renamed"},
    "member": {"role": "admin"},
    "api": {"title": "Renamed"},
    "route": {"name": "renamed"},
    "upstream": {"description": "changed"},
    "target": {"weight": 5},
    "consumer": {"organization": "changed"},
    "application": {"description": "changed"},
    "apikey": {"name": "renamed"},
    "plan": {"description": "changed"},
    "policy": {"enabled": False},
}


@pytest.mark.parametrize("role", sorted(ALL))
@pytest.mark.parametrize("endpoint", WRITES, ids=lambda e: e.id)
def test_role_matrix(endpoint, role, world_a, staff):
    if role == "staff":
        user, token = staff
    else:
        user, token = world_a.users[role], world_a.tokens[role]
    client = bearer(token, world_a.tenant)
    objects = world_a.objects
    if endpoint.basename == "accesstoken":
        pk = PersonalAccessToken.objects.filter(user=user).first().pk
    elif endpoint.basename == "tenant":
        pk = world_a.tenant.pk
    elif not endpoint.detail and endpoint.action != "create":
        pk = None  # a collection action (config import): no object
    else:
        name = DEVELOPER_OBJECT.get(endpoint.basename, endpoint.basename) if role == "developer" else endpoint.basename
        pk = objects[name].pk
    if endpoint.action == "create":
        body = _create_body(endpoint.basename, objects, role, UserFactory())
    elif endpoint.action == "partial_update":
        body = UPDATE_BODY[endpoint.basename]
    else:
        body = {}
    url = endpoint.url(pk) if endpoint.detail else endpoint.url()
    audit_before = AuditEvent.objects.count()
    response = getattr(client, endpoint.method)(url, body, format="json")
    allowed = ALLOWED.get(f"{endpoint.basename}.{endpoint.action}", ALLOWED[endpoint.basename])
    if role in allowed:
        assert response.status_code in (200, 201, 204, 400, 409), (response.status_code, response.content)
        if response.status_code in (400, 409):
            assert response.json()["error"]["code"] != "permission_denied"
    else:
        assert response.status_code == 403, (response.status_code, response.content)
        assert response.json()["success"] is False
        assert response.json()["error"]["code"] == "permission_denied"
        assert AuditEvent.objects.count() == audit_before


def test_allowed_writes_mostly_succeed(world_a):
    """Guard against a matrix that 'passes' because every allowed call fails validation."""
    client = world_a.client("admin")
    assert client.post("/api/v1/plans/", {"name": "fine"}, format="json").status_code == 201
    assert client.patch(f"/api/v1/apis/{world_a.objects['api'].pk}/", {"title": "T"}, format="json").status_code == 200


def test_developer_cannot_touch_other_consumers_applications(world_a):
    client = world_a.client("developer")
    app = world_a.objects["application"]
    assert client.get(f"/api/v1/applications/{app.pk}/").status_code == 404
    assert client.patch(f"/api/v1/applications/{app.pk}/", {"name": "x"}, format="json").status_code == 404
    listed = {row["id"] for row in client.get("/api/v1/applications/").json()["results"]}
    assert listed == {str(world_a.objects["dev_application"].pk)}
    refused = client.post("/api/v1/keys/", {"application": str(app.pk)}, format="json")
    assert refused.status_code == 400
    assert "application" in refused.json()["error"]["details"]


def test_viewer_reads(world_a):
    client = world_a.client("viewer")
    for path in ("apis", "upstreams", "targets", "consumers", "keys", "plans", "subscriptions", "policies"):
        assert client.get(f"/api/v1/{path}/").status_code == 200, path
    assert client.get("/api/v1/audit-events/").status_code == 200
    assert world_a.client("developer").get("/api/v1/audit-events/").status_code == 403
    # Analytics show every consumer's traffic: viewers read them, developers (like the audit trail) do not.
    for path in ("analytics/", "analytics/csv/", "usage-records/"):
        assert client.get(f"/api/v1/{path}").status_code == 200, path
        assert world_a.client("developer").get(f"/api/v1/{path}").status_code == 403, path
