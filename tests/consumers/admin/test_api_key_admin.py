"""APIKeyAdmin and the "issue a new key" action: plaintext shown once, stored nowhere."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.messages import get_messages
from django.core import serializers
from django.utils import timezone

from apim.models import AuditEvent
from consumers.keys import KEY_LENGTH
from consumers.models import APIKey, Application
from consumers.selectors import api_key_verify
from tests.apim.admin.world import admin_url

PLAINTEXT_RE = re.compile(r'class="apim-key-plaintext"[^>]*>([^<]+)</code>')


def _plaintexts(response) -> list[str]:
    return PLAINTEXT_RE.findall(response.content.decode())


def _database_dump() -> str:
    """Every row of every table, as JSON (sessions and messages included)."""
    return "".join(serializers.serialize("json", model._default_manager.all()) for model in apps.get_models())


def _assert_shown_once_and_stored_nowhere(response, plaintext: str) -> None:
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response.content.decode().count(plaintext) == 1
    assert "will not be shown again" in response.content.decode()
    assert plaintext not in _database_dump()
    for event in AuditEvent.objects.all():
        assert plaintext not in f"{event.before} {event.after} {event.object_repr}"


def _issue_data(world, **overrides) -> dict:
    return {
        "application": world.application.pk,
        "name": "ci",
        "scopes": '["orders:read"]',
        "allowed_apis": [world.api.pk],
        "expires_at_0": "",
        "expires_at_1": "",
        **overrides,
    }


def test_add_page_issues_a_key_and_shows_it_once(world_a, admin_a, admin_a_client):
    response = admin_a_client.post(admin_url(APIKey, "add"), _issue_data(world_a))
    [plaintext] = _plaintexts(response)
    assert len(plaintext) == KEY_LENGTH
    _assert_shown_once_and_stored_nowhere(response, plaintext)
    check = api_key_verify(tenant=world_a.tenant, plaintext=plaintext)
    assert check.ok
    key = check.key
    assert (key.name, key.scopes, key.created_by) == ("ci", ["orders:read"], admin_a)
    assert list(key.allowed_apis.all()) == [world_a.api]
    assert AuditEvent.objects.filter(action="apikey.issue", object_id=str(key.pk), actor=admin_a).exists()
    # Reloading the list never shows it again.
    listing = admin_a_client.get(admin_url(APIKey, "changelist")).content.decode()
    assert key.prefix in listing and plaintext not in listing


def test_application_action_issues_a_key_per_application(world_a, admin_a_client):
    response = admin_a_client.post(
        admin_url(Application, "changelist"), {"action": "issue_key", "_selected_action": [world_a.application.pk]}
    )
    [plaintext] = _plaintexts(response)
    _assert_shown_once_and_stored_nowhere(response, plaintext)
    assert api_key_verify(tenant=world_a.tenant, plaintext=plaintext).key.application == world_a.application


def test_expiry_in_the_past_is_a_form_error(world_a, admin_a_client):
    yesterday = timezone.now() - timedelta(days=1)
    data = _issue_data(world_a, expires_at_0=yesterday.date().isoformat(), expires_at_1="12:00:00")
    response = admin_a_client.post(admin_url(APIKey, "add"), data)
    assert response.status_code == 200
    assert "expires_at" in response.context["adminform"].form.errors
    assert APIKey.objects.count() == 1  # only the world's key


@pytest.mark.parametrize("scopes", ['"orders"', '["bad scope"]', "[1]"])
def test_bad_scopes_are_a_form_error(scopes, world_a, admin_a_client):
    response = admin_a_client.post(admin_url(APIKey, "add"), _issue_data(world_a, scopes=scopes))
    assert response.status_code == 200
    assert "scopes" in response.context["adminform"].form.errors


def test_allowed_api_of_another_tenant_is_refused(world_a, world_b, superuser_client):
    response = superuser_client.post(admin_url(APIKey, "add"), _issue_data(world_a, allowed_apis=[world_b.api.pk]))
    assert response.status_code == 200
    assert "allowed_apis" in response.context["adminform"].form.errors


def test_digest_and_pepper_are_never_displayed(world_a, superuser_client):
    key = world_a.key
    pages = [admin_url(key, "change"), admin_url(APIKey, "changelist"), admin_url(world_a.application, "change")]
    for url in pages:
        body = superuser_client.get(url).content.decode()
        assert key.prefix in body
        assert key.digest not in body
        assert "digest" not in body.lower() and "pepper" not in body.lower()


def test_change_page_updates_through_the_service(world_a, admin_a, admin_a_client):
    key = world_a.key
    response = admin_a_client.post(
        admin_url(key, "change"),
        {"name": "renamed", "scopes": "[]", "allowed_apis": [], "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "renamed" and key.scopes == []
    event = AuditEvent.objects.get(action="apikey.update", object_id=str(key.pk))
    assert event.before["name"] == "a-key" and event.after["name"] == "renamed"


def test_revoke_action(world_a, admin_a_client):
    key = world_a.key
    response = admin_a_client.post(admin_url(APIKey, "changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    assert response.status_code == 302
    assert not api_key_verify(tenant=world_a.tenant, plaintext=world_a.issued.plaintext).ok
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["success"]


def test_revoke_button(world_a, admin_a_client):
    key = world_a.key
    response = admin_a_client.post(admin_url(key, "revoke", key.pk))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.state == "revoked"


@pytest.mark.parametrize("via", ["action", "button"])
def test_rotate_shows_the_new_key_once_and_the_old_one_keeps_working(via, world_a, admin_a_client):
    old = world_a.key
    if via == "action":
        response = admin_a_client.post(
            admin_url(APIKey, "changelist"), {"action": "rotate", "_selected_action": [old.pk]}
        )
    else:
        response = admin_a_client.post(admin_url(old, "rotate", old.pk))
    [plaintext] = _plaintexts(response)
    assert plaintext != world_a.issued.plaintext
    _assert_shown_once_and_stored_nowhere(response, plaintext)
    new = api_key_verify(tenant=world_a.tenant, plaintext=plaintext).key
    assert new.rotated_from_id == old.pk
    still = api_key_verify(tenant=world_a.tenant, plaintext=world_a.issued.plaintext)
    assert still.ok and still.key.expires_at is not None  # grace period


def test_rotating_a_revoked_key_is_refused_with_a_message(world_a, admin_a_client):
    key = world_a.key
    admin_a_client.post(admin_url(key, "revoke", key.pk))
    response = admin_a_client.post(admin_url(key, "rotate", key.pk))
    assert response.status_code == 302
    message = list(get_messages(response.wsgi_request))[-1]
    assert message.level_tag == "error" and "cannot be rotated" in str(message)
    assert APIKey.objects.count() == 1


def test_another_tenants_key_cannot_be_rotated(world_a, world_b, admin_a_client):
    response = admin_a_client.post(admin_url(world_b.key, "rotate", world_b.key.pk))
    assert response.status_code == 404
    assert APIKey.objects.filter(rotated_from=world_b.key).count() == 0
