"""APIAdmin publish / deprecate / retire: changelist actions and change-page buttons."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from apim.models import API, ApiStatus
from tests.apim.admin.world import admin_url
from tests.factories import ApiFactory


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def _act(client, action: str, *apis):
    return client.post(admin_url(API, "changelist"), {"action": action, "_selected_action": [api.pk for api in apis]})


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [("draft", "publish", "published"), ("published", "deprecate", "deprecated"), ("deprecated", "retire", "retired")],
)
def test_legal_transition_succeeds_with_a_message(start, action, end, world_a, admin_a_client):
    api = world_a.api
    API.objects.filter(pk=api.pk).update(status=start)
    response = _act(admin_a_client, action, api)
    assert response.status_code == 302
    api.refresh_from_db()
    assert api.status == end
    assert [level for level, _ in _messages(response)] == ["success"]


@pytest.mark.parametrize(
    ("start", "action"), [("draft", "deprecate"), ("draft", "retire"), ("published", "publish"), ("retired", "publish")]
)
def test_illegal_transition_is_refused_naming_the_api_and_status(start, action, world_a, admin_a_client):
    api = world_a.api
    API.objects.filter(pk=api.pk).update(status=start)
    response = _act(admin_a_client, action, api)
    assert response.status_code == 302
    api.refresh_from_db()
    assert api.status == start
    [(level, text)] = _messages(response)
    assert level == "error"
    assert str(api) in text and start in text


def test_each_selected_api_is_handled_on_its_own(world_a, admin_a_client):
    draft = world_a.api
    live = ApiFactory(tenant=world_a.tenant, upstream=world_a.upstream, status=ApiStatus.PUBLISHED)
    response = _act(admin_a_client, "publish", draft, live)
    draft.refresh_from_db()
    live.refresh_from_db()
    assert (draft.status, live.status) == ("published", "published")
    assert sorted(level for level, _ in _messages(response)) == ["error", "success"]


def test_publishing_without_a_target_is_refused(world_a, admin_a_client):
    world_a.target.delete()
    response = _act(admin_a_client, "publish", world_a.api)
    world_a.api.refresh_from_db()
    assert world_a.api.status == "draft"
    assert "no enabled target" in _messages(response)[0][1]


def test_change_page_offers_only_legal_buttons(world_a, admin_a_client):
    body = admin_a_client.get(admin_url(world_a.api, "change")).content.decode()
    assert admin_url(world_a.api, "publish", world_a.api.pk) in body
    assert admin_url(world_a.api, "deprecate", world_a.api.pk) not in body
    assert admin_url(world_a.api, "retire", world_a.api.pk) not in body


def test_button_view_publishes_and_redirects(world_a, admin_a_client):
    api = world_a.api
    response = admin_a_client.post(admin_url(api, "publish", api.pk))
    assert response.status_code == 302 and response.url == admin_url(api, "change")
    api.refresh_from_db()
    assert api.status == "published"


def test_button_view_is_post_only_and_tenant_scoped(world_a, world_b, admin_a_client, viewer_a_client):
    assert admin_a_client.get(admin_url(world_a.api, "publish", world_a.api.pk)).status_code == 405
    assert admin_a_client.post(admin_url(world_b.api, "publish", world_b.api.pk)).status_code == 404
    assert viewer_a_client.post(admin_url(world_a.api, "publish", world_a.api.pk)).status_code == 403
    world_b.api.refresh_from_db()
    world_a.api.refresh_from_db()
    assert (world_a.api.status, world_b.api.status) == ("draft", "draft")
