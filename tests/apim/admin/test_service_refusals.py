"""Deletes the services refuse become messages, and every write is audited through a service."""

from __future__ import annotations

from django.contrib.messages import get_messages

from apim.models import API, ApiStatus, AuditEvent, Upstream
from tests.apim.admin.world import admin_url


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def test_deleting_a_published_api_is_refused(world_a, admin_a_client):
    api = world_a.api
    API.objects.filter(pk=api.pk).update(status=ApiStatus.PUBLISHED)
    response = admin_a_client.post(admin_url(api, "delete"), {"post": "yes"})
    assert response.status_code == 302 and response.url == admin_url(api, "change")
    assert API.objects.filter(pk=api.pk).exists()
    [(level, text)] = _messages(response)
    assert level == "error" and "deprecate and retire" in text


def test_bulk_delete_reports_refusals_and_deletes_the_rest(world_a, admin_a_client):
    live = world_a.api
    API.objects.filter(pk=live.pk).update(status=ApiStatus.PUBLISHED)
    draft = API.objects.create(tenant=world_a.tenant, name="draft-api", title="D", base_path="/draft")
    response = admin_a_client.post(
        admin_url(API, "changelist"),
        {"action": "delete_selected", "post": "yes", "_selected_action": [live.pk, draft.pk]},
    )
    assert response.status_code == 302
    assert API.objects.filter(pk=live.pk).exists() and not API.objects.filter(pk=draft.pk).exists()
    assert sorted(level for level, _ in _messages(response)) == ["error", "success"]
    assert AuditEvent.objects.filter(action="api.delete", object_id=str(draft.pk)).exists()


def test_deleting_an_upstream_in_use_is_refused(world_a, admin_a_client):
    response = admin_a_client.post(admin_url(world_a.upstream, "delete"), {"post": "yes"})
    assert response.status_code == 200
    assert "Cannot delete" in response.content.decode()
    assert Upstream.objects.filter(pk=world_a.upstream.pk).exists()


def test_a_conflict_from_the_delete_service_becomes_a_message(world_a, admin_a_client, monkeypatch):
    """Django's protected-object check normally answers first; a race leaves it to ``entity_delete``."""
    from apim.admin.catalog import UpstreamAdmin

    monkeypatch.setattr(UpstreamAdmin, "get_deleted_objects", lambda self, objs, request: ([], {}, set(), []))
    response = admin_a_client.post(admin_url(world_a.upstream, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert Upstream.objects.filter(pk=world_a.upstream.pk).exists()
    [(level, text)] = _messages(response)
    assert level == "error" and "still used by" in text


def test_saving_through_the_admin_writes_an_audit_event_and_bumps_the_config(world_a, admin_a, admin_a_client):
    upstream = world_a.upstream
    version = world_a.tenant.config_version
    data = {
        "name": "renamed",
        "load_balancing": "round_robin",
        "connect_timeout_ms": 100,
        "read_timeout_ms": 100,
        "write_timeout_ms": 100,
        "retries": 1,
        "healthcheck_path": "/health",
        "healthcheck_interval_s": 10,
        "healthcheck_timeout_ms": 100,
        "healthy_threshold": 2,
        "unhealthy_threshold": 3,
        "passive_failure_threshold": 5,
        "ejection_base_s": 30,
        "targets-TOTAL_FORMS": "1",
        "targets-INITIAL_FORMS": "1",
        "targets-0-id": world_a.target.pk,
        "targets-0-upstream": upstream.pk,
        "targets-0-url": world_a.target.url,
        "targets-0-weight": "100",
        "targets-0-enabled": "on",
        "targets-0-DELETE": "on",
    }
    response = admin_a_client.post(admin_url(upstream, "change"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    upstream.refresh_from_db()
    world_a.tenant.refresh_from_db()
    assert upstream.name == "renamed"
    assert world_a.tenant.config_version > version
    assert AuditEvent.objects.filter(action="upstream.update", actor=admin_a).exists()
    assert AuditEvent.objects.filter(action="target.delete", actor=admin_a).exists()
    assert not upstream.targets.exists()
