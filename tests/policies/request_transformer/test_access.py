"""request-transformer through a real gateway: what the upstream receives after the edits."""

from __future__ import annotations

import base64
import json

from consumers.services import api_key_issue
from gateway.loader import api_key_lookup
from gateway.snapshot import TenantSpec
from policies.keystore import KeyStore
from tests.factories import ApplicationFactory, TenantFactory
from tests.gateway.harness import Api


def _api(echo_server, config, *, extra=()):
    return Api(base_path="/svc", targets=[echo_server.origin], policies=[("request-transformer", config), *extra])


def _headers(echoed):
    return [(name.lower(), value) for name, value in echoed["headers"]]


def _values(echoed, name):
    return [value for n, value in _headers(echoed) if n == name]


def _body(echoed):
    return base64.b64decode(echoed["body_b64"])


def test_header_operations_apply_in_order(gateway, echo_server, http):
    gateway.configure(
        _api(
            echo_server,
            {
                "add": {"headers": {"X-Added": "gw", "X-Client": "not-overwritten"}},
                "replace": {"headers": {"Accept": "application/json", "X-Absent": "never-added"}},
                "rename": {"headers": {"X-Old": "X-New"}},
                "remove": {"headers": ["X-Secret"]},
            },
        )
    )
    response = http.get(
        f"{gateway.url}/svc/h",
        headers={"X-Secret": "s", "X-Old": "moved", "Accept": "text/html", "X-Client": "mine"},
    )
    echoed = response.json()
    assert _values(echoed, "x-secret") == []
    assert _values(echoed, "x-old") == []
    assert _values(echoed, "x-new") == ["moved"]
    assert _values(echoed, "accept") == ["application/json"]
    assert _values(echoed, "x-absent") == []
    assert _values(echoed, "x-added") == ["gw"]
    assert _values(echoed, "x-client") == ["mine"]


def test_query_edits_keep_untouched_parameters_byte_for_byte(gateway, echo_server, http):
    gateway.configure(
        _api(
            echo_server,
            {"remove": {"query": ["debug"]}, "rename": {"query": {"q": "search"}}, "add": {"query": {"src": "gw/1 2"}}},
        )
    )
    response = http.get(f"{gateway.url}/svc/q?a=%2F&debug=1&b=1+2&q=caf%C3%A9&c=")
    assert response.json()["target"] == "/q?a=%2F&b=1+2&search=caf%C3%A9&c=&src=gw%2F1%202"


def test_removing_every_parameter_drops_the_question_mark(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"remove": {"query": ["debug"]}}))
    assert http.get(f"{gateway.url}/svc/q?debug=1").json()["target"] == "/q"


def test_json_fields_are_added_and_removed_and_length_recomputed(gateway, echo_server, http):
    gateway.configure(
        _api(echo_server, {"remove": {"json": ["internal"]}, "add": {"json": {"source": "gw", "tags": ["a"]}}})
    )
    sent = {"name": "caf\u00e9", "internal": True, "n": 12345678901234567890}
    response = http.post(f"{gateway.url}/svc/j", json=sent)
    echoed = response.json()
    body = _body(echoed)
    assert json.loads(body) == {"name": "caf\u00e9", "n": 12345678901234567890, "source": "gw", "tags": ["a"]}
    assert _values(echoed, "content-length") == [str(len(body))]


def test_chunked_json_body_is_edited_and_forwarded_with_a_length(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"add": {"json": {"added": 1}}}))

    def parts():
        yield b'{"a":'
        yield b"1}"

    response = http.post(f"{gateway.url}/svc/j", content=parts(), headers={"Content-Type": "application/vnd.x+json"})
    echoed = response.json()
    assert json.loads(_body(echoed)) == {"a": 1, "added": 1}
    assert echoed["chunked"] is False


def test_bodies_that_are_not_json_objects_are_forwarded_unchanged(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"add": {"json": {"added": 1}}}))
    cases = [
        (b'{"a": 1}', "text/plain"),
        (b"[1, 2]", "application/json"),
        (b'{"a": 1, "a": 2}', "application/json"),  # duplicates stay visible to request-validator
        (b'{"broken":', "application/json"),
        (b"", "application/json"),
    ]
    for content, content_type in cases:
        echoed = http.post(f"{gateway.url}/svc/j", content=content, headers={"Content-Type": content_type}).json()
        assert _body(echoed) == content, content


def test_json_edits_are_bounded_by_the_size_limit(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"add": {"json": {"a": 1}}}, extra=[("request-size-limit", {"max_bytes": 50})]))

    def parts():
        yield b'{"pad": "'
        for _ in range(20):
            yield b"x" * 10
        yield b'"}'

    response = http.post(f"{gateway.url}/svc/j", content=parts(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413



def test_a_consumed_api_key_cannot_be_renamed_back_to_the_upstream(transactional_db, gateway, echo_server, http):
    """key-auth hides the key; a transformer renaming its header must not resurrect it under another name."""
    tenant = TenantFactory()
    issued = api_key_issue(application=ApplicationFactory(consumer__tenant=tenant), actor=None)
    tid = str(tenant.pk)
    gateway.configure(
        Api(
            base_path="/svc",
            targets=[echo_server.origin],
            tenant=tid,
            policies=[
                ("key-auth", {"require_subscription": False}),
                ("request-transformer", {"rename": {"headers": {"X-API-Key": "X-Leaked"}}}),
            ],
        ),
        tenants=[TenantSpec(tenant_id=tid, is_default=True)],
        services={"keys": KeyStore(lookup=api_key_lookup)},
        tenant_versions={tid: tenant.config_version},
    )
    response = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": issued.plaintext})
    assert response.status_code == 200, response.text
    assert _values(response.json(), "x-leaked") == []
    assert _values(response.json(), "x-api-key") == []
    assert issued.plaintext not in response.text
