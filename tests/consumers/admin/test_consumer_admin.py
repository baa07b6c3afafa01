"""ConsumerAdmin: suspend / activate actions and the application inline."""

from __future__ import annotations

from django.contrib.messages import get_messages

from consumers.models import Consumer
from consumers.selectors import api_key_verify
from tests.apim.admin.world import admin_url


def _act(client, action, *consumers):
    return client.post(
        admin_url(Consumer, "changelist"), {"action": action, "_selected_action": [c.pk for c in consumers]}
    )


def test_suspend_then_activate(world_a, admin_a_client):
    consumer = world_a.consumer
    response = _act(admin_a_client, "suspend", consumer)
    consumer.refresh_from_db()
    assert consumer.status == "suspended"
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["success"]
    assert api_key_verify(tenant=world_a.tenant, plaintext=world_a.issued.plaintext).reason == "consumer_suspended"
    _act(admin_a_client, "activate", consumer)
    consumer.refresh_from_db()
    assert consumer.status == "active"


def test_viewer_gets_no_actions(world_a, viewer_a_client):
    response = _act(viewer_a_client, "suspend", world_a.consumer)
    world_a.consumer.refresh_from_db()
    assert world_a.consumer.status == "active"
    assert response.status_code in (200, 302)


def test_consumer_page_lists_applications_with_change_links(world_a, admin_a_client):
    body = admin_a_client.get(admin_url(world_a.consumer, "change")).content.decode()
    assert admin_url(world_a.application, "change") in body


def test_application_inline_is_added_through_the_service(world_a, admin_a_client):
    consumer = world_a.consumer
    data = {
        "name": consumer.name,
        "organization": "",
        "email": "",
        "user": "",
        "applications-TOTAL_FORMS": "2",
        "applications-INITIAL_FORMS": "1",
        "applications-0-id": world_a.application.pk,
        "applications-0-consumer": consumer.pk,
        "applications-0-name": world_a.application.name,
        "applications-0-description": "",
        "applications-1-consumer": consumer.pk,
        "applications-1-name": "mobile",
        "applications-1-description": "",
    }
    response = admin_a_client.post(admin_url(consumer, "change"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    app = consumer.applications.get(name="mobile")
    assert app.tenant_id == world_a.tenant.pk
    from apim.models import AuditEvent

    assert AuditEvent.objects.filter(action="application.create", object_id=str(app.pk)).exists()
