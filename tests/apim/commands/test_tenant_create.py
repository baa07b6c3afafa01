"""``tenant_create``: a tenant, its hosts and its owner; bad input changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError

from apim.models import AuditEvent, Membership, Role, Tenant
from tests.factories import TenantFactory, UserFactory

from .support import run, unchanged

pytestmark = pytest.mark.django_db


def test_creates_tenant_hosts_and_a_staff_owner_and_prints_a_generated_password_once():
    result = run(
        "tenant_create",
        "acme",
        "--name",
        "Acme",
        "--host",
        "api.acme.test",
        "--host",
        "API2.acme.test",
        "--default",
        "--admin-username",
        "ops",
        "--admin-email",
        "ops@acme.test",
    )
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme" and tenant.is_default
    assert sorted(tenant.hosts.values_list("host", flat=True)) == ["api.acme.test", "api2.acme.test"]
    membership = Membership.objects.get(tenant=tenant)
    user = membership.user
    assert membership.role == Role.OWNER
    assert user.is_staff and not user.is_superuser and user.email == "ops@acme.test"
    password = result.out.split("Login         : ops / ")[1].split()[0]
    assert len(password) >= 20 and user.check_password(password)
    assert result.out.count(password) == 1
    assert "Created tenant 'acme' (Acme)" in result.out
    assert AuditEvent.objects.filter(tenant=tenant, action="tenant.create").exists()


def test_reads_the_password_from_stdin_and_never_prints_it():
    result = run(
        "tenant_create", "acme", "--admin-username", "ops", "--admin-password-stdin", stdin="Tr1cky-pass-word\n"
    )
    user = get_user_model().objects.get(username="ops")
    assert user.check_password("Tr1cky-pass-word")
    assert "Tr1cky-pass-word" not in result.out
    assert "password from standard input" in result.out
    assert Tenant.objects.get(slug="acme").name == "acme"


def test_an_existing_user_becomes_owner_and_keeps_its_password():
    user = UserFactory(username="ops", is_staff=False)
    TenantFactory(slug="other")
    result = run("tenant_create", "acme", "--admin-username", "ops")
    user.refresh_from_db()
    assert user.is_staff and user.check_password("correct-horse-battery-staple")
    assert Membership.objects.get(tenant__slug="acme", user=user).role == Role.OWNER
    assert "existing user, password unchanged" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Slug", "--admin-username", "ops"], "'Bad Slug' is not a valid name"),
        (["acme", "--host", "bad host!", "--admin-username", "ops"], "not a valid hostname"),
        (["acme", "--admin-username", "ops", "--admin-email", "nope"], "email: Enter a valid email address"),
        (["acme", "--admin-username", "bad user name"], "username: Enter a valid username"),
    ],
)
def test_refuses_invalid_input(args, message):
    with unchanged(), pytest.raises(CommandError, match=message):
        run("tenant_create", *args)
    assert not get_user_model().objects.exists()


def test_refuses_a_duplicate_slug():
    run("tenant_create", "acme", "--admin-username", "ops")
    with unchanged(), pytest.raises(CommandError, match="slug: Tenant with this Slug already exists"):
        run("tenant_create", "acme", "--admin-username", "ops2")
    assert not get_user_model().objects.filter(username="ops2").exists()


def test_refuses_a_host_another_tenant_serves_and_a_second_default():
    TenantFactory(slug="first", is_default=True).hosts.create(host="api.acme.test")
    with unchanged(), pytest.raises(CommandError, match="host: Tenant host with this Host already exists"):
        run("tenant_create", "acme", "--host", "api.acme.test", "--admin-username", "ops")
    with unchanged(), pytest.raises(CommandError, match="'first' already serves unmatched hosts"):
        run("tenant_create", "acme", "--default", "--admin-username", "ops")


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("\n", "empty password"), ("short\n", "too short"), ("password123\n", "too common")],
)
def test_refuses_a_bad_password_from_stdin(stdin, message):
    with unchanged(), pytest.raises(CommandError, match=message):
        run("tenant_create", "acme", "--admin-username", "ops", "--admin-password-stdin", stdin=stdin)


def test_requires_an_admin_username():
    with unchanged(), pytest.raises(CommandError, match="--admin-username"):
        run("tenant_create", "acme")
