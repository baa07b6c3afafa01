"""Management commands: success paths print what they say; bad input changes nothing."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.apps import apps
from django.core import serializers
from django.core.management import CommandError, call_command

from apim.models import API, ApiStatus, AuditEvent, Membership, Role, Tenant
from consumers.models import APIKey, Application, Consumer, Plan, Subscription, SubscriptionStatus
from consumers.selectors import api_key_verify
from tests.factories import ApiFactory, ApplicationFactory, TargetFactory, UpstreamFactory

pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def counts():
    return [model.objects.count() for model in (Tenant, API, APIKey, AuditEvent, Membership)]


def dump_database() -> str:
    return "\n".join(serializers.serialize("json", m._default_manager.all()) for m in apps.get_models())


def test_tenant_create_prints_password_once_and_makes_an_owner():
    output = run("tenant_create", "acme", "--name", "Acme", "--host", "api.acme.test", "--admin-username", "ops")
    tenant = Tenant.objects.get(slug="acme")
    membership = Membership.objects.get(tenant=tenant)
    assert membership.role == Role.OWNER and membership.user.is_staff
    password = output.split("Password (shown once): ")[1].strip()
    assert membership.user.check_password(password)
    assert list(tenant.hosts.values_list("host", flat=True)) == ["api.acme.test"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Slug", "--admin-username", "ops"], "not a valid name"),
        (["acme", "--host", "bad host", "--admin-username", "ops"], "not a valid hostname"),
        (["acme", "--admin-username", "ops", "--admin-email", "nope"], "valid email"),
    ],
)
def test_tenant_create_refuses_bad_input(args, message):
    before = counts()
    with pytest.raises(CommandError, match=message):
        run("tenant_create", *args)
    assert counts() == before


def test_tenant_create_refuses_a_duplicate_slug():
    run("tenant_create", "acme", "--admin-username", "ops")
    before = counts()
    with pytest.raises(CommandError, match="already exists"):
        run("tenant_create", "acme", "--admin-username", "ops2")
    assert counts() == before


@pytest.fixture
def world(tenant):
    upstream = UpstreamFactory(tenant=tenant)
    TargetFactory(upstream=upstream)
    api = ApiFactory(tenant=tenant, name="orders", upstream=upstream)
    app = ApplicationFactory(consumer__tenant=tenant, consumer__name="partner", name="mobile")
    return tenant, api, app


def test_api_lifecycle_moves_and_refuses(world):
    tenant, api, _ = world
    assert "published" in run("api_lifecycle", "--tenant", tenant.slug, "orders", "publish")
    before = counts()
    with pytest.raises(CommandError, match="cannot become retired"):
        run("api_lifecycle", "--tenant", tenant.slug, "orders:v1", "retire")
    assert counts() == before
    api.refresh_from_db()
    assert api.status == ApiStatus.PUBLISHED
    with pytest.raises(CommandError, match="no API named 'nope'"):
        run("api_lifecycle", "--tenant", tenant.slug, "nope", "publish")
    with pytest.raises(CommandError, match="No tenant named 'ghost'"):
        run("api_lifecycle", "--tenant", "ghost", "orders", "publish")


def test_api_key_issue_prints_the_key_once_and_never_stores_or_logs_it(world, caplog):
    caplog.set_level(logging.DEBUG)
    tenant, api, _ = world
    output = run(
        "api_key_issue",
        "--tenant",
        tenant.slug,
        "--consumer",
        "partner",
        "--application",
        "mobile",
        "--scope",
        "orders:read",
        "--api",
        "orders:v1",
        "--expires-in-days",
        "30",
    )
    plaintext = output.strip().splitlines()[-1]
    check = api_key_verify(tenant=tenant, plaintext=plaintext)
    assert check.ok and check.key.scopes == ["orders:read"]
    assert list(check.key.allowed_apis.all()) == [api]
    assert output.count(plaintext) == 1
    assert plaintext not in dump_database()
    assert plaintext not in "\n".join(r.getMessage() for r in caplog.records)
    quiet = run("api_key_issue", "--tenant", tenant.slug, "--consumer", "partner", "--application", "mobile", "--quiet")
    assert api_key_verify(tenant=tenant, plaintext=quiet.strip()).ok


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expires-at", "2001-01-01T00:00:00Z"], "must be in the future"),
        (["--expires-at", "yesterday"], "not an ISO 8601"),
        (["--expires-in-days", "0"], "positive"),
        (["--api", "missing"], "no API named 'missing'"),
        (["--scope", "has space"], "not a valid scope"),
    ],
)
def test_api_key_issue_refuses_bad_input(world, extra, message):
    tenant, _, _ = world
    before = counts()
    with pytest.raises(CommandError, match=message):
        run("api_key_issue", "--tenant", tenant.slug, "--consumer", "partner", "--application", "mobile", *extra)
    assert counts() == before


def test_api_key_issue_unknown_application(world):
    tenant, _, _ = world
    with pytest.raises(CommandError, match="no application 'web' of consumer 'partner'"):
        run("api_key_issue", "--tenant", tenant.slug, "--consumer", "partner", "--application", "web")


def test_api_key_revoke_and_rotate(world):
    tenant, _, _ = world
    base = ["--tenant", tenant.slug, "--consumer", "partner", "--application", "mobile", "--quiet"]
    first = run("api_key_issue", *base).strip()
    second = run("api_key_issue", *base).strip()
    prefix = first[:17]
    assert "revoked" in run("api_key_revoke", "--tenant", tenant.slug, prefix)
    assert api_key_verify(tenant=tenant, plaintext=first).reason == "key_invalid"
    assert "already revoked" in run("api_key_revoke", "--tenant", tenant.slug, prefix)
    output = run("api_key_rotate", "--tenant", tenant.slug, second[:17], "--grace-seconds", "600")
    successor = output.strip().splitlines()[-1]
    assert api_key_verify(tenant=tenant, plaintext=successor).ok
    assert api_key_verify(tenant=tenant, plaintext=second).ok  # grace period
    before = counts()
    with pytest.raises(CommandError, match="has no key 'apim_doesnotexist'"):
        run("api_key_revoke", "--tenant", tenant.slug, "apim_doesnotexist")
    with pytest.raises(CommandError, match="revoked and cannot be rotated"):
        run("api_key_rotate", "--tenant", tenant.slug, prefix)
    assert counts() == before


def test_seed_demo_builds_a_working_demo_once():
    output = run("seed_demo", "--if-empty")
    tenant = Tenant.objects.get(slug="demo")
    assert tenant.is_default
    assert list(tenant.hosts.values_list("host", flat=True)) == ["localhost"]
    api = API.objects.get(tenant=tenant, name="echo")
    assert api.status == ApiStatus.PUBLISHED and api.base_path == "/echo"
    assert api.upstream.targets.get().url.endswith("/_demo/echo")
    assert Consumer.objects.get(tenant=tenant).name == "demo-consumer"
    app = Application.objects.get(tenant=tenant)
    assert Subscription.objects.get(application=app, api=api).status == SubscriptionStatus.ACTIVE
    assert Plan.objects.get(tenant=tenant).rate_limit_per_second == 10
    key = output.split("Demo API key  : ")[1].split()[0]
    assert api_key_verify(tenant=tenant, plaintext=key).ok
    password = output.split("Login         : admin / ")[1].split()[0]
    assert Membership.objects.get(tenant=tenant).user.check_password(password)
    assert key not in dump_database()
    before = counts()
    assert "not seeded" in run("seed_demo", "--if-empty")
    assert counts() == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=False)
def test_run_all_starts_the_web_process_and_stops_cleanly(tmp_path: Path):
    base = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"APIM_DATA_DIR": str(tmp_path), "APIM_ENV": "local"})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=base, env=env, check=True, timeout=120)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_all", "--web-port", str(port)],
        cwd=base,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    body = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert body == {"status": "ok"}
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, output.decode()
        assert b"All processes stopped." in output
        with pytest.raises(OSError, match="refused"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
