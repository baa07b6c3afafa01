"""What key-auth leaves on the request context for the policies after it (identity, subscription)."""

from __future__ import annotations

import asyncio

from consumers import keys
from policies.base import ApiInfo, CompileEnv
from policies.context import RequestContext
from policies.keystore import KeyStore
from policies.plugins.key_auth import KeyAuthPolicy
from policies.validation import parse_config
from tests.policies.key_auth.test_keystore import record


def _ctx(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> RequestContext:
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    return RequestContext(
        scope={"headers": headers},
        receive=receive,
        method="GET",
        path="/x",
        query=query,
        headers=headers,
        host=b"gw",
        client_ip="192.0.2.1",
        request_id=b"rid",
        tenant_id="t1",
        api_id="api1",
        route_pattern="/",
        content_length=None,
        has_body=False,
    )


def test_identity_carries_the_subscription_scopes_and_groups():
    issued = keys.generate()
    row = record(
        issued.key_id,
        digest=keys.digest(issued.plaintext),
        pepper_id=keys.current_pepper_id(),
        scopes=frozenset({"orders:read"}),
        groups=frozenset({"gold"}),
        subscriptions={"api1": ("sub1", "plan1")},
    )
    store = KeyStore(lookup=lambda key_id: row if key_id == issued.key_id else None)
    env = CompileEnv(api=ApiInfo(api_id="api1", tenant_id="t1"), services={"keys": store, "tenant_versions": {"t1": 1}})
    handler = KeyAuthPolicy.compile(parse_config("key-auth", {}), env)
    headers = [(b"x-api-key", issued.plaintext.encode()), (b"accept", b"*/*")]
    ctx = _ctx(headers)

    assert asyncio.run(handler.request(ctx)) is None
    identity = ctx.identity
    assert identity is not None
    assert (identity.consumer_id, identity.consumer_name, identity.application_id) == ("c1", "acme", "app1")
    assert identity.credential == "key"
    assert identity.key_prefix == issued.display_prefix
    assert identity.scopes == frozenset({"orders:read"})
    assert identity.groups == frozenset({"gold"})
    assert identity.subscription is not None
    assert (identity.subscription.subscription_id, identity.subscription.plan_id) == ("sub1", "plan1")
    # The client's header list is not edited in place: the proxy leaves the key header out when forwarding.
    assert b"x-api-key" in ctx.drop_headers
    assert headers[0][0] == b"x-api-key"
    assert issued.plaintext.encode() not in b"".join(v for _, v in ctx.upstream_headers)
