"""Personal access tokens in the console: who sees which, filters, the revoke action, no digest anywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apim.models import AuditEvent, PersonalAccessToken
from apim.services.tokens import token_issue, token_revoke
from tests.apim.admin.world import admin_url, login
from tests.factories import UserFactory, membership

CHANGELIST = admin_url(PersonalAccessToken, "changelist")


@pytest.fixture
def tokens(world_a, world_b, admin_a):
    """Tokens of: admin A (made by the fixture), a member of A, a member of B only, a member of both."""
    member_a = UserFactory(username="member-a")
    membership(user=member_a, tenant=world_a.tenant, role="developer")
    member_b = UserFactory(username="member-b")
    membership(user=member_b, tenant=world_b.tenant, role="admin")
    both = UserFactory(username="member-ab")
    membership(user=both, tenant=world_a.tenant, role="viewer")
    membership(user=both, tenant=world_b.tenant, role="viewer")
    return {
        "admin_a": PersonalAccessToken.objects.get(user=admin_a),
        "member_a": token_issue(user=member_a, name="a-ci", actor=None).token,
        "member_b": token_issue(user=member_b, name="b-ci", actor=None).token,
        "both": token_issue(user=both, name="ab-ci", actor=None).token,
    }


def _listed(client, query: str = "") -> set[str]:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200
    return {token.name for token in response.context["cl"].result_list}


def test_superuser_sees_every_token(tokens, superuser_client):
    assert _listed(superuser_client) == {"admin-a-token", "a-ci", "b-ci", "ab-ci"}


def test_tenant_admin_sees_own_and_their_tenants_members_tokens_only(tokens, admin_a_client):
    assert _listed(admin_a_client) == {"admin-a-token", "a-ci", "ab-ci"}
    assert admin_a_client.get(admin_url(tokens["member_b"], "change")).status_code == 404
    assert admin_a_client.get(admin_url(tokens["member_a"], "change")).status_code == 200


def test_a_viewer_sees_only_their_own_tokens(tokens, world_a, viewer_a, viewer_a_client):
    token_issue(user=viewer_a, name="viewer-token", actor=None)
    assert _listed(viewer_a_client) == {"viewer-token"}  # viewing a tenant is not operating it


def test_staff_without_a_tenant_has_no_token_page(tokens, stranger):
    token_issue(user=stranger, name="stranger-token", actor=None)
    assert login(stranger).get(CHANGELIST).status_code == 403


def test_the_digest_is_never_shown(tokens, superuser_client):
    token = tokens["member_a"]
    for url in (CHANGELIST, CHANGELIST + f"?q={token.prefix}", admin_url(token, "change")):
        page = superuser_client.get(url).content.decode()
        assert token.digest not in page
        assert "digest" not in page.lower()
        assert "pepper" not in page.lower()
    assert token.prefix in superuser_client.get(admin_url(token, "change")).content.decode()


def test_no_add_no_edit_no_delete(tokens, superuser_client):
    token = tokens["member_a"]
    assert superuser_client.get(admin_url(PersonalAccessToken, "add")).status_code == 403
    superuser_client.post(admin_url(token, "change"), {"name": "renamed", "read_only": "on"})
    token.refresh_from_db()
    assert token.name == "a-ci" and token.read_only is False
    assert superuser_client.post(admin_url(token, "delete"), {"post": "yes"}).status_code == 403
    assert PersonalAccessToken.objects.filter(pk=token.pk).exists()


def test_search_and_state_filter(tokens, superuser_client):
    token_revoke(token=tokens["member_b"], actor=None)
    PersonalAccessToken.objects.filter(pk=tokens["both"].pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert _listed(superuser_client, "?state=revoked") == {"b-ci"}
    assert _listed(superuser_client, "?state=expired") == {"ab-ci"}
    assert _listed(superuser_client, "?state=active") == {"admin-a-token", "a-ci"}
    assert _listed(superuser_client, "?q=member-b") == {"b-ci"}
    assert _listed(superuser_client, f"?q={tokens['both'].prefix}") == {"ab-ci"}


def test_revoke_action_stops_visible_tokens_and_audits(tokens, admin_a, admin_a_client):
    selected = [tokens["member_a"].pk, tokens["member_b"].pk]  # B's token is not A's admin's to touch
    response = admin_a_client.post(CHANGELIST, {"action": "revoke", "_selected_action": selected})
    assert response.status_code == 302
    tokens["member_a"].refresh_from_db()
    tokens["member_b"].refresh_from_db()
    assert tokens["member_a"].active is False and tokens["member_a"].revoked_at is not None
    assert tokens["member_b"].active is True
    event = AuditEvent.objects.get(action="accesstoken.revoke", object_id=str(tokens["member_a"].pk))
    assert event.actor == admin_a
    assert not AuditEvent.objects.filter(action="accesstoken.revoke", object_id=str(tokens["member_b"].pk)).exists()


def test_a_revoked_token_no_longer_authenticates(tokens, world_a, superuser_client):
    from rest_framework.test import APIClient

    member = UserFactory(username="api-user")
    membership(user=member, tenant=world_a.tenant, role="viewer")
    issued = token_issue(user=member, name="api", actor=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}", HTTP_X_APIM_TENANT=world_a.tenant.slug)
    assert client.get("/api/v1/apis/").status_code == 200
    superuser_client.post(CHANGELIST, {"action": "revoke", "_selected_action": [issued.token.pk]})
    assert client.get("/api/v1/apis/").status_code == 401
