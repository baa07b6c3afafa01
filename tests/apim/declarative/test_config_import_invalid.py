"""Every kind of invalid document is refused with the bad field's path, and the database stays as it was."""

from __future__ import annotations

import pytest

from apim.declarative.document import DocumentInvalid, load_yaml
from apim.declarative.export import config_export
from apim.declarative.importer import config_import
from tests.apim.declarative.support import db_state


def _set(path, value):
    def edit(doc):
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return doc

    return edit


def _drop(path):
    def edit(doc):
        target = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
        return doc

    return edit


def _append(path, value):
    def edit(doc):
        target = doc
        for part in path:
            target = target[part]
        target.append(value)
        return doc

    return edit


CASES = [
    ("not a mapping", lambda doc: ["a", "list"], "", "must be a mapping"),
    ("no format_version", _drop(["format_version"]), "format_version", "is required"),
    ("future format", _set(["format_version"], 2), "format_version", "2 is not supported"),
    ("unknown top-level field", _set(["consumers"], []), "consumers", "unknown field"),
    ("list expected", _set(["plans"], {"name": "x"}), "plans", "must be a list"),
    ("item not a mapping", _set(["plans", 0], "gold"), "plans[0]", "must be a mapping"),
    ("required field", _drop(["apis", 1, "title"]), "apis[1].title", "is required"),
    ("unknown nested field", _set(["apis", 1, "routes", 0, "id"], "x"), "apis[1].routes[0].id", "unknown field"),
    ("wrong type", _set(["upstreams", 0, "retries"], "two"), "upstreams[0].retries", "must be an integer"),
    ("bool is not int", _set(["upstreams", 0, "retries"], True), "upstreams[0].retries", "must be an integer"),
    ("null not allowed", _set(["apis", 1, "hosts"], None), "apis[1].hosts", "must not be null"),
    ("methods not a list", _set(["apis", 1, "routes", 0, "methods"], "GET"), "apis[1].routes[0].methods", "list"),
    ("bad method", _set(["apis", 1, "routes", 0, "methods"], ["FETCH"]), "apis[1].routes[0].methods", "FETCH"),
    ("out of range", _set(["upstreams", 0, "retries"], 99), "upstreams[0].retries", "less than or equal to 10"),
    ("bad choice", _set(["upstreams", 0, "load_balancing"], "random"), "upstreams[0].load_balancing", "random"),
    ("bad target url", _set(["upstreams", 0, "targets", 0, "url"], "ftp://x"), "upstreams[0].targets[0].url", ""),
    ("bad base path", _set(["apis", 2, "base_path"], "no-slash"), "apis[2].base_path", ""),
    ("bad time zone", _set(["plans", 1, "quota_timezone"], "Mars/Olympus"), "plans[1].quota_timezone", "Mars"),
    ("unknown status", _set(["apis", 2, "status"], "live"), "apis[2].status", "not a lifecycle status"),
    ("status backwards", _set(["apis", 1, "status"], "draft"), "apis[1].status", "only moves forward"),
    ("retired is final", _set(["apis", 0, "title"], "Back"), "apis[0]", "retired API cannot be changed"),
    ("unknown upstream", _set(["apis", 2, "upstream"], "nowhere"), "apis[2].upstream", "no upstream named"),
    ("upstream not a name", _set(["apis", 2, "upstream"], 3), "apis[2].upstream", "must be the name"),
    ("duplicate api", _append(["apis"], {"name": "orders", "title": "x", "base_path": "/x"}), "apis[3]", "same api"),
    (
        "duplicate route",
        _append(["apis", 1, "routes"], {"path": "/items", "methods": ["get"]}),
        "apis[1].routes[2]",
        "same route",
    ),
    ("unknown policy type", _set(["policies", 0, "policy"], "teleport"), "policies[0].policy", "teleport"),
    ("policy config schema", _set(["policies", 0, "config"], {"allow": "all"}), "policies[0].config", "allow"),
    ("policy config not a mapping", _set(["policies", 0, "config"], [1]), "policies[0].config", "must be a mapping"),
    (
        "duplicate policy",
        _append(["apis", 1, "policies"], {"policy": "jwt", "config": {"algorithms": ["HS256"]}}),
        "apis[1].policies[2]",
        "same policy jwt",
    ),
    (
        "policy semantic check",
        _append(
            ["apis", 2, "policies"],
            {"policy": "jwt", "config": {"algorithms": ["HS256"], "keys": [{"secret": "short"}]}},
        ),
        "apis[2].policies[1].config",
        "at least 32 bytes",
    ),
]


@pytest.mark.parametrize(("edit", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_documents_are_refused_with_the_path(tenant, filled, edit, path, fragment):
    doc = edit(config_export(tenant=tenant))
    before = db_state(tenant)
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None)
    problems = caught.value.problems
    assert any(where == path and fragment in message for where, message in problems), problems
    assert db_state(tenant) == before


def test_every_problem_is_reported_at_once(tenant, filled):
    doc = config_export(tenant=tenant)
    doc["upstreams"][0]["retries"] = 99
    doc["apis"][1]["routes"][0]["methods"] = ["FETCH"]
    doc["plans"][0]["quota_timezone"] = "Nowhere/Land"
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None, dry_run=True)
    assert [path for path, _ in caught.value.problems] == [
        "upstreams[0].retries",
        "plans[0].quota_timezone",
        "apis[1].routes[0].methods",
    ]


def test_conflicts_only_the_database_sees_roll_everything_back(tenant, filled):
    """Two new APIs on one base path pass item-by-item checks; the second save fails and undoes the first."""
    doc = config_export(tenant=tenant)
    doc["plans"][0]["description"] = "changed before the failure"
    doc["apis"] += [
        {"name": "twin-a", "title": "A", "base_path": "/twins"},
        {"name": "twin-b", "title": "B", "base_path": "/twins"},
    ]
    before = db_state(tenant)
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=doc, actor=None)
    assert caught.value.problems[0][0] == "apis[4].base_path"
    assert "already used by API twin-a" in caught.value.problems[0][1]
    assert db_state(tenant) == before


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (
            "format_version: 1\napis:\n- {name: a, title: A, base_path: /a, openapi_document: {v: 2024-01-01}}\n",
            "apis[0].openapi_document.v",
            "YAML date is not a JSON value",
        ),
        ("format_version: 1\npolicies:\n- {policy: cors, config: {1: x}}\n", "policies[0].config", "key 1 must be"),
        ("format_version: 1\nplans:\n- {name: a, description: .nan}\n", "plans[0].description", "finite"),
    ],
)
def test_yaml_beyond_json_is_refused(tenant, text, path, fragment):
    with pytest.raises(DocumentInvalid) as caught:
        config_import(tenant=tenant, document=load_yaml(text), actor=None)
    assert caught.value.problems[0][0] == path
    assert fragment in caught.value.problems[0][1]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("format_version: [1", "not valid YAML"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("x" * (5 * 1024 * 1024 + 1), "larger than"),
    ],
)
def test_unreadable_yaml(text, fragment):
    with pytest.raises(DocumentInvalid) as caught:
        load_yaml(text)
    assert fragment in caught.value.message
