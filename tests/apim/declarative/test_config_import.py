"""apim.declarative.importer.config_import: round trip, idempotency, dry run, prune, secrets, tenants."""

from __future__ import annotations

import copy

import pytest

from apim.declarative.document import DocumentInvalid
from apim.declarative.export import config_export
from apim.declarative.importer import config_import
from apim.declarative.secrets import REDACTED
from apim.models import API, AuditEvent, Route, Upstream
from consumers.models import Plan
from policies.models import PolicyAttachment
from tests.apim.declarative.support import JWT_SECRET, UPSTREAM_TOKEN, build_catalog, db_state

SECRETS_ENV = {"JWT_SECRET": JWT_SECRET, "UPSTREAM_TOKEN": UPSTREAM_TOKEN}


def with_env_references(doc):
    """The export with its two redacted secrets replaced by ${ENV} references."""
    doc = copy.deepcopy(doc)
    doc["apis"][1]["policies"][1]["config"]["keys"][0]["secret"] = "${JWT_SECRET}"
    doc["apis"][2]["policies"][0]["config"]["add"]["headers"]["Authorization"] = "${UPSTREAM_TOKEN}"
    return doc


def test_round_trip_through_an_empty_tenant(tenant, filled, empty_tenant):
    exported = config_export(tenant=tenant)
    result = config_import(tenant=empty_tenant, document=with_env_references(exported), actor=None, env=SECRETS_ENV)
    assert result.counts["create"] == 15 and result.counts["update"] == 0
    assert config_export(tenant=empty_tenant) == exported
    jwt = PolicyAttachment.objects.get(tenant=empty_tenant, policy="jwt")
    assert jwt.config["keys"][0]["secret"] == JWT_SECRET
    assert API.objects.get(tenant=empty_tenant, name="legacy").status == "retired"
    assert API.objects.get(tenant=empty_tenant, name="orders", version="v1").published_at is not None


def test_second_import_changes_nothing(tenant, filled, empty_tenant, django_capture_on_commit_callbacks):
    document = with_env_references(config_export(tenant=tenant))
    config_import(tenant=empty_tenant, document=document, actor=None, env=SECRETS_ENV)
    before = db_state(empty_tenant)
    with django_capture_on_commit_callbacks() as callbacks:
        again = config_import(tenant=empty_tenant, document=document, actor=None, env=SECRETS_ENV)
    assert not again.changed
    assert again.counts == {"create": 0, "update": 0, "delete": 0, "keep": 0}
    assert again.text() == "No changes."
    assert callbacks == []  # no config-changed event
    assert db_state(empty_tenant) == before  # no write, no audit row, same config version


def test_reimporting_the_redacted_export_keeps_the_stored_secrets(tenant, filled):
    before = db_state(tenant)
    result = config_import(tenant=tenant, document=config_export(tenant=tenant), actor=None)
    assert not result.changed
    assert db_state(tenant) == before
    jwt = PolicyAttachment.objects.get(tenant=tenant, policy="jwt")
    assert jwt.config["keys"][0]["secret"] == JWT_SECRET


def test_redacted_secrets_are_refused_where_nothing_is_stored(tenant, filled, empty_tenant):
    before = db_state(empty_tenant)
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=empty_tenant, document=config_export(tenant=tenant), actor=None)
    paths = [path for path, _ in caught.value.problems]
    assert paths == [
        "apis[1].policies[1].config.keys[0].secret",
        "apis[2].policies[0].config.add.headers.Authorization",
    ]
    assert "redacted" in caught.value.problems[0][1]
    assert db_state(empty_tenant) == before


def test_env_references_are_refused_without_an_environment(tenant, filled, empty_tenant):
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=empty_tenant, document=with_env_references(config_export(tenant=tenant)), actor=None)
    assert "only by manage.py apim_import" in caught.value.problems[0][1]
    with pytest.raises(DocumentInvalid) as caught:
        config_import(
            tenant=empty_tenant, document=with_env_references(config_export(tenant=tenant)), actor=None, env={}
        )
    assert "JWT_SECRET is not set" in caught.value.problems[0][1]
    assert not API.objects.filter(tenant=empty_tenant).exists()


def _edited(doc):
    doc = copy.deepcopy(doc)
    doc["apis"][1]["title"] = "Orders API"
    doc["apis"][1]["routes"].append({"path": "/health", "methods": ["GET"]})
    doc["apis"][1]["routes"] = [r for r in doc["apis"][1]["routes"] if r["path"] != "/items"]
    doc["upstreams"][0]["targets"][1]["enabled"] = True
    doc["plans"] = [p for p in doc["plans"] if p["name"] != "free"]
    doc["plans"][0]["rate_limit_per_second"] = 20
    return doc


def test_dry_run_prints_the_diff_and_writes_nothing(tenant, filled, django_capture_on_commit_callbacks):
    before = db_state(tenant)
    with django_capture_on_commit_callbacks() as callbacks:
        result = config_import(tenant=tenant, document=_edited(config_export(tenant=tenant)), actor=None, dry_run=True)
    assert result.text().splitlines() == [
        "~ update target http://127.0.0.1:9102 of upstream orders-up  (upstreams[0].targets[1])",
        "    enabled: false → true",
        "~ update plan gold  (plans[0])",
        "    rate_limit_per_second: 10 → 20",
        "= keep plan free  (not in the file; --prune would delete it)",
        "~ update api orders v1  (apis[1])",
        '    title: "Orders" → "Orders API"',
        "+ create route GET /health of api orders v1  (apis[1].routes[1])",
        "= keep route GET /items of api orders v1  (not in the file; --prune would delete it)",
        "Would 1 create, 3 update, 0 delete, 2 keep (dry run: nothing was written).",
    ]
    assert callbacks == []
    assert db_state(tenant) == before


def test_import_applies_the_diff_through_the_services(tenant, filled, django_capture_on_commit_callbacks):
    audit_before = AuditEvent.objects.filter(tenant=tenant).count()
    version_before = db_state(tenant)["config_version"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = config_import(tenant=tenant, document=_edited(config_export(tenant=tenant)), actor=None)
    assert result.counts == {"create": 1, "update": 3, "delete": 0, "keep": 2}
    assert API.objects.get(tenant=tenant, name="orders", version="v1").title == "Orders API"
    assert Plan.objects.get(tenant=tenant, name="gold").rate_limit_per_second == 20
    assert Plan.objects.filter(tenant=tenant, name="free").exists()  # kept: no --prune
    assert Route.objects.filter(tenant=tenant, path="/items").exists()
    assert Route.objects.filter(tenant=tenant, path="/health").exists()
    actions = list(AuditEvent.objects.filter(tenant=tenant).order_by("-id")[:4].values_list("action", flat=True))
    assert sorted(actions) == ["api.update", "plan.update", "route.create", "target.update"]
    assert AuditEvent.objects.filter(tenant=tenant).count() == audit_before + 4
    assert db_state(tenant)["config_version"] == version_before + 4
    assert len(callbacks) == 4


def test_prune_deletes_what_the_file_no_longer_names(tenant, filled):
    doc = _edited(config_export(tenant=tenant))
    doc["apis"] = [a for a in doc["apis"] if a["name"] != "legacy"]  # retired: may be deleted
    doc["upstreams"][1]["targets"] = []
    doc["policies"] = []
    doc["apis"] = [a for a in doc["apis"] if a["version"] != "v2"]  # the draft: the only user of "spare"
    doc["upstreams"] = doc["upstreams"][:1]
    result = config_import(tenant=tenant, document=doc, actor=None, prune=True, dry_run=True)
    deleted = [c.name for c in result.changes if c.op == "delete"]
    assert deleted == [
        "upstream spare",
        "plan free",
        "policy ip-restriction (tenant-wide)",
        "route GET /items of api orders v1",
        "api legacy v1",
        "api orders v2",
    ]
    config_import(tenant=tenant, document=doc, actor=None, prune=True)
    assert not Plan.objects.filter(tenant=tenant, name="free").exists()
    assert not API.objects.filter(tenant=tenant, name="legacy").exists()
    assert list(API.objects.filter(tenant=tenant).values_list("name", "version")) == [("orders", "v1")]
    assert not Upstream.objects.filter(tenant=tenant, name="spare").exists()
    assert not Route.objects.filter(tenant=tenant, path="/items").exists()
    assert not PolicyAttachment.objects.filter(tenant=tenant, api=None, consumer=None).exists()
    # Consumer-scoped policies are outside the document: never pruned.
    assert PolicyAttachment.objects.filter(tenant=tenant, policy="rate-limit").exists()
    assert config_export(tenant=tenant)["apis"][0]["name"] == "orders"
    again = config_import(tenant=tenant, document=doc, actor=None, prune=True)
    assert not again.changed


def test_prune_refuses_to_delete_a_live_api(tenant, filled):
    doc = config_export(tenant=tenant)
    doc["apis"] = [a for a in doc["apis"] if a["version"] != "v1" or a["name"] != "orders"]
    before = db_state(tenant)
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None, prune=True)
    assert caught.value.problems[0][0] == "apis"
    assert "orders v1 is not in the file but is published" in caught.value.problems[0][1]
    assert db_state(tenant) == before


def test_prune_of_a_plan_in_use_rolls_everything_back(tenant, filled):
    doc = config_export(tenant=tenant)
    doc["plans"] = [p for p in doc["plans"] if p["name"] != "gold"]  # gold has a subscription
    doc["apis"][1]["title"] = "Changed first"
    before = db_state(tenant)
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None, prune=True)
    assert "still used by" in caught.value.message
    assert db_state(tenant) == before


def test_names_never_resolve_to_another_tenants_objects(tenant, filled, empty_tenant):
    before_a = db_state(tenant)
    doc = {
        "format_version": 1,
        "apis": [{"name": "orders", "title": "Mine", "base_path": "/orders", "upstream": "orders-up"}],
    }
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=empty_tenant, document=doc, actor=None)
    assert caught.value.problems == [("apis[0].upstream", "no upstream named 'orders-up' in the file or the tenant")]
    doc["apis"][0]["upstream"] = None
    result = config_import(tenant=empty_tenant, document=doc, actor=None, prune=True)
    assert [c.op for c in result.changes] == ["create"]  # A's orders v1 is neither updated nor pruned
    assert API.objects.get(tenant=empty_tenant, name="orders").title == "Mine"
    assert db_state(tenant) == before_a


def test_a_full_import_into_b_leaves_a_untouched(tenant, filled, empty_tenant):
    build_catalog(empty_tenant)
    before_a = db_state(tenant)
    doc = config_export(tenant=empty_tenant)
    doc["apis"][1]["title"] = "B's title"
    doc["plans"] = []
    config_import(tenant=empty_tenant, document=doc, actor=None, prune=False)
    assert db_state(tenant) == before_a
    assert API.objects.get(tenant=tenant, name="orders", version="v1").title == "Orders"


def test_lifecycle_moves_only_forward(tenant, filled):
    doc = config_export(tenant=tenant)
    doc["apis"][2]["status"] = "deprecated"  # draft → published → deprecated
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None)
    assert caught.value.problems == [("apis[2].status", "publishing needs an enabled target in upstream 'spare'")]
    doc["upstreams"][1]["targets"] = [{"url": "http://127.0.0.1:9200"}]
    result = config_import(tenant=tenant, document=doc, actor=None)
    assert [(c.op, c.name, c.fields) for c in result.changes] == [
        ("create", "target http://127.0.0.1:9200 of upstream spare", {}),
        ("update", "api orders v2", {"status": ("draft", "deprecated")}),
    ]
    api = API.objects.get(tenant=tenant, name="orders", version="v2")
    assert (api.status, api.published_at is not None) == ("deprecated", True)
    doc["apis"][2]["status"] = "draft"
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None)
    assert caught.value.problems[0][0] == "apis[2].status"
    assert "only moves forward" in caught.value.problems[0][1]


def test_a_changed_secret_is_applied_but_never_shown(tenant, filled):
    doc = config_export(tenant=tenant)
    new_secret = "another-hs256-secret-long-enough-9876543210"
    doc["apis"][1]["policies"][1]["config"]["keys"][0]["secret"] = new_secret
    result = config_import(tenant=tenant, document=doc, actor=None)
    [change] = result.changes
    assert change.name == "policy jwt of api orders v1"
    old, new = change.fields["config"]
    assert old == {"algorithms": ["HS256"], "keys": [{"kid": "k1", "secret": REDACTED}]}
    assert new == "<a secret changed>"
    assert new_secret not in result.text() and new_secret not in str(result.as_dict())
    assert JWT_SECRET not in result.text()
    assert PolicyAttachment.objects.get(tenant=tenant, policy="jwt").config["keys"][0]["secret"] == new_secret
