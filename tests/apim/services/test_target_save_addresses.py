"""apim.services.catalog.target_save: targets may not lead back into the gateway (SSRF rules).

Names with a known answer come from ``tests.fake_dns`` (``*.apim.test`` only).
"""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError

from apim.models import AuditEvent, Target
from apim.services.catalog import target_save
from apim.target_addresses import address_refusal, host_refusal, literal_refusal
from tests.fake_dns import install as fake_dns_install

REFUSED_URLS = [
    "http://127.0.0.1:9000",
    "http://127.5.6.7",
    "http://2130706433",  # decimal 127.0.0.1
    "http://0177.0.0.1",  # octal
    "http://0x7f.0.0.1",  # hex
    "http://0x7f000001",
    "http://127.1",  # short form
    "http://localhost:8000",
    "http://localhost.:8000",  # trailing dot
    "http://LOCALHOST",
    "http://api.localhost",
    "http://[::1]:8080",
    "http://[::ffff:127.0.0.1]",  # IPv4-mapped
    "http://[::ffff:7f00:1]",
    "http://[0:0:0:0:0:ffff:127.0.0.1]",
    "http://0.0.0.0:8080",
    "http://0",
    "http://[::]",
    "http://169.254.169.254",  # cloud metadata
    "http://169.254.169.254/latest/meta-data",
    "https://169.254.1.1",
    "http://[fe80::1]",
    "http://[::ffff:169.254.169.254]",
]


@pytest.fixture
def strict(settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    return settings


@pytest.fixture
def fake_dns(monkeypatch):
    return fake_dns_install(monkeypatch)


def _target(upstream, url):
    return Target(tenant=upstream.tenant, upstream=upstream, url=url)


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_forbidden_spellings_are_refused_on_url(strict, upstream, operator, url):
    with pytest.raises(ValidationError) as caught:
        target_save(target=_target(upstream, url), actor=operator)
    errors = caught.value.message_dict
    assert list(errors) == ["url"]
    assert "APIM_ALLOW_PRIVATE_TARGETS" in errors["url"][0]
    assert caught.value.error_dict["url"][0].code == "url_forbidden_address"
    assert not Target.objects.exists()
    assert not AuditEvent.objects.filter(action="target.create").exists()


def test_userinfo_trick_is_refused(strict, upstream, operator):
    """``http://good@127.0.0.1``: the host is 127.0.0.1; credentials are refused outright."""
    with pytest.raises(ValidationError) as caught:
        target_save(target=_target(upstream, "http://good.example@127.0.0.1/"), actor=operator)
    assert "url" in caught.value.message_dict
    assert not Target.objects.exists()


@pytest.mark.parametrize("url", ["http://203.0.113.10:8080", "https://[2001:db8::10]", "http://10.1.2.3:8000"])
def test_public_and_private_network_addresses_are_allowed(strict, upstream, operator, url):
    target = target_save(target=_target(upstream, url), actor=operator)
    assert Target.objects.get(pk=target.pk).url == url


def test_a_name_is_judged_by_every_address_it_resolves_to(strict, fake_dns, upstream, operator):
    fake_dns["public.apim.test"] = ["203.0.113.7"]
    fake_dns["mixed.apim.test"] = ["203.0.113.7", "127.0.0.1"]
    fake_dns["meta.apim.test"] = ["169.254.169.254"]
    fake_dns["v6.apim.test"] = ["::ffff:127.0.0.1"]
    target_save(target=_target(upstream, "http://public.apim.test"), actor=operator)
    for name, shown in (("mixed", "127.0.0.1"), ("meta", "169.254.169.254"), ("v6", "::ffff:127.0.0.1")):
        with pytest.raises(ValidationError) as caught:
            target_save(target=_target(upstream, f"http://{name}.apim.test:8080"), actor=operator)
        message = caught.value.message_dict["url"][0]
        assert f"resolves to {shown}" in message
    assert list(Target.objects.values_list("url", flat=True)) == ["http://public.apim.test"]


def test_an_unresolvable_host_is_refused_with_a_clear_message(strict, fake_dns, upstream, operator):
    with pytest.raises(ValidationError) as caught:
        target_save(target=_target(upstream, "http://nowhere.apim.test"), actor=operator)
    assert "could not be resolved" in caught.value.message_dict["url"][0]


def test_an_update_is_checked_too(strict, upstream, operator, settings):
    target = target_save(target=_target(upstream, "http://203.0.113.10"), actor=operator)
    target.url = "http://169.254.169.254"
    with pytest.raises(ValidationError):
        target_save(target=target, actor=operator)
    assert Target.objects.get(pk=target.pk).url == "http://203.0.113.10"


def test_the_gateways_own_port_on_a_local_address_is_refused(strict, upstream, operator):
    """An address of this machine that is not loopback, on the gateway's port, is the gateway itself."""
    local = _non_loopback_local_address()
    if local is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    strict.APIM_GATEWAY_PORT = 18081
    with pytest.raises(ValidationError) as caught:
        target_save(target=_target(upstream, f"http://{local}:18081"), actor=operator)
    assert "own listening port" in caught.value.message_dict["url"][0]
    target_save(target=_target(upstream, f"http://{local}:18082"), actor=operator)  # another port is fine


def test_allowed_when_the_setting_is_on(settings, upstream, operator):
    settings.APIM_ALLOW_PRIVATE_TARGETS = True
    for url in ("http://127.0.0.1:9000", "http://169.254.169.254", "http://localhost:8000"):
        target_save(target=_target(upstream, url), actor=operator)
    assert Target.objects.count() == 3


def test_the_setting_defaults_off_in_base_and_production_and_on_in_local_and_test():
    import os

    from apim.settings import base, local, test

    # base.py reads the environment: without the variable it is False.
    if "APIM_ALLOW_PRIVATE_TARGETS" not in os.environ:
        assert base.APIM_ALLOW_PRIVATE_TARGETS is False
        assert local.APIM_ALLOW_PRIVATE_TARGETS is True
    assert test.APIM_ALLOW_PRIVATE_TARGETS is True


def test_address_rules_directly():
    assert address_refusal("127.0.0.1", 80)
    assert address_refusal("::ffff:127.0.0.1", 80)
    assert address_refusal("::127.0.0.1", 80)  # IPv4-compatible
    assert address_refusal("0.1.2.3", 80)
    assert address_refusal("fe80::1%eth0", 80)
    assert address_refusal("203.0.113.1", 80) is None
    assert address_refusal("10.0.0.1", 80) is None
    assert address_refusal("not-an-ip", 80)
    assert host_refusal("127.0.0.1", 80)
    assert literal_refusal("2130706433", 80)
    assert literal_refusal("example.invalid", 80) is None  # no DNS in the literal check


def _non_loopback_local_address() -> str | None:
    """The IPv4 address of a non-loopback interface (SIOCGIFADDR), without sending anything."""
    import fcntl
    import struct

    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                raw = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
        address = socket.inet_ntoa(raw[20:24])
        if not address.startswith("127."):
            return address
    return None


def test_a_target_saved_while_allowed_can_still_be_edited_and_deleted(settings, upstream, operator):
    from apim.services.catalog import target_delete

    settings.APIM_ALLOW_PRIVATE_TARGETS = True
    target = target_save(target=_target(upstream, "http://127.0.0.1:9000"), actor=operator)
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    target.weight = 5
    target_save(target=target, actor=operator)  # the URL did not change: not checked again
    assert Target.objects.get(pk=target.pk).weight == 5
    target.url = "http://127.0.0.1:9001"
    with pytest.raises(ValidationError):
        target_save(target=target, actor=operator)
    target.url = "http://127.0.0.1:9000"
    target_delete(target=target, actor=operator)
    assert not Target.objects.filter(pk=target.pk).exists()
