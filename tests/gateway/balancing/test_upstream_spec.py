"""gateway.upstream_spec: model fields to seconds, validation, parsed target URLs."""

import pytest

from gateway.upstream_spec import TargetSpec, UpstreamSpec


def test_from_fields_converts_units():
    spec = UpstreamSpec.from_fields(
        id=42,
        targets=[TargetSpec("http://a:8000/base/", weight=5)],
        load_balancing="least_connections",
        connect_timeout_ms=1500,
        read_timeout_ms=30_000,
        write_timeout_ms=250,
        healthcheck_interval_s=7,
        healthcheck_timeout_ms=800,
        ejection_base_s=12,
    )
    assert spec.id == "42"
    assert (spec.connect_timeout, spec.read_timeout, spec.write_timeout) == (1.5, 30.0, 0.25)
    assert (spec.healthcheck_interval, spec.healthcheck_timeout, spec.ejection_base) == (7.0, 0.8, 12.0)


def test_target_url_parts():
    t = TargetSpec("https://user@api.internal:8443/v1/")
    assert (t.origin, t.host_header, t.path_prefix) == ("https://api.internal:8443", b"api.internal:8443", b"/v1")
    assert TargetSpec("http://a").path_prefix == b""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"load_balancing": "random"},
        {"targets": (TargetSpec("http://a"), TargetSpec("http://a"))},
        {"passive_failure_threshold": 0},
        {"ejection_base": 0},
    ],
)
def test_invalid_specs_are_rejected(kwargs):
    with pytest.raises(ValueError, match=r"\w"):
        UpstreamSpec(id="u", **kwargs)


@pytest.mark.parametrize("bad", [{"url": "ftp://a"}, {"url": "http://"}, {"url": "http://a", "weight": 1001}])
def test_invalid_targets_are_rejected(bad):
    with pytest.raises(ValueError, match=r"\w"):
        TargetSpec(**bad)


def test_pickable():
    assert TargetSpec("http://a").pickable
    assert not TargetSpec("http://a", weight=0).pickable
    assert not TargetSpec("http://a", enabled=False).pickable
