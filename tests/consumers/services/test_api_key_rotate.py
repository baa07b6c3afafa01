"""consumers.services.api_key_rotate: a successor key, and a grace period for the old one."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apim.exceptions import IllegalTransition
from consumers.models import APIKey
from consumers.selectors import api_key_verify
from consumers.services import api_key_issue, api_key_revoke, api_key_rotate
from tests.factories import ApiFactory


@pytest.fixture
def issued(application, operator):
    api = ApiFactory(tenant=application.tenant)
    return api_key_issue(application=application, actor=operator, name="prod", scopes=["a"], allowed_apis=[api])


def test_successor_copies_the_key_and_both_work_during_grace(issued, operator):
    rotated = api_key_rotate(key=issued.key, actor=operator, grace=timedelta(hours=2))
    tenant = issued.key.tenant
    assert api_key_verify(tenant=tenant, plaintext=issued.plaintext).ok
    assert api_key_verify(tenant=tenant, plaintext=rotated.plaintext).ok
    new = rotated.key
    assert new.rotated_from_id == issued.key.pk
    assert new.name == "prod" and new.scopes == ["a"]
    assert list(new.allowed_apis.all()) == list(issued.key.allowed_apis.all())
    old = APIKey.objects.get(pk=issued.key.pk)
    remaining = old.expires_at - timezone.now()
    assert timedelta(hours=1, minutes=59) < remaining <= timedelta(hours=2)


def test_default_grace_comes_from_settings(issued, operator, settings):
    settings.APIM_KEY_ROTATION_GRACE = timedelta(minutes=5)
    api_key_rotate(key=issued.key, actor=operator)
    old = APIKey.objects.get(pk=issued.key.pk)
    assert timedelta(minutes=4) < old.expires_at - timezone.now() <= timedelta(minutes=5)


def test_old_key_stops_after_the_grace_period(issued, operator):
    rotated = api_key_rotate(key=issued.key, actor=operator, grace=timedelta(0))
    tenant = issued.key.tenant
    assert api_key_verify(tenant=tenant, plaintext=issued.plaintext).reason == "key_expired"
    assert api_key_verify(tenant=tenant, plaintext=rotated.plaintext).ok


def test_grace_never_extends_an_earlier_expiry(application, operator):
    soon = timezone.now() + timedelta(minutes=10)
    issued = api_key_issue(application=application, actor=operator, expires_at=soon)
    rotated = api_key_rotate(key=issued.key, actor=operator, grace=timedelta(days=7))
    assert APIKey.objects.get(pk=issued.key.pk).expires_at == soon
    assert rotated.key.expires_at == soon


def test_revoked_key_cannot_be_rotated(issued, operator):
    api_key_revoke(key=issued.key, actor=operator)
    with pytest.raises(IllegalTransition, match="revoked"):
        api_key_rotate(key=issued.key, actor=operator)
    assert APIKey.objects.count() == 1


def test_a_key_is_rotated_once(issued, operator):
    api_key_rotate(key=issued.key, actor=operator)
    with pytest.raises(IllegalTransition, match="already rotated"):
        api_key_rotate(key=issued.key, actor=operator)
    assert APIKey.objects.count() == 2


def test_negative_grace_refused(issued, operator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="negative"):
        api_key_rotate(key=issued.key, actor=operator, grace=timedelta(seconds=-1))
    assert APIKey.objects.count() == 1
