"""GET /api/v1/config/export/ and POST /api/v1/config/import/: formats, roles, diffs, errors, tenants."""

from __future__ import annotations

import json

import yaml

from apim.declarative.export import config_export
from apim.models import API, AuditEvent
from consumers.models import Plan
from tests.apim.declarative.support import JWT_SECRET, build_catalog, db_state

EXPORT = "/api/v1/config/export/"
IMPORT = "/api/v1/config/import/"


def test_export_is_yaml_by_default_and_json_on_request(world_a):
    build_catalog(world_a.tenant)
    client = world_a.client("viewer")  # viewers may export
    response = client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    assert JWT_SECRET not in text
    assert yaml.safe_load(text) == config_export(tenant=world_a.tenant)
    as_json = client.get(EXPORT, HTTP_ACCEPT="application/json")
    assert as_json["Content-Type"].startswith("application/json")
    assert as_json.json() == config_export(tenant=world_a.tenant)
    assert client.get(EXPORT, HTTP_ACCEPT="application/yaml")["Content-Type"].startswith("application/yaml")


def test_developers_cannot_export(world_a):
    response = world_a.client("developer").get(EXPORT)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_import_yaml_dry_run_then_apply_then_nothing(world_a):
    client = world_a.client("admin")
    doc = config_export(tenant=world_a.tenant)
    doc["apis"][0]["title"] = "Retitled"
    doc["plans"].append({"name": "bronze", "rate_limit_per_minute": 60})
    body = yaml.safe_dump(doc)
    before = db_state(world_a.tenant)
    dry = client.post(f"{IMPORT}?dry_run=true", body, content_type="application/yaml")
    assert dry.status_code == 200, dry.content
    data = dry.json()
    assert (data["dry_run"], data["changed"]) == (True, True)
    assert data["summary"] == {"create": 1, "update": 1, "delete": 0, "keep": 0}
    update = next(c for c in data["changes"] if c["op"] == "update")
    assert update["path"] == "apis[0]"
    assert update["fields"]["title"]["new"] == "Retitled"
    assert "+ create plan bronze  (plans[1])" in data["text"]
    assert db_state(world_a.tenant) == before

    applied = client.post(IMPORT, body, content_type="application/yaml")
    assert applied.status_code == 200
    assert applied.json()["changed"] is True
    assert API.objects.get(pk=world_a.objects["api"].pk).title == "Retitled"
    audit = AuditEvent.objects.filter(tenant=world_a.tenant).count()
    assert AuditEvent.objects.filter(tenant=world_a.tenant, actor=world_a.users["admin"]).count() == 2

    again = client.post(IMPORT, json.dumps(doc), content_type="application/json")
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert again.json()["summary"] == {"create": 0, "update": 0, "delete": 0, "keep": 0}
    assert AuditEvent.objects.filter(tenant=world_a.tenant).count() == audit


def test_invalid_document_is_a_400_with_field_paths_and_changes_nothing(world_a):
    """Shape problems (types, unknown fields) are all reported first; then every model validation problem."""
    client = world_a.client("owner")
    doc = config_export(tenant=world_a.tenant)
    doc["upstreams"][0]["retries"] = "three"
    doc["plans"][0]["title"] = "no such field"
    before = db_state(world_a.tenant)
    response = client.post(IMPORT, doc, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert set(error["details"]) == {"upstreams[0].retries", "plans[0].title"}
    assert error["message"] == "upstreams[0].retries: must be an integer (and 1 more problems)"
    doc = config_export(tenant=world_a.tenant)
    doc["upstreams"][0]["retries"] = 99
    doc["apis"][0]["routes"][0]["methods"] = ["FETCH"]
    response = client.post(IMPORT, doc, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {"upstreams[0].retries", "apis[0].routes[0].methods"}
    assert "FETCH" in details["apis[0].routes[0].methods"][0]
    assert db_state(world_a.tenant) == before


def test_the_document_cannot_name_a_tenant(world_a, world_b):
    doc = {"format_version": 1, "tenant": world_b.tenant.slug, "plans": [{"name": "sneaky"}]}
    response = world_a.client("owner").post(IMPORT, doc, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "tenant": ["unknown field (known: format_version, upstreams, apis, plans, policies)"]
    }
    doc.pop("tenant")
    assert world_a.client("owner").post(IMPORT, doc, format="json").status_code == 200
    assert Plan.objects.filter(tenant=world_a.tenant, name="sneaky").exists()
    assert not Plan.objects.filter(tenant=world_b.tenant, name="sneaky").exists()


def test_env_references_are_refused_over_rest(world_a, monkeypatch):
    monkeypatch.setenv("APIM_TEST_SECRET", JWT_SECRET)
    doc = config_export(tenant=world_a.tenant)
    doc["apis"][0]["policies"].append(
        {"policy": "jwt", "config": {"algorithms": ["HS256"], "keys": [{"secret": "${APIM_TEST_SECRET}"}]}}
    )
    response = world_a.client("admin").post(IMPORT, doc, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert list(details) == ["apis[0].policies[1].config.keys[0].secret"]
    assert "only by manage.py apim_import" in details["apis[0].policies[1].config.keys[0].secret"][0]


def test_bad_bodies_and_parameters(world_a):
    client = world_a.client("admin")
    before = db_state(world_a.tenant)
    aliases = "format_version: 1\nplans:\n  - &p {name: a}\n  - *p\n"
    refused = client.post(IMPORT, aliases, content_type="application/yaml")
    assert refused.status_code == 400
    assert "aliases" in refused.json()["error"]["message"]
    broken = client.post(IMPORT, "format_version: [1", content_type="text/yaml")
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_config"
    assert client.post(IMPORT, "[1, 2]", content_type="application/x-yaml").status_code == 400
    assert client.post(IMPORT, "x", content_type="text/plain").status_code == 415
    huge = client.post(IMPORT, "#" * (5 * 1024 * 1024 + 1), content_type="application/yaml")
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "document_too_large"
    flag = client.post(f"{IMPORT}?dry_run=maybe", {"format_version": 1}, format="json")
    assert flag.status_code == 400
    assert flag.json()["error"]["details"] == {"dry_run": ["Must be a valid boolean."]}
    assert db_state(world_a.tenant) == before


def test_import_into_b_never_touches_a(world_a, world_b):
    before_a = db_state(world_a.tenant)
    doc = config_export(tenant=world_a.tenant)  # A's names, imported into B: they are created in B
    doc["apis"][0]["policies"][0]["config"] = {"origins": ["*"]}  # the world's fixture row skipped validation
    response = world_b.client("admin").post(IMPORT, doc, format="json")
    assert response.status_code == 200, response.content
    assert {c["op"] for c in response.json()["changes"]} == {"create", "keep"}
    assert API.objects.filter(tenant=world_b.tenant, name=world_a.objects["api"].name).exists()
    assert db_state(world_a.tenant) == before_a
    # With prune, B becomes exactly the document (its own draft API, upstream and plan go); A stays as it was.
    pruned = world_b.client("admin").post(f"{IMPORT}?prune=true", doc, format="json")
    assert pruned.status_code == 200, pruned.content
    deleted = {c["name"] for c in pruned.json()["changes"] if c["op"] == "delete"}
    assert f"api {world_b.objects['api'].name} v1" in deleted
    assert config_export(tenant=world_b.tenant) == doc
    assert db_state(world_a.tenant) == before_a
