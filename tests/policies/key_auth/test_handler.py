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


def _handler_for(row, issued):
    store = KeyStore(lookup=lambda key_id: row if key_id == issued.key_id else None)
    env = CompileEnv(api=ApiInfo(api_id="api1", tenant_id="t1"), services={"keys": store, "tenant_versions": {"t1": 1}})
    return KeyAuthPolicy.compile(parse_config("key-auth", {}), env), store


def _subscribed_row(issued, **changes):
    return record(
        issued.key_id,
        digest=keys.digest(issued.plaintext),
        pepper_id=keys.current_pepper_id(),
        subscriptions={"api1": ("sub1", "plan1")},
        **changes,
    )


def test_an_accepted_key_is_remembered_by_fingerprint_not_by_plaintext(monkeypatch):
    issued = keys.generate()
    handler, store = _handler_for(_subscribed_row(issued), issued)

    async def run():
        first, second = (
            _ctx([(b"x-api-key", issued.plaintext.encode())]),
            _ctx([(b"x-api-key", issued.plaintext.encode())]),
        )
        assert await handler.request(first) is None
        store.clear()  # the store forgot the key: a second full check would need a lookup again
        verified = []
        monkeypatch.setattr(keys, "matches", lambda *a, **k: verified.append(1) or True)
        assert await handler.request(second) is None
        return first, second, verified

    first, second, verified = asyncio.run(run())
    assert verified == []  # neither parsed nor hashed again
    assert second.identity is first.identity
    assert second.upstream_headers == first.upstream_headers
    assert len(handler._grants) == 1
    (fingerprint,) = handler._grants
    assert issued.plaintext.encode() not in fingerprint
    assert len(fingerprint) == 16


def test_a_remembered_key_is_refused_once_it_expires(monkeypatch):
    issued = keys.generate()
    now = [1_000_000.0]
    monkeypatch.setattr("policies.plugins.key_auth.time.time", lambda: now[0])
    handler, _ = _handler_for(_subscribed_row(issued, expires_at=now[0] + 10), issued)
    header = [(b"x-api-key", issued.plaintext.encode())]

    async def run():
        assert await handler.request(_ctx(list(header))) is None
        now[0] += 11
        expired = _ctx(list(header))
        denial = await handler.request(expired)
        return denial

    denial = asyncio.run(run())
    assert denial is not None and denial.status == 401 and denial.reason == "key_expired"


def test_a_wrong_secret_for_a_remembered_key_id_is_still_refused():
    issued = keys.generate()
    handler, _ = _handler_for(_subscribed_row(issued), issued)
    # Same public id and a valid checksum, another secret.
    body = f"{keys.KEY_PREFIX}{issued.key_id}{'A' * keys.SECRET_LENGTH}"
    forged = body + keys._checksum(body)
    assert keys.parse(forged) is not None

    async def run():
        assert await handler.request(_ctx([(b"x-api-key", issued.plaintext.encode())])) is None
        return await handler.request(_ctx([(b"x-api-key", forged.encode())]))

    denial = asyncio.run(run())
    assert denial is not None and denial.status == 401 and denial.reason == "key_invalid"
    assert len(handler._grants) == 1  # refusals are never remembered


def test_two_different_keys_in_one_location_are_refused_as_ambiguous():
    issued, other = keys.generate(), keys.generate()
    handler, _ = _handler_for(_subscribed_row(issued), issued)
    good, bad = issued.plaintext.encode(), other.plaintext.encode()

    async def run():
        return [
            await handler.request(_ctx(headers))
            for headers in (
                [(b"x-api-key", good), (b"x-api-key", bad)],
                [(b"x-api-key", bad), (b"x-api-key", good)],
                [(b"x-api-key", good), (b"x-api-key", good + b" ")],  # the same key twice is not ambiguous
            )
        ]

    first, second, same = asyncio.run(run())
    for denial in (first, second):
        assert denial is not None and denial.status == 401
        assert (denial.code, denial.reason) == ("key_invalid", "key_ambiguous")
    assert same is None


def test_two_different_keys_in_the_query_are_refused_as_ambiguous():
    issued, other = keys.generate(), keys.generate()
    row = _subscribed_row(issued)
    store = KeyStore(lookup=lambda key_id: row if key_id == issued.key_id else None)
    env = CompileEnv(api=ApiInfo(api_id="api1", tenant_id="t1"), services={"keys": store, "tenant_versions": {"t1": 1}})
    handler = KeyAuthPolicy.compile(parse_config("key-auth", {"query_param": "apikey"}), env)
    query = f"apikey={issued.plaintext}&x=1&apikey={other.plaintext}".encode()
    denial = asyncio.run(handler.request(_ctx([], query=query)))
    assert denial is not None and denial.reason == "key_ambiguous"
    assert asyncio.run(handler.request(_ctx([], query=f"apikey={issued.plaintext}".encode()))) is None
