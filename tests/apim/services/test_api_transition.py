"""apim.services.catalog.api_transition: every legal and illegal lifecycle pair."""

from __future__ import annotations

import itertools

import pytest
from django.core.exceptions import ValidationError

from apim.exceptions import IllegalTransition
from apim.models import API, ApiStatus, AuditEvent, Tenant
from apim.services.catalog import api_delete, api_save, api_transition
from tests.factories import ApiFactory, TargetFactory

LEGAL = {
    (ApiStatus.DRAFT, ApiStatus.PUBLISHED),
    (ApiStatus.PUBLISHED, ApiStatus.DEPRECATED),
    (ApiStatus.DEPRECATED, ApiStatus.RETIRED),
}
ALL_PAIRS = list(itertools.product(ApiStatus.values, repeat=2))


@pytest.fixture
def routable_api(tenant, upstream):
    TargetFactory(upstream=upstream)
    return ApiFactory(tenant=tenant, upstream=upstream)


def _force_status(api: API, status: str) -> API:
    API.objects.filter(pk=api.pk).update(status=status)
    api.refresh_from_db()
    return api


@pytest.mark.parametrize(("start", "to"), ALL_PAIRS)
def test_transition_pair(routable_api, operator, start, to):
    api = _force_status(routable_api, start)
    version_before = Tenant.objects.get(pk=api.tenant_id).config_version
    audits_before = AuditEvent.objects.count()

    if (start, to) in LEGAL:
        api_transition(api=api, to=to, actor=operator)
        api.refresh_from_db()
        assert api.status == to
        stamp = {"published": api.published_at, "deprecated": api.deprecated_at, "retired": api.retired_at}[to]
        assert stamp is not None
        event = AuditEvent.objects.latest("created_at")
        assert event.action == f"api.{to}"
        assert event.before["status"] == start
        assert event.after["status"] == to
        assert event.actor == operator
        assert Tenant.objects.get(pk=api.tenant_id).config_version == version_before + 1
    else:
        with pytest.raises(IllegalTransition) as excinfo:
            api_transition(api=api, to=to, actor=operator)
        assert start in excinfo.value.message
        assert to in excinfo.value.message
        api.refresh_from_db()
        assert api.status == start
        assert AuditEvent.objects.count() == audits_before
        assert Tenant.objects.get(pk=api.tenant_id).config_version == version_before


def test_unknown_status_is_refused(routable_api, operator):
    with pytest.raises(IllegalTransition, match="not a lifecycle status"):
        api_transition(api=routable_api, to="live", actor=operator)
    routable_api.refresh_from_db()
    assert routable_api.status == ApiStatus.DRAFT


def test_publish_needs_an_upstream(tenant, operator):
    api = ApiFactory(tenant=tenant, upstream=None)
    with pytest.raises(IllegalTransition, match="no upstream"):
        api_transition(api=api, to=ApiStatus.PUBLISHED, actor=operator)
    api.refresh_from_db()
    assert api.status == ApiStatus.DRAFT


def test_publish_needs_an_enabled_target(tenant, upstream, operator):
    TargetFactory(upstream=upstream, enabled=False)
    api = ApiFactory(tenant=tenant, upstream=upstream)
    with pytest.raises(IllegalTransition, match="no enabled target"):
        api_transition(api=api, to=ApiStatus.PUBLISHED, actor=operator)
    api.refresh_from_db()
    assert api.status == ApiStatus.DRAFT


def test_retired_api_cannot_be_edited(routable_api, operator):
    api = _force_status(routable_api, ApiStatus.RETIRED)
    api.title = "New title"
    with pytest.raises(ValidationError, match="retired API cannot be changed"):
        api_save(api=api, actor=operator)
    assert API.objects.get(pk=api.pk).title != "New title"


@pytest.mark.parametrize("status", [ApiStatus.PUBLISHED, ApiStatus.DEPRECATED])
def test_live_api_cannot_be_deleted(routable_api, operator, status):
    api = _force_status(routable_api, status)
    with pytest.raises(IllegalTransition, match="retire it before deleting"):
        api_delete(api=api, actor=operator)
    assert API.objects.filter(pk=api.pk).exists()


@pytest.mark.parametrize("status", [ApiStatus.DRAFT, ApiStatus.RETIRED])
def test_draft_and_retired_apis_can_be_deleted(routable_api, operator, status):
    api = _force_status(routable_api, status)
    api_id = api.pk
    api_delete(api=api, actor=operator)
    assert not API.objects.filter(pk=api_id).exists()
    assert AuditEvent.objects.filter(action="api.delete", object_id=str(api_id)).exists()
