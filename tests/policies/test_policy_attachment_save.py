"""Saving an attachment validates its config with the policy type's own schema and rules."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from policies.models import PolicyAttachment
from policies.services import policy_attachment_save
from tests.factories import ApiFactory

pytestmark = pytest.mark.django_db


def test_a_valid_config_is_saved_and_bumps_the_config_version(tenant):
    before = tenant.config_version
    attachment = policy_attachment_save(
        attachment=PolicyAttachment(tenant=tenant, policy="ip-restriction", config={"allow": ["10.0.0.0/8"]}),
        actor=None,
    )
    assert attachment.pk is not None
    tenant.refresh_from_db()
    assert tenant.config_version > before


def test_a_bad_config_is_refused_with_the_field_named_and_nothing_saved(tenant):
    with pytest.raises(ValidationError) as excinfo:
        policy_attachment_save(
            attachment=PolicyAttachment(tenant=tenant, policy="ip-restriction", config={"allow": ["300.1.1.1"]}),
            actor=None,
        )
    assert "allow[0]: '300.1.1.1' is not an IP address or CIDR block" in str(excinfo.value.message_dict["config"])
    assert not PolicyAttachment.objects.exists()


def test_an_unknown_type_is_refused(tenant):
    with pytest.raises(ValidationError) as excinfo:
        policy_attachment_save(attachment=PolicyAttachment(tenant=tenant, policy="magic", config={}), actor=None)
    assert "policy" in excinfo.value.message_dict


def test_a_pre_authentication_type_cannot_be_attached_to_a_consumer(tenant, consumer):
    with pytest.raises(ValidationError) as excinfo:
        policy_attachment_save(
            attachment=PolicyAttachment(
                tenant=tenant, policy="ip-restriction", consumer=consumer, config={"deny": ["10.0.0.0/8"]}
            ),
            actor=None,
        )
    assert "cannot be attached to a consumer" in str(excinfo.value.message_dict["consumer"])


def test_another_tenants_api_is_refused(tenant, other_tenant):
    foreign = ApiFactory(tenant=other_tenant)
    with pytest.raises(ValidationError):
        policy_attachment_save(
            attachment=PolicyAttachment(
                tenant=tenant, api=foreign, policy="ip-restriction", config={"deny": ["10.0.0.0/8"]}
            ),
            actor=None,
        )
    assert not PolicyAttachment.objects.exists()
