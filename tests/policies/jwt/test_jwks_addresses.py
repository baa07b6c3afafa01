"""JWKS URLs under the SSRF rules: refused in the config by spelling, refused at fetch by resolved address."""

from __future__ import annotations

import asyncio
import socket

import pytest

from policies.base import ConfigError
from policies.jwks import JwksCache
from policies.validation import parse_config
from tests.fake_dns import install as fake_dns_install
from tests.policies.jwt.support import jwk_of, rsa_key

RSA1 = rsa_key()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/jwks",
        "https://2130706433/jwks",
        "https://0x7f.1/jwks",
        "https://localhost./jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://169.254.169.254/latest/jwks",
        "https://[fe80::1]/jwks",
    ],
)
def test_forbidden_jwks_urls_are_refused_in_the_config(settings, url):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(ConfigError, match=r"jwks_url: .*APIM_ALLOW_PRIVATE_TARGETS"):
        parse_config("jwt", {"algorithms": ["RS256"], "jwks_url": url})


def test_loopback_jwks_is_fine_when_private_targets_are_allowed(settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = True
    assert parse_config("jwt", {"algorithms": ["RS256"], "jwks_url": "https://127.0.0.1/jwks"}).jwks_url


def test_a_name_that_resolves_to_loopback_is_not_fetched(settings, monkeypatch, jwks_server):
    """The config only judges spellings (no DNS on the compile path); the fetch judges the address."""
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    dns = fake_dns_install(monkeypatch)
    dns["idp.apim.test"] = ["127.0.0.1"]
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")]}
    url = jwks_server.url.replace("127.0.0.1", "idp.apim.test")
    cache = JwksCache()
    cache.register(url)
    assert cache.keys(url) == ()
    assert "refused to fetch the JWKS" in cache.status(url)["error"]

    async def refresh() -> None:
        await cache._refresh(cache._sources[url])

    asyncio.run(refresh())
    assert "refused to fetch the JWKS" in cache.status(url)["error"]
    assert jwks_server.hits == 0

    settings.APIM_ALLOW_PRIVATE_TARGETS = True  # the same URL is fetched when allowed
    asyncio.run(refresh())
    assert [key.kid for key in cache.keys(url)] == ["r1"]
    assert jwks_server.hits == 1


def test_the_fetch_connects_to_the_address_it_checked_not_to_a_rebound_one(settings, monkeypatch, jwks_server):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    answers = fake_dns_install(monkeypatch)
    answers["idp.apim.test"] = ["203.0.113.10"]  # public (TEST-NET-3): passes the check; nothing listens
    resolve = socket.getaddrinfo
    lookups = []

    def rebinding(host, *args, **kwargs):
        """An attacker's DNS: after the first answer, the name points at the gateway's own machine."""
        result = resolve(host, *args, **kwargs)
        if str(host).rstrip(".").lower() == "idp.apim.test":
            lookups.append(host)
            answers["idp.apim.test"] = ["127.0.0.1"]
        return result

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    jwks_server.document = {"keys": [jwk_of(RSA1, "r1")]}
    url = jwks_server.url.replace("127.0.0.1", "idp.apim.test")
    cache = JwksCache(timeout=0.5)
    # The suite's socket guard (pytest-socket) stops any connection off loopback and names its
    # address: the fetch connected to the checked 203.0.113.10, not to the 127.0.0.1 that a
    # second lookup would have given, and the JWKS server on loopback was never reached.
    with pytest.raises(RuntimeError, match=r'host "203\.0\.113\.10"'):
        cache.register(url)
    assert jwks_server.hits == 0
    assert len(lookups) == 1


def test_a_pinned_fetch_keeps_the_name_for_host_and_tls(settings, monkeypatch):
    from policies.jwks import _pinned

    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    fake_dns_install(monkeypatch)["idp.apim.test"] = ["2001:db8::7", "203.0.113.10"]
    target, headers, extensions = _pinned("https://idp.apim.test/.well-known/jwks.json?v=2")
    assert target == "https://[2001:db8::7]:443/.well-known/jwks.json?v=2"
    assert headers["host"] == "idp.apim.test"
    assert extensions == {"sni_hostname": "idp.apim.test"}
    target, headers, extensions = _pinned("http://idp.apim.test:8443/jwks")
    assert (target, headers["host"], extensions) == ("http://[2001:db8::7]:8443/jwks", "idp.apim.test:8443", {})
