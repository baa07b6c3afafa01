"""``api_key_rotate``: a successor printed once; the old key lives for the grace period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError
from django.utils import timezone

from consumers.models import APIKey
from consumers.selectors import api_key_verify
from tests.apim.commands.support import dump_database, run, unchanged

pytestmark = pytest.mark.django_db


def test_rotates_with_a_grace_period_and_prints_the_successor_once(tenant, orders_api, issue):
    old_plaintext = issue("--scope", "orders:read", "--api", "orders")
    old = APIKey.objects.get()
    result = run("api_key_rotate", "--tenant", tenant.slug, old.prefix, "--grace-seconds", "600")
    successor = result.out.rstrip("\n").splitlines()[-1]
    check = api_key_verify(tenant=tenant, plaintext=successor)
    assert check.ok and check.key.rotated_from == old
    assert check.key.scopes == ["orders:read"] and list(check.key.allowed_apis.all()) == [orders_api]
    assert result.out.count(successor) == 1 and successor not in dump_database()
    assert f"Rotated {old.prefix} → {check.key.prefix}" in result.out
    old.refresh_from_db()
    assert timedelta(seconds=590) < old.expires_at - timezone.now() <= timedelta(seconds=600)
    assert api_key_verify(tenant=tenant, plaintext=old_plaintext).ok  # still inside the grace period


def test_zero_grace_ends_the_old_key_now_and_quiet_prints_only_the_key(tenant, issue):
    old_plaintext = issue()
    prefix = APIKey.objects.get().prefix
    result = run("api_key_rotate", "--tenant", tenant.slug, prefix, "--grace-seconds", "0", "--quiet")
    assert api_key_verify(tenant=tenant, plaintext=result.out.strip()).ok
    assert result.out.count("\n") == 1
    assert api_key_verify(tenant=tenant, plaintext=old_plaintext).reason == "key_expired"


def test_refuses_revoked_rotated_unknown_keys_and_a_negative_grace(tenant, issue):
    issue()
    issue()
    revoked, live = APIKey.objects.order_by("created_at")
    run("api_key_revoke", "--tenant", tenant.slug, revoked.prefix)
    with unchanged(), pytest.raises(CommandError, match=f"Key {revoked.prefix} is revoked and cannot be rotated"):
        run("api_key_rotate", "--tenant", tenant.slug, revoked.prefix)
    with unchanged(), pytest.raises(CommandError, match="grace: The grace period cannot be negative"):
        run("api_key_rotate", "--tenant", tenant.slug, live.prefix, "--grace-seconds", "-1")
    with unchanged(), pytest.raises(CommandError, match="has no API key 'apim_nothere'"):
        run("api_key_rotate", "--tenant", tenant.slug, "apim_nothere")
    run("api_key_rotate", "--tenant", tenant.slug, live.prefix)
    with unchanged(), pytest.raises(CommandError, match="was already rotated; rotate its successor"):
        run("api_key_rotate", "--tenant", tenant.slug, live.prefix)
