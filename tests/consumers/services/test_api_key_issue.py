"""consumers.services.api_key_issue and the selector that verifies keys.

The plaintext is shown once: it must not reach the database, the logs (SQL
debug logging included) or the audit trail.
"""

import json
import logging
from datetime import timedelta

import pytest
from django.apps import apps
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apim.models import AuditEvent, Tenant
from consumers.models import APIKey
from consumers.selectors import api_key_verify
from consumers.services import api_key_issue, api_key_revoke, consumer_suspend
from tests.factories import ApiFactory, ApplicationFactory


def dump_database() -> str:
    """Every row of every table, as JSON text."""
    chunks = []
    for model in apps.get_models():
        chunks.append(serializers.serialize("json", model._default_manager.all()))
    return "\n".join(chunks)


def test_issue_returns_plaintext_that_verifies(application, operator):
    issued = api_key_issue(application=application, actor=operator, name="ci", scopes=["orders:read"])
    check = api_key_verify(tenant=application.tenant, plaintext=issued.plaintext)
    assert check.ok
    assert check.key == issued.key
    assert issued.key.prefix == issued.plaintext[:17]
    assert issued.key.consumer == application.consumer
    assert issued.key.scopes == ["orders:read"]
    assert "***" in repr(issued) and issued.plaintext not in repr(issued)


def test_plaintext_is_nowhere_in_database_logs_or_audit(application, operator, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # SQL statements go to the django.db.backends logger
    try:
        issued = api_key_issue(application=application, actor=operator)
        api_key_verify(tenant=application.tenant, plaintext=issued.plaintext)
    finally:
        connection.force_debug_cursor = False
    secret_part = issued.plaintext[len(issued.key.prefix) : -6]
    assert any("am_api_keys" in record.getMessage() for record in caplog.records), "SQL logging was not captured"
    logged = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
    for needle in (issued.plaintext, secret_part):
        assert needle not in logged
        assert needle not in dump_database()
    event = AuditEvent.objects.get(action="apikey.issue")
    audit_text = json.dumps([event.before, event.after, event.object_repr])
    assert issued.plaintext not in audit_text and secret_part not in audit_text
    assert "digest" not in event.after


def test_digest_not_plaintext_is_stored(application, operator):
    issued = api_key_issue(application=application, actor=operator)
    stored = APIKey.objects.get(pk=issued.key.pk)
    assert stored.digest != issued.plaintext
    assert len(stored.digest) == 64


def test_expiry_in_the_past_is_refused(application, operator):
    with pytest.raises(ValidationError, match="must be in the future"):
        api_key_issue(application=application, actor=operator, expires_at=timezone.now() - timedelta(seconds=1))
    assert not APIKey.objects.exists()


def test_allowed_apis_of_another_tenant_refused(application, other_tenant, operator):
    foreign = ApiFactory(tenant=other_tenant)
    with pytest.raises(ValidationError, match="tenant"):
        api_key_issue(application=application, actor=operator, allowed_apis=[foreign])
    assert not APIKey.objects.exists()


def test_invalid_scope_refused(application, operator):
    with pytest.raises(ValidationError, match="not a valid scope"):
        api_key_issue(application=application, actor=operator, scopes=["no spaces please"])
    assert not APIKey.objects.exists()


def test_issue_bumps_config_version(application, operator):
    before = Tenant.objects.get(pk=application.tenant_id).config_version
    api_key_issue(application=application, actor=operator)
    assert Tenant.objects.get(pk=application.tenant_id).config_version == before + 1


def test_wrong_or_tampered_keys_are_invalid(application, operator):
    issued = api_key_issue(application=application, actor=operator)
    tenant = application.tenant
    assert api_key_verify(tenant=tenant, plaintext="").reason == "key_invalid"
    assert api_key_verify(tenant=tenant, plaintext=issued.plaintext[:-1] + "x").reason == "key_invalid"
    # A well-formed key (valid checksum) with the right id but another secret.
    other = api_key_issue(application=application, actor=operator).plaintext
    forged = issued.key.prefix + other[len(issued.key.prefix) :]
    from consumers import keys

    forged = forged[:-6] + keys._checksum(forged[:-6])
    assert keys.parse(forged) is not None
    assert api_key_verify(tenant=tenant, plaintext=forged).reason == "key_invalid"


def test_another_tenants_key_is_invalid(application, other_tenant, operator):
    issued = api_key_issue(application=application, actor=operator)
    assert api_key_verify(tenant=other_tenant, plaintext=issued.plaintext).reason == "key_invalid"


def test_revoked_key_is_invalid(application, operator):
    issued = api_key_issue(application=application, actor=operator)
    api_key_revoke(key=issued.key, actor=operator)
    assert api_key_verify(tenant=application.tenant, plaintext=issued.plaintext).reason == "key_invalid"
    api_key_revoke(key=issued.key, actor=operator)  # idempotent
    assert AuditEvent.objects.filter(action="apikey.revoke").count() == 1


def test_expired_key_is_reported_expired(application, operator):
    issued = api_key_issue(application=application, actor=operator, expires_at=timezone.now() + timedelta(hours=1))
    APIKey.objects.filter(pk=issued.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_key_verify(tenant=application.tenant, plaintext=issued.plaintext).reason == "key_expired"


def test_suspended_consumer_key_is_refused(application, operator):
    issued = api_key_issue(application=application, actor=operator)
    consumer_suspend(consumer=application.consumer, actor=operator)
    assert api_key_verify(tenant=application.tenant, plaintext=issued.plaintext).reason == "consumer_suspended"


def test_keys_issued_under_an_old_pepper_keep_verifying(application, operator, settings):
    issued = api_key_issue(application=application, actor=operator)
    old = dict(settings.APIM_KEY_PEPPERS)
    with override_settings(
        APIM_KEY_PEPPER_ID="2", APIM_KEY_PEPPERS={**old, "2": "a-brand-new-pepper-0123456789abcdef"}
    ):
        assert api_key_verify(tenant=application.tenant, plaintext=issued.plaintext).ok
        fresh = api_key_issue(application=ApplicationFactory(consumer=application.consumer), actor=operator)
        assert fresh.key.pepper_id == "2"
        assert api_key_verify(tenant=application.tenant, plaintext=fresh.plaintext).ok


def test_update_audits_the_stored_state_and_can_clear_expiry(application, operator):
    from consumers.services import api_key_update

    issued = api_key_issue(
        application=application, actor=operator, name="old", expires_at=timezone.now() + timedelta(days=1)
    )
    edited = issued.key
    edited.name = "edited-in-memory"  # as an admin form would have done before calling the service
    api_key_update(key=edited, actor=operator, name="new", expires_at=None)
    event = AuditEvent.objects.get(action="apikey.update")
    assert event.before["name"] == "old"
    assert event.after["name"] == "new"
    assert APIKey.objects.get(pk=issued.key.pk).expires_at is None
    with pytest.raises(ValidationError, match="must be in the future"):
        api_key_update(key=edited, actor=operator, expires_at=timezone.now() - timedelta(days=1))
