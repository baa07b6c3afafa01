"""analytics.records.to_row: the fast paths for canonical values agree with the general parsers."""

from __future__ import annotations

import uuid

import pytest

from analytics.records import COLUMNS, MAX_LENGTHS, to_row
from tests.analytics.support import make_record

COLUMN = {name: index for index, name in enumerate(COLUMNS)}


def row_with(**overrides) -> dict:
    return dict(zip(COLUMNS, to_row(make_record(**overrides)), strict=True))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("255.255.255.255", "255.255.255.255"),
        ("0.0.0.0", "0.0.0.0"),
        ("256.1.1.1", None),
        ("01.2.3.4", None),  # leading zeros are ambiguous (octal): refused, as ipaddress does
        ("1.2.3.4\n", None),
        ("1.2.3", None),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:1.2.3.4", "::ffff:102:304"),
        (12345, None),
        ("", None),
    ],
)
def test_client_ip_is_kept_only_when_valid_and_normalized(given, stored):
    assert row_with(client_ip=given)["client_ip"] == stored


def test_uuids_canonical_pass_through_and_others_are_normalized_or_dropped():
    value = uuid.uuid4()
    assert row_with(tenant_id=str(value))["tenant_id"] == str(value)
    assert row_with(api_id=str(value).upper())["api_id"] == str(value)
    assert row_with(consumer_id=value.hex)["consumer_id"] == str(value)
    assert row_with(application_id="not-a-uuid")["application_id"] is None
    assert row_with(application_id=str(value)[:-1] + "g")["application_id"] is None


def test_integers_are_clamped_and_non_integers_defaulted():
    row = row_with(status=1200, latency_us=-5, bytes_out=2**70, upstream_latency_us="x", gateway_latency_us=True)
    assert row["status"] == 999
    assert row["latency_us"] == 0
    assert row["bytes_out"] == 2**63 - 1
    assert row["upstream_latency_us"] is None
    assert row["gateway_latency_us"] == 0
    assert row_with(status=404)["status"] == 404


def test_text_is_truncated_and_stripped_of_nul():
    row = row_with(deny_reason="x" * 100, user_agent="a\x00b", method="GET")
    assert row["deny_reason"] == "x" * MAX_LENGTHS["deny_reason"]
    assert row["user_agent"] == "ab"
    assert row["method"] == "GET"
