"""``api_key_issue``: the plaintext appears once on stdout and nowhere else; bad input changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apim.models import AuditEvent
from consumers.models import APIKey
from consumers.selectors import api_key_verify
from tests.apim.commands.support import dump_database, run, unchanged
from tests.factories import ApiFactory

pytestmark = pytest.mark.django_db


def issue_args(tenant, *extra):
    return ["api_key_issue", "--tenant", tenant.slug, "--consumer", "partner", "--application", "mobile", *extra]


def test_prints_the_key_once_and_it_is_in_no_table_log_or_query(tenant, orders_api, mobile_app, caplog):
    caplog.set_level(logging.DEBUG)
    for name in logging.root.manager.loggerDict:
        caplog.set_level(logging.DEBUG, logger=name)
    connection.force_debug_cursor = True  # log SQL with its parameters, as DEBUG would
    try:
        with CaptureQueriesContext(connection) as queries:
            result = run(
                *issue_args(tenant, "--name", "ci", "--scope", "orders:read", "--api", "orders:v1"),
                "--expires-in-days",
                "30",
            )
    finally:
        connection.force_debug_cursor = False

    plaintext = result.out.rstrip("\n").splitlines()[-1]
    check = api_key_verify(tenant=tenant, plaintext=plaintext)
    assert check.ok
    key = check.key
    assert (key.name, key.scopes, key.application) == ("ci", ["orders:read"], mobile_app)
    assert list(key.allowed_apis.all()) == [orders_api]
    assert timedelta(days=29, hours=23) < key.expires_at - timezone.now() <= timedelta(days=30)

    assert result.out.count(plaintext) == 1
    assert [line for line in result.out.splitlines() if plaintext in line] == [plaintext]
    assert key.prefix in result.out and plaintext not in result.err
    assert plaintext not in dump_database()
    assert any("am_api_keys" in record.getMessage() for record in caplog.records)  # SQL was logged...
    assert not [record for record in caplog.records if plaintext in record.getMessage() + str(record.args)]
    assert not [query for query in queries.captured_queries if plaintext in query["sql"]]  # ...without the key
    assert AuditEvent.objects.filter(action="apikey.issue", object_id=str(key.pk)).count() == 1


def test_quiet_prints_only_the_key(tenant, mobile_app):
    result = run(*issue_args(tenant, "--quiet"))
    plaintext = result.out.strip()
    assert result.out == plaintext + "\n"
    assert api_key_verify(tenant=tenant, plaintext=plaintext).ok


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2099-01-31T12:00:00Z", datetime(2099, 1, 31, 12, tzinfo=UTC)),
        ("2099-01-31T14:00:00+02:00", datetime(2099, 1, 31, 12, tzinfo=UTC)),
        ("2099-01-31T12:00", datetime(2099, 1, 31, 12, tzinfo=UTC)),
        ("2099-01-31", datetime(2099, 1, 31, tzinfo=UTC)),
    ],
)
def test_expires_at_accepts_iso_8601_and_reads_no_offset_as_utc(tenant, mobile_app, value, expected):
    run(*issue_args(tenant, "--expires-at", value))
    assert APIKey.objects.get().expires_at == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expires-at", "2001-01-01T00:00:00Z"], "expires_at: The expiry date must be in the future"),
        (["--expires-at", "yesterday"], "'yesterday' is not an ISO 8601 date"),
        (["--expires-in-days", "0"], "must be a positive number of days, not 0"),
        (["--expires-in-days", "-3"], "must be a positive number of days, not -3"),
        (["--expires-in-days", "1", "--expires-at", "2099-01-01"], "not allowed with argument"),
        (["--api", "missing"], "has no API named 'missing'"),
        (["--api", "orders:v7"], "has no API named 'orders' version 'v7'"),
        (["--scope", "has space"], "'has space' is not a valid scope"),
    ],
)
def test_refuses_bad_input(tenant, orders_api, mobile_app, extra, message):
    with unchanged(), pytest.raises(CommandError, match=message):
        run(*issue_args(tenant, *extra))


@pytest.mark.parametrize(
    ("tenant_slug", "consumer", "application", "message"),
    [
        ("ghost", "partner", "mobile", "No tenant named 'ghost'"),
        ("{tenant}", "stranger", "mobile", "has no consumer named 'stranger'"),
        ("{tenant}", "partner", "web", "Consumer 'partner' has no application named 'web'"),
    ],
)
def test_refuses_unknown_names(tenant, mobile_app, tenant_slug, consumer, application, message):
    args = ["--tenant", tenant_slug.format(tenant=tenant.slug), "--consumer", consumer, "--application", application]
    with unchanged(), pytest.raises(CommandError, match=message):
        run("api_key_issue", *args)


def test_cannot_reach_another_tenants_application_or_api(tenant, other_tenant, mobile_app):
    ApiFactory(tenant=other_tenant, name="foreign")
    with unchanged(), pytest.raises(CommandError, match=f"Tenant '{other_tenant.slug}' has no consumer"):
        run(*issue_args(other_tenant))
    with unchanged(), pytest.raises(CommandError, match="has no API named 'foreign'"):
        run(*issue_args(tenant, "--api", "foreign"))
