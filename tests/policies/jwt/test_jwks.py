"""jwt with a JWKS URL: a real loopback JWKS server, fetched off the request path, rotated, broken."""

from __future__ import annotations

import base64

from policies.jwks import JwksCache
from tests.policies.jwt.support import ec_key, jwk_of, poll, rsa_key, token

RSA1 = rsa_key()
RSA2 = rsa_key()
EC1 = ec_key()


def _config(server) -> dict:
    return {"algorithms": ["RS256", "ES256"], "jwks_url": server.url}


def _status(world, http, key, alg, kid) -> int:
    headers = {"Authorization": f"Bearer {token(key, alg, kid=kid)}"}
    return http.get(f"{world.gateway.url}/svc/x", headers=headers).status_code


def test_keys_from_the_jwks_verify_tokens_from_the_first_request(world, http, jwks_server):
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1"), jwk_of(EC1, "e1")]}
    world.configure(_config(jwks_server))
    assert jwks_server.hits == 1  # fetched while compiling, not on a request
    assert _status(world, http, RSA1, "RS256", "r1") == 200
    assert _status(world, http, EC1, "ES256", "e1") == 200
    assert _status(world, http, RSA2, "RS256", "r1") == 401  # right kid, wrong key
    assert _status(world, http, EC1, "ES256", "r1") == 401  # a kid of another algorithm
    assert jwks_server.hits == 1


def test_a_new_kid_is_picked_up_after_rotation_and_a_removed_one_stops(world, http, jwks_server):
    world.jwks = JwksCache(min_refresh_interval=0.2, refresh_interval=1.0)
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")]}
    world.configure(_config(jwks_server))
    assert _status(world, http, RSA1, "RS256", "r1") == 200
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1"), jwk_of(RSA2, "r2")]}
    # The first token with the new kid is refused at once (no waiting on the network) and schedules a refresh.
    assert poll(lambda: _status(world, http, RSA2, "RS256", "r2") == 200)
    jwks_server.document = {"keys": [jwk_of(RSA2, "r2")]}
    assert poll(lambda: _status(world, http, RSA1, "RS256", "r1") == 401)
    assert _status(world, http, RSA2, "RS256", "r2") == 200


def test_unknown_kids_cannot_make_the_gateway_hammer_the_provider(world, http, jwks_server):
    world.jwks = JwksCache(min_refresh_interval=3600)
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")]}
    world.configure(_config(jwks_server))
    for n in range(20):
        assert _status(world, http, RSA1, "RS256", f"forged-{n}") == 401
    assert jwks_server.hits == 1


def test_an_unreachable_jwks_fails_closed_then_recovers(world, http, jwks_server):
    jwks_server.status = 500
    world.configure(_config(jwks_server))
    assert world.jwks.status(jwks_server.url)["error"] == "the JWKS endpoint answered 500"
    assert _status(world, http, RSA1, "RS256", "r1") == 401
    jwks_server.status = 200
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")]}
    assert poll(lambda: _status(world, http, RSA1, "RS256", "r1") == 200)


def test_a_failed_refresh_keeps_the_keys_it_had(world, http, jwks_server):
    world.jwks = JwksCache(min_refresh_interval=0.1, refresh_interval=0.2)
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")]}
    world.configure(_config(jwks_server))
    jwks_server.raw = b"<html>maintenance</html>"
    hits = jwks_server.hits
    assert poll(lambda: _status(world, http, RSA1, "RS256", "r1") == 200 and jwks_server.hits > hits + 1)
    assert "not JSON" in world.jwks.status(jwks_server.url)["error"]
    assert _status(world, http, RSA1, "RS256", "r1") == 200


def test_symmetric_weak_and_oversized_sets_are_not_used(world, http, jwks_server):
    secret = base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()
    weak = rsa_key(1024)
    jwks_server.document = {
        "keys": [{"kty": "oct", "kid": "o1", "k": secret}, jwk_of(weak, "w1"), {"kty": "RSA", "kid": "junk"}]
    }
    world.configure({"algorithms": ["RS256", "ES256"], "jwks_url": jwks_server.url})
    assert world.jwks.status(jwks_server.url)["keys"] == 0
    assert _status(world, http, weak, "RS256", "w1") == 401

    world.jwks = JwksCache(max_bytes=2000)
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")] * 20}
    world.configure(_config(jwks_server))
    assert "larger than 2000 bytes" in world.jwks.status(jwks_server.url)["error"]
    assert _status(world, http, RSA1, "RS256", "r1") == 401
