"""Personal access tokens: Bearer auth, expiry, revocation, read-only, issue through the API and the command."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apim import tokens
from apim.models import AuditEvent, PersonalAccessToken
from apim.selectors import access_token_get_by_plaintext
from apim.services.tokens import token_issue, token_revoke
from tests.api.conftest import bearer
from tests.factories import UserFactory


def test_token_is_hashed_and_shown_once(world_a):
    client = world_a.client("admin")
    response = client.post("/api/v1/tokens/", {"name": "ci", "read_only": True}, format="json")
    assert response.status_code == 201
    plaintext = response.json()["token"]
    assert tokens.parse(plaintext) is not None and plaintext.startswith("apimpat_")
    stored = PersonalAccessToken.objects.get(pk=response.json()["id"])
    assert plaintext not in (stored.digest, stored.prefix)
    assert stored.digest == tokens.digest(plaintext, pepper_id=stored.pepper_id)
    listing = client.get("/api/v1/tokens/").content.decode()
    assert plaintext not in listing and stored.digest not in listing
    assert plaintext not in str(list(AuditEvent.objects.values("before", "after")))


def test_missing_and_garbage_credentials_are_401(world_a):
    anonymous = APIClient().get("/api/v1/apis/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    garbage = bearer("apimpat_nonsense", world_a.tenant).get("/api/v1/apis/")
    assert garbage.status_code == 401
    assert garbage.json()["error"]["code"] == "authentication_failed"


def test_expired_token_is_401(world_a):
    user = world_a.users["admin"]
    issued = token_issue(user=user, name="short", actor=None, expires_at=timezone.now() + timedelta(minutes=1))
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(issued.plaintext, world_a.tenant).post("/api/v1/plans/", {"name": "x"}, format="json")
    assert response.status_code == 401


def test_revoked_token_is_401_and_revoke_via_api(world_a):
    client = world_a.client("admin")
    issued = client.post("/api/v1/tokens/", {"name": "temp"}, format="json").json()
    assert bearer(issued["token"], world_a.tenant).get("/api/v1/apis/").status_code == 200
    revoked = client.post(f"/api/v1/tokens/{issued['id']}/revoke/")
    assert revoked.json()["state"] == "revoked"
    assert bearer(issued["token"], world_a.tenant).get("/api/v1/apis/").status_code == 401


def test_read_only_token_cannot_write(world_a):
    user = world_a.users["owner"]
    read_only = token_issue(user=user, name="ro", actor=None, read_only=True).plaintext
    client = bearer(read_only, world_a.tenant)
    assert client.get("/api/v1/apis/").status_code == 200
    response = client.post("/api/v1/plans/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "token_read_only"
    assert client.post("/api/v1/tokens/", {"name": "escape"}, format="json").status_code == 403


def test_inactive_user_token_is_401(world_a):
    user = world_a.users["admin"]
    user.is_active = False
    user.save()
    assert world_a.client("admin").get("/api/v1/apis/").status_code == 401


def test_token_cannot_outlive_its_issuer(world_a):
    user = world_a.users["admin"]
    parent = token_issue(user=user, name="p", actor=None, expires_at=timezone.now() + timedelta(days=1))
    response = bearer(parent.plaintext, world_a.tenant).post(
        "/api/v1/tokens/",
        {"name": "child", "expires_at": (timezone.now() + timedelta(days=30)).isoformat()},
        format="json",
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["details"]


def test_last_used_is_recorded(world_a):
    world_a.client("viewer").get("/api/v1/apis/")
    token = access_token_get_by_plaintext(plaintext=world_a.tokens["viewer"])
    assert token.last_used_at is not None


def test_session_auth_needs_csrf(world_a):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world_a.users["admin"])
    assert client.get("/api/v1/apis/", HTTP_X_APIM_TENANT=world_a.tenant.slug).status_code == 200
    refused = client.post("/api/v1/plans/", {"name": "x"}, format="json", HTTP_X_APIM_TENANT=world_a.tenant.slug)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]


def test_revoke_twice_records_once(db):
    user = UserFactory()
    issued = token_issue(user=user, name="x", actor=user)
    token_revoke(token=issued.token, actor=user)
    token_revoke(token=issued.token, actor=user)
    assert AuditEvent.objects.filter(action="accesstoken.revoke").count() == 1


def test_token_issue_command_prints_once(db):
    user = UserFactory()
    out = io.StringIO()
    call_command("token_issue", user=user.username, name="ci", read_only=True, quiet=True, stdout=out)
    plaintext = out.getvalue().strip()
    assert tokens.parse(plaintext) is not None
    token = access_token_get_by_plaintext(plaintext=plaintext)
    assert token.user == user and token.read_only


@pytest.mark.parametrize(
    ("options", "message"),
    [({"user": "nobody", "name": "x"}, "No user named"), ({"name": "x", "expires_in_days": 0}, "positive")],
)
def test_token_issue_command_refuses(db, options, message):
    options.setdefault("user", UserFactory().username)
    with pytest.raises(CommandError, match=message):
        call_command("token_issue", **options, stdout=io.StringIO())


def test_token_issue_command_refuses_too_long(db):
    with pytest.raises(CommandError, match="at most"):
        call_command("token_issue", user=UserFactory().username, name="x", expires_in_days=5000, stdout=io.StringIO())
