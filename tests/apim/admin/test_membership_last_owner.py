"""The membership pages: the last owner of a tenant cannot be demoted or deleted (a form error / message)."""

from __future__ import annotations

from django.contrib.messages import get_messages

from apim.models import Membership, Role
from tests.apim.admin.world import admin_url


def test_demoting_the_last_owner_is_a_form_error(world_a, owner_a, owner_a_client):
    mine = Membership.objects.get(tenant=world_a.tenant, user=owner_a)
    response = owner_a_client.post(
        admin_url(mine, "change"), {"tenant": world_a.tenant.pk, "user": owner_a.pk, "role": "admin"}
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert any("last owner" in error for error in form.non_field_errors())
    assert 'class="errorlist' in response.content.decode()
    mine.refresh_from_db()
    assert mine.role == Role.OWNER


def test_deleting_the_last_owner_is_refused_with_a_message(world_a, owner_a, owner_a_client):
    mine = Membership.objects.get(tenant=world_a.tenant, user=owner_a)
    response = owner_a_client.post(admin_url(mine, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert Membership.objects.filter(pk=mine.pk).exists()
    texts = [m.message for m in get_messages(response.wsgi_request)]
    assert any("last owner" in text for text in texts)


def test_bulk_delete_keeps_the_last_owner(world_a, owner_a, owner_a_client):
    mine = Membership.objects.get(tenant=world_a.tenant, user=owner_a)
    response = owner_a_client.post(
        admin_url(Membership, "changelist"), {"action": "delete_selected", "_selected_action": [mine.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert Membership.objects.filter(pk=mine.pk).exists()
