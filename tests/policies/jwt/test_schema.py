"""jwt config: what an operator may save, and the messages (naming the field) when it is wrong."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from policies.base import ConfigError
from policies.validation import parse_config
from tests.policies.jwt.support import HS_SECRET, ec_key, public_pem, rsa_key

RSA_PEM = public_pem(rsa_key())
EC_PEM = public_pem(ec_key())


def test_secrets_and_public_keys_are_bound_to_their_algorithm():
    parsed = parse_config(
        "jwt",
        {
            "algorithms": ["HS256", "RS256", "ES256"],
            "keys": [{"kid": "h", "secret": HS_SECRET}, {"kid": "r", "public_key": RSA_PEM}, {"public_key": EC_PEM}],
            "issuer": "https://idp.example",
            "audience": ["orders", "billing"],
        },
    )
    assert [(k.kid, k.algorithm) for k in parsed.keys] == [("h", "HS256"), ("r", "RS256"), (None, "ES256")]
    assert parsed.issuers == ("https://idp.example",)
    assert parsed.audiences == ("orders", "billing")
    assert (parsed.leeway, parsed.consumer_claim, parsed.scope_claim, parsed.require_exp) == (30, "sub", "scope", True)
    assert parsed.hide_credentials is False


def test_a_jwks_url_alone_is_enough_for_rs256_and_es256(settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    parsed = parse_config("jwt", {"algorithms": ["RS256", "ES256"], "jwks_url": "https://idp.example/jwks.json"})
    assert parsed.jwks_url == "https://idp.example/jwks.json"
    assert parsed.keys == ()


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"algorithms": ["none"], "keys": [{"secret": HS_SECRET}]}, "algorithms[0]: 'none' is not one of"),
        ({"algorithms": ["HS512"], "keys": [{"secret": HS_SECRET}]}, "algorithms[0]: 'HS512' is not one of"),
        ({"algorithms": [], "keys": [{"secret": HS_SECRET}]}, "algorithms: [] should be non-empty"),
        ({"keys": [{"secret": HS_SECRET}]}, "'algorithms' is a required property"),
        (
            {"algorithms": ["HS256"], "keys": [{"secret": "short"}]},
            "keys[0].secret: an HS256 secret must be at least 32",
        ),
        (
            {"algorithms": ["HS256"], "keys": [{"secret": "x" * 31}]},
            "keys[0].secret: an HS256 secret must be at least 32",
        ),
        ({"algorithms": ["HS256"], "keys": [{"secret": RSA_PEM}]}, "keys[0].secret: looks like a PEM key"),
        (
            {"algorithms": ["RS256"], "keys": [{"public_key": "not a key"}]},
            "keys[0].public_key: is not a PEM public key",
        ),
        (
            {"algorithms": ["RS256"], "keys": [{"public_key": public_pem(rsa_key(1024))}]},
            "keys[0].public_key: an RSA key needs at least 2048 bits",
        ),
        (
            {"algorithms": ["ES256"], "keys": [{"public_key": public_pem(ec_key(ec.SECP384R1()))}]},
            "keys[0].public_key: an EC key must be on P-256",
        ),
        (
            {"algorithms": ["HS256"], "keys": [{"public_key": RSA_PEM}]},
            "keys[0].public_key: this is an RS256 key but algorithms does not list RS256",
        ),
        (
            {"algorithms": ["RS256"], "keys": [{"secret": HS_SECRET}]},
            "keys[0].secret: a secret is an HS256 key but algorithms does not list HS256",
        ),
        (
            {"algorithms": ["HS256", "RS256"], "keys": [{"secret": HS_SECRET}]},
            "algorithms[1]: RS256 is listed but there is no such public_key and no jwks_url",
        ),
        (
            {"algorithms": ["HS256"], "jwks_url": "https://idp.example/jwks"},
            "algorithms[0]: HS256 is listed but no key has a secret",
        ),
        ({"algorithms": ["RS256"]}, "keys: give verification keys, a jwks_url, or both"),
        ({"algorithms": ["HS256"], "keys": []}, "keys: [] should be non-empty"),
        ({"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET, "public_key": RSA_PEM}]}, "keys[0]:"),
        ({"algorithms": ["HS256"], "keys": [{"kid": "a"}]}, "keys[0]:"),
        (
            {"algorithms": ["HS256"], "keys": [{"kid": "a", "secret": HS_SECRET}, {"kid": "a", "secret": HS_SECRET}]},
            "keys[1].kid: 'a' is used by two keys",
        ),
        ({"algorithms": ["RS256"], "jwks_url": "ftp://idp.example/jwks"}, "jwks_url: 'ftp://idp.example/jwks' is not"),
        ({"algorithms": ["RS256"], "jwks_url": "https://u:p@idp.example/jwks"}, "jwks_url: must not carry credentials"),
        ({"algorithms": ["RS256"], "jwks_url": "https://idp.example:99999/"}, "jwks_url: 'https://idp.example:99999/'"),
        ({"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET}], "leeway_seconds": 301}, "leeway_seconds: 301 is"),
        ({"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET}], "header": "bad header"}, "header: 'bad header'"),
        ({"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET}], "cookie": "a;b"}, "cookie: 'a;b'"),
        ({"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET}], "issuer": []}, "issuer: [] is not valid"),
        (
            {
                "algorithms": ["HS256"],
                "keys": [{"secret": HS_SECRET}],
                "require_exp": False,
                "max_lifetime_seconds": 60,
            },
            "max_lifetime_seconds: needs require_exp",
        ),
        (
            {"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET}], "algorithm": "HS256"},
            "config: Additional properties are not allowed ('algorithm' was unexpected)",
        ),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("jwt", config)
    assert fragment in str(excinfo.value)


def test_plain_http_jwks_is_refused_unless_private_targets_are_allowed(settings):
    config = {"algorithms": ["RS256"], "jwks_url": "http://127.0.0.1:9/jwks"}
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(ConfigError, match=r"jwks_url: must use https://"):
        parse_config("jwt", config)
    settings.APIM_ALLOW_PRIVATE_TARGETS = True
    assert parse_config("jwt", config).jwks_url == "http://127.0.0.1:9/jwks"


def test_jwt_cannot_be_attached_to_a_consumer():
    from policies.validation import check_scope

    assert check_scope("jwt", "consumer") is not None
    assert check_scope("jwt", "api") is None
