"""acl through a real gateway and upstream: groups, scopes, per-method rules, and no identity."""

from __future__ import annotations

import pytest

from tests.gateway.harness import Api

pytestmark = pytest.mark.usefixtures("identity_policy")


def _configure(gateway, echo_server, acl: dict | None, *, auth: bool = True) -> None:
    policies = [("test-identity", {})] if auth else []
    if acl is not None:
        policies.append(("acl", acl))
    gateway.configure(Api(base_path="/svc", targets=[echo_server.origin], policies=policies))


def _as(consumer: str, groups: str = "", scopes: str = "") -> dict[str, str]:
    return {"X-Test-Consumer": consumer, "X-Test-Groups": groups, "X-Test-Scopes": scopes}


def test_allow_groups_let_members_in_and_keep_others_out(gateway, echo_server, http):
    _configure(gateway, echo_server, {"allow_groups": ["gold", "internal"]})
    url = f"{gateway.url}/svc/x"
    assert http.get(url, headers=_as("a", groups="internal")).status_code == 200
    assert http.get(url, headers=_as("b", groups="silver gold")).status_code == 200
    denied = http.get(url, headers=_as("c", groups="silver"))
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "access_denied",
        "message": "You are not allowed to call this API.",
        "details": {},
    }
    assert http.get(url, headers=_as("d")).status_code == 403


def test_deny_groups_win_over_allow_groups(gateway, echo_server, http):
    _configure(gateway, echo_server, {"allow_groups": ["gold"], "deny_groups": ["banned"], "message": "Go away."})
    url = f"{gateway.url}/svc/x"
    denied = http.get(url, headers=_as("a", groups="gold banned"))
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "Go away."
    assert http.get(url, headers=_as("a", groups="gold")).status_code == 200


def test_deny_groups_alone_let_everyone_else_in(gateway, echo_server, http):
    _configure(gateway, echo_server, {"deny_groups": ["banned"]})
    url = f"{gateway.url}/svc/x"
    assert http.get(url, headers=_as("a")).status_code == 200
    assert http.get(url, headers=_as("a", groups="banned")).status_code == 403


def test_required_scopes_must_all_be_granted(gateway, echo_server, http):
    _configure(gateway, echo_server, {"required_scopes": ["orders:read", "orders:list"]})
    url = f"{gateway.url}/svc/x"
    assert http.get(url, headers=_as("a", scopes="orders:list orders:read extra")).status_code == 200
    denied = http.get(url, headers=_as("a", scopes="orders:read"))
    assert denied.status_code == 403
    assert denied.json()["error"]["details"] == {"required_scopes": ["orders:list", "orders:read"]}
    assert denied.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="orders:list orders:read"'
    assert http.get(url, headers=_as("a", scopes="orders:*")).status_code == 403  # exact match only


def test_rules_per_method(gateway, echo_server, http):
    _configure(
        gateway,
        echo_server,
        {
            "rules": [
                {"methods": ["GET"], "required_scopes": ["read"]},
                {"methods": ["POST", "DELETE"], "required_scopes": ["write"], "allow_groups": ["staff"]},
            ]
        },
    )
    url = f"{gateway.url}/svc/x"
    reader = _as("r", scopes="read")
    writer = _as("w", groups="staff", scopes="write")
    assert http.get(url, headers=reader).status_code == 200
    assert http.head(url, headers=reader).status_code == 200
    assert http.head(url, headers=writer).status_code == 403  # HEAD is guarded like GET
    assert http.post(url, headers=reader, content=b"x").status_code == 403
    assert http.post(url, headers=writer, content=b"x").status_code == 200
    assert http.delete(url, headers=_as("w", scopes="write")).status_code == 403  # not staff
    assert http.put(url, headers=_as("anyone"), content=b"x").status_code == 200  # no rule for PUT
    assert http.put(url, content=b"x").status_code == 200  # not even an identity needed


def test_without_an_identity_an_applicable_rule_answers_401(gateway, echo_server, http):
    _configure(gateway, echo_server, {"deny_groups": ["banned"]})
    response = http.get(f"{gateway.url}/svc/x")  # the test policy lets anonymous requests through
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    _configure(gateway, echo_server, {"allow_groups": ["gold"]}, auth=False)
    assert http.get(f"{gateway.url}/svc/x", headers=_as("a", groups="gold")).status_code == 401


def test_a_consumer_scoped_acl_overrides_the_api_one_for_that_consumer(gateway, echo_server, http):
    from policies.engine import AttachmentSpec

    api = Api(
        base_path="/svc",
        targets=[echo_server.origin],
        policies=[("test-identity", {}), ("acl", {"allow_groups": ["gold"]})],
    )
    exempt = AttachmentSpec(id="c1", policy="acl", tenant_id="t1", consumer_id="id-vip", config={"deny_groups": ["x"]})
    gateway.configure(api, attachments=[exempt])
    url = f"{gateway.url}/svc/x"
    assert http.get(url, headers=_as("vip")).status_code == 200
    assert http.get(url, headers=_as("other")).status_code == 403
