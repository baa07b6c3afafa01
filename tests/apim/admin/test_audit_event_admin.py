"""AuditEventAdmin: read-only for everyone, scoped by tenant, searchable and filterable."""

from __future__ import annotations

from apim.models import AuditEvent
from tests.apim.admin.world import admin_url


def test_nobody_may_add_change_or_delete(world_a, superuser_client):
    event = AuditEvent.objects.filter(tenant=world_a.tenant).first()
    assert superuser_client.get(admin_url(AuditEvent, "add")).status_code == 403
    assert superuser_client.get(admin_url(event, "delete")).status_code == 403
    response = superuser_client.post(admin_url(event, "change"), {"action": "forged"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.action == "apikey.issue"
    page = superuser_client.get(admin_url(AuditEvent, "changelist"))
    assert "delete_selected" not in page.content.decode()


def test_tenant_admin_sees_own_events_only_and_can_search_and_filter(world_a, world_b, admin_a_client):
    response = admin_a_client.get(admin_url(AuditEvent, "changelist"), {"q": world_a.key.prefix})
    assert [e.tenant_id for e in response.context["cl"].result_list] == [world_a.tenant.pk]
    response = admin_a_client.get(admin_url(AuditEvent, "changelist"), {"q": world_b.key.prefix})
    assert list(response.context["cl"].result_list) == []
    response = admin_a_client.get(admin_url(AuditEvent, "changelist"), {"action": "apikey.issue"})
    assert len(response.context["cl"].result_list) == 1


def test_snapshots_never_show_the_digest(world_a, superuser_client):
    event = AuditEvent.objects.get(tenant=world_a.tenant, action="apikey.issue")
    body = superuser_client.get(admin_url(event, "change")).content.decode()
    assert world_a.key.prefix in body
    assert world_a.key.digest not in body
