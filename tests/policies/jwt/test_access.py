"""jwt through a real gateway, real upstream and the real database: real tokens, real keys, real failures."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.policies.jwt.support import HS_SECRET, ec_key, public_pem, raw_token, rsa_key, token

RSA = rsa_key()
EC = ec_key()
OTHER_RSA = rsa_key()


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _upstream_headers(response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


ALL_KEYS = {
    "algorithms": ["HS256", "RS256", "ES256"],
    "keys": [{"secret": HS_SECRET}, {"public_key": public_pem(RSA)}, {"public_key": public_pem(EC)}],
}


@pytest.mark.parametrize(("key", "alg"), [(HS_SECRET, "HS256"), (RSA, "RS256"), (EC, "ES256")])
def test_a_valid_token_reaches_the_upstream_as_its_consumer(world, http, key, alg):
    world.configure(ALL_KEYS)
    response = http.get(f"{world.gateway.url}/svc/x", headers=_bearer(token(key, alg)))
    assert response.status_code == 200, response.text
    seen = _upstream_headers(response)
    assert seen["x-consumer-id"] == [str(world.consumers["alice"].pk)]
    assert seen["x-consumer-username"] == ["alice"]
    assert seen["authorization"][0].startswith("Bearer ")  # kept unless hide_credentials


def test_no_token_is_401_token_missing_with_a_bearer_challenge(world, http):
    world.configure(ALL_KEYS)
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer"}):
        response = http.get(f"{world.gateway.url}/svc/x", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "token_missing"
        assert response.headers["www-authenticate"] == 'Bearer realm="apim"'


ISS, AUD = "https://idp.example", "orders"


def _t(key, alg: str, **claims) -> str:
    """A token that is right in every respect but the ones the case overrides."""
    return token(key, alg, **{"iss": ISS, "aud": AUD, **claims})


def _alg_confusion() -> str:
    # The RS256 public key PEM (which every client may know) used as an HS256 secret.
    payload = {"sub": "alice", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 600}
    return raw_token({"alg": "HS256", "typ": "JWT"}, payload, hs_secret=public_pem(RSA).encode())


def _alg_none() -> str:
    payload = {"sub": "alice", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 600}
    return raw_token({"alg": "none", "typ": "JWT"}, payload)


# case: (token factory, the deny reason recorded for it)
BAD_TOKENS = {
    "expired": (lambda: _t(RSA, "RS256", exp=int(time.time()) - 120), "token_expired"),
    "not_yet_valid": (lambda: _t(RSA, "RS256", nbf=int(time.time()) + 3600), "token_not_yet_valid"),
    "issued_in_the_future": (lambda: _t(RSA, "RS256", iat=int(time.time()) + 3600), "token_not_yet_valid"),
    "wrong_issuer": (lambda: _t(RSA, "RS256", iss="https://evil.example"), "token_issuer"),
    "no_issuer": (lambda: _t(RSA, "RS256", iss=None), "token_claim_missing"),
    "wrong_audience": (lambda: _t(RSA, "RS256", aud="billing"), "token_audience"),
    "wrong_key": (lambda: _t(OTHER_RSA, "RS256"), "token_signature"),
    "wrong_secret": (lambda: _t("y" * 40, "HS256"), "token_signature"),
    "alg_none": (_alg_none, "token_algorithm"),
    "alg_confusion": (_alg_confusion, "token_signature"),
    "alg_not_configured": (lambda: _t(RSA, "RS512"), "token_algorithm"),
    "no_exp": (lambda: _t(RSA, "RS256", exp=None), "token_claim_missing"),
    "malformed": (lambda: "not.a.jwt", "token_malformed"),
    "garbage": (lambda: "%%%", "token_malformed"),
    "huge": (lambda: "a" * 20_000, "token_malformed"),
    "unknown_consumer": (lambda: _t(RSA, "RS256", sub="mallory"), "consumer_unknown"),
    "suspended_consumer": (lambda: _t(RSA, "RS256", sub="bob"), "consumer_suspended"),
    "no_consumer_claim": (lambda: _t(RSA, "RS256", sub=None), "token_consumer_claim"),
    "too_long_lived": (lambda: _t(RSA, "RS256", exp=int(time.time()) + 7200), "token_lifetime"),
}
STRICT = {**ALL_KEYS, "issuer": [ISS, "https://other.example"], "audience": AUD, "max_lifetime_seconds": 3600}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_every_bad_token_gets_the_same_401_and_its_own_reason(world, http, case):
    world.configure(STRICT)
    assert http.get(f"{world.gateway.url}/svc/x", headers=_bearer(_t(RSA, "RS256"))).status_code == 200

    make, reason = BAD_TOKENS[case]
    bad = make()
    response = http.get(f"{world.gateway.url}/svc/x", headers=_bearer(bad))
    assert response.status_code == 401, (case, response.text)
    assert response.json()["error"] == {
        "code": "token_invalid",
        "message": "The bearer token is invalid or expired.",
        "details": {},
    }
    assert response.headers["www-authenticate"] == 'Bearer realm="apim", error="invalid_token"'

    # The same token through the compiled handler, to see the recorded reason (the client never does).
    handler = _handler(world)
    ctx = _ctx(world, bad)
    denial = asyncio.run(handler.request(ctx))
    assert denial is not None and denial.deny_reason == reason


def _handler(world):
    chain = world.gateway.snapshot.router.lookup(b"127.0.0.1", "GET", "/svc/x").entry.api.extra
    return next(h for h in chain.before if h.name == "jwt")


def _ctx(world, value: str):
    from policies.context import RequestContext

    headers = [(b"authorization", f"Bearer {value}".encode())]
    return RequestContext(
        scope={"headers": headers},
        receive=None,
        method="GET",
        path="/svc/x",
        query=b"",
        headers=headers,
        host=b"127.0.0.1",
        client_ip="127.0.0.1",
        request_id=b"r",
        tenant_id=world.tenant_id,
        api_id="a0",
        route_pattern="/svc",
        content_length=None,
        has_body=False,
    )


def test_leeway_tolerates_small_clock_skew(world, http):
    world.configure({**ALL_KEYS, "leeway_seconds": 120})
    slightly_expired = token(RSA, "RS256", exp=int(time.time()) - 30)
    assert http.get(f"{world.gateway.url}/svc/x", headers=_bearer(slightly_expired)).status_code == 200
    world.configure({**ALL_KEYS, "leeway_seconds": 0})
    assert http.get(f"{world.gateway.url}/svc/x", headers=_bearer(slightly_expired)).status_code == 401


def test_kid_selects_the_key_and_an_unknown_kid_is_refused(world, http):
    world.configure(
        {
            "algorithms": ["RS256"],
            "keys": [
                {"kid": "one", "public_key": public_pem(RSA)},
                {"kid": "two", "public_key": public_pem(OTHER_RSA)},
            ],
        }
    )
    url = f"{world.gateway.url}/svc/x"
    assert http.get(url, headers=_bearer(token(RSA, "RS256", kid="one"))).status_code == 200
    assert http.get(url, headers=_bearer(token(OTHER_RSA, "RS256", kid="two"))).status_code == 200
    assert http.get(url, headers=_bearer(token(RSA, "RS256", kid="two"))).status_code == 401
    assert http.get(url, headers=_bearer(token(RSA, "RS256", kid="three"))).status_code == 401
    assert http.get(url, headers=_bearer(token(OTHER_RSA, "RS256"))).status_code == 200  # no kid: any key


def test_forged_identity_headers_never_reach_the_upstream(world, http):
    world.configure(ALL_KEYS)
    response = http.get(
        f"{world.gateway.url}/svc/x",
        headers={**_bearer(token(RSA, "RS256")), "X-Consumer-ID": "admin", "X-Consumer-Username": "root"},
    )
    assert response.status_code == 200
    seen = _upstream_headers(response)
    assert seen["x-consumer-id"] == [str(world.consumers["alice"].pk)]
    assert seen["x-consumer-username"] == ["alice"]


def test_hide_credentials_strips_the_token_upstream(world, http):
    world.configure({**ALL_KEYS, "hide_credentials": True})
    response = http.get(f"{world.gateway.url}/svc/x", headers=_bearer(token(RSA, "RS256")))
    assert response.status_code == 200
    assert "authorization" not in _upstream_headers(response)


def test_token_from_a_custom_header_or_a_cookie(world, http):
    world.configure({**ALL_KEYS, "header": "X-Token", "cookie": "session", "hide_credentials": True})
    url = f"{world.gateway.url}/svc/x"
    assert http.get(url, headers={"X-Token": token(RSA, "RS256")}).status_code == 200
    response = http.get(url, headers={"Cookie": f"theme=dark; session={token(EC, 'ES256')}"})
    assert response.status_code == 200
    assert _upstream_headers(response)["cookie"] == ["theme=dark"]
    assert http.get(url, headers=_bearer(token(RSA, "RS256"))).status_code == 401  # Authorization is not looked at


def test_consumer_lookups_are_cached_hits_and_misses(world, http):
    world.configure(ALL_KEYS)
    url = f"{world.gateway.url}/svc/x"
    for _ in range(3):
        assert http.get(url, headers=_bearer(token(RSA, "RS256"))).status_code == 200
        assert http.get(url, headers=_bearer(token(RSA, "RS256", sub="mallory"))).status_code == 401
    assert world.directory.lookups == 2


def test_a_suspended_consumer_is_refused_once_the_gateway_has_the_new_version(world, http):
    from consumers.services import consumer_activate, consumer_suspend

    world.configure(ALL_KEYS)
    url = f"{world.gateway.url}/svc/x"
    assert http.get(url, headers=_bearer(token(RSA, "RS256"))).status_code == 200
    consumer_suspend(consumer=world.consumers["alice"], actor=None)
    world.configure(ALL_KEYS)  # what the reload after the version bump does
    assert http.get(url, headers=_bearer(token(RSA, "RS256"))).status_code == 401
    consumer_activate(consumer=world.consumers["alice"], actor=None)
    consumer_activate(consumer=world.consumers["bob"], actor=None)
    world.configure(ALL_KEYS)
    assert http.get(url, headers=_bearer(token(RSA, "RS256"))).status_code == 200
    assert http.get(url, headers=_bearer(token(RSA, "RS256", sub="bob"))).status_code == 200


def test_a_consumer_of_another_tenant_is_unknown(world, http):
    from apim.services.tenants import tenant_create
    from consumers.services import consumer_create

    other = tenant_create(slug="other", name="Other", actor=None)
    consumer_create(tenant=other, name="carol", actor=None)
    world.configure(ALL_KEYS)
    assert http.get(f"{world.gateway.url}/svc/x", headers=_bearer(token(RSA, "RS256", sub="carol"))).status_code == 401


def test_a_database_outage_on_a_miss_is_503_not_a_pass(world, http):
    async def broken(fn):
        raise ConnectionError("database unreachable")

    from policies.consumer_directory import ConsumerDirectory

    world.directory = ConsumerDirectory(run_in_thread=broken)
    world.configure(ALL_KEYS)
    response = http.get(f"{world.gateway.url}/svc/x", headers=_bearer(token(RSA, "RS256")))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "auth_unavailable"


def test_other_apis_are_not_affected(world, http, echo_server):
    from tests.gateway.harness import Api

    world.configure(ALL_KEYS, Api(base_path="/open", targets=[echo_server.origin], tenant=world.tenant_id))
    assert http.get(f"{world.gateway.url}/svc/x").status_code == 401
    assert http.get(f"{world.gateway.url}/open/x").status_code == 200


def test_a_token_is_verified_once_and_refused_once_it_expires(world, http, monkeypatch):
    from policies.plugins import jwt as jwt_policy

    world.configure({**ALL_KEYS, "leeway_seconds": 0})
    decodes = []
    real_decode = jwt_policy.jwt.decode
    monkeypatch.setattr(jwt_policy.jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    short_lived = token(RSA, "RS256", exp=int(time.time()) + 2)
    for _ in range(3):
        assert http.get(f"{world.gateway.url}/svc/x", headers=_bearer(short_lived)).status_code == 200
    assert len(decodes) == 1  # the signature was checked on the first request only
    # A tampered copy of a remembered token is another token: verified, and refused.
    head, payload, signature = short_lived.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    assert http.get(f"{world.gateway.url}/svc/x", headers=_bearer(tampered)).status_code == 401
    time.sleep(2.2)  # past exp: the remembered token must not outlive it
    response = http.get(f"{world.gateway.url}/svc/x", headers=_bearer(short_lived))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"
