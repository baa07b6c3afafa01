"""apim.declarative.export.config_export: the whole catalog by natural keys, deterministic, no secrets."""

from __future__ import annotations

import json

import yaml

from apim.declarative.document import FORMAT_VERSION, dump_yaml
from apim.declarative.export import config_export
from apim.declarative.secrets import REDACTED
from tests.apim.declarative.support import JWT_SECRET, UPSTREAM_TOKEN, build_catalog


def test_export_names_every_object_by_natural_key(tenant, filled):
    doc = config_export(tenant=tenant)
    assert doc["format_version"] == FORMAT_VERSION
    assert [u["name"] for u in doc["upstreams"]] == ["orders-up", "spare"]
    assert [t["url"] for t in doc["upstreams"][0]["targets"]] == ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
    assert doc["upstreams"][0]["targets"][1] == {"url": "http://127.0.0.1:9102", "weight": 5, "enabled": False}
    assert doc["upstreams"][0]["load_balancing"] == "weighted_round_robin"
    assert [(a["name"], a["version"], a["status"], a["upstream"]) for a in doc["apis"]] == [
        ("legacy", "v1", "retired", "orders-up"),
        ("orders", "v1", "published", "orders-up"),
        ("orders", "v2", "draft", "spare"),
    ]
    orders = doc["apis"][1]
    assert orders["hosts"] == ["api.example.com"]
    assert orders["routes"] == [
        {"path": "/items", "methods": ["GET"], "name": "", "enabled": True},
        {"path": "/items/detail", "methods": ["GET", "POST"], "name": "detail", "enabled": True},
    ]
    assert [p["policy"] for p in orders["policies"]] == ["cors", "jwt"]
    assert [p["name"] for p in doc["plans"]] == ["free", "gold"]
    assert doc["plans"][1]["quota_timezone"] == "Europe/Paris"
    assert doc["policies"] == [
        {"policy": "ip-restriction", "config": {"allow": ["10.0.0.0/8"]}, "enabled": True, "priority": None}
    ]


def test_export_holds_no_ids_no_consumers_and_no_secrets(tenant, filled):
    doc = config_export(tenant=tenant)
    text = dump_yaml(doc) + json.dumps(doc)
    for secret in (
        JWT_SECRET,
        UPSTREAM_TOKEN,
        filled["key"].plaintext,
        filled["key"].key.digest,
        filled["key"].key.key_id,
    ):
        assert secret not in text
    for obj in (filled["orders"], filled["upstream"], tenant):
        assert str(obj.pk) not in text
    assert tenant.slug not in text
    assert "acme" not in text  # the consumer and its consumer-scoped rate limit are not part of the document
    assert "rate-limit" not in text
    jwt = doc["apis"][1]["policies"][1]["config"]
    assert jwt == {"algorithms": ["HS256"], "keys": [{"kid": "k1", "secret": REDACTED}]}
    headers = doc["apis"][2]["policies"][0]["config"]["add"]["headers"]
    assert headers == {"Authorization": REDACTED, "X-Team": "orders"}


def test_export_is_deterministic_and_valid_yaml(tenant, filled):
    first = dump_yaml(config_export(tenant=tenant))
    assert dump_yaml(config_export(tenant=tenant)) == first
    assert yaml.safe_load(first) == config_export(tenant=tenant)


def test_export_sees_only_its_own_tenant(tenant, other_tenant):
    build_catalog(other_tenant)
    doc = config_export(tenant=tenant)
    assert doc == {"format_version": FORMAT_VERSION, "upstreams": [], "apis": [], "plans": [], "policies": []}
