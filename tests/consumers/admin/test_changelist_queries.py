"""Changelists fetch related rows with the page, not one query per row (NetBox-style baselines)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consumers.models import APIKey, Subscription
from consumers.services import api_key_issue
from tests.apim.admin.world import admin_url
from tests.factories import ApiFactory


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("model", [APIKey, Subscription], ids=["apikey", "subscription"])
def test_query_count_does_not_grow_with_rows(model, world_a, admin_a_client):
    url = admin_url(model, "changelist")
    _queries(admin_a_client, url)  # warm caches (content types, sessions)
    baseline = _queries(admin_a_client, url)
    for n in range(5):
        api_key_issue(application=world_a.application, name=f"extra{n}", actor=None)
        api = ApiFactory(tenant=world_a.tenant)
        Subscription.objects.create(tenant=world_a.tenant, application=world_a.application, api=api, plan=world_a.plan)
    assert _queries(admin_a_client, url) == baseline
