"""consumers.services for consumers, applications and plans: validation and audit."""

import pytest
from django.core.exceptions import ValidationError

from apim.models import AuditEvent
from consumers.models import Application, Consumer, ConsumerStatus, Plan
from consumers.services import (
    application_create,
    consumer_activate,
    consumer_create,
    consumer_suspend,
    plan_create,
)


def test_duplicate_consumer_name_refused(tenant, operator):
    consumer_create(tenant=tenant, name="partner", actor=operator)
    with pytest.raises(ValidationError, match="already exists"):
        consumer_create(tenant=tenant, name="partner", actor=operator)
    assert Consumer.objects.count() == 1


def test_suspend_and_activate_are_audited(consumer, operator):
    consumer_suspend(consumer=consumer, actor=operator)
    assert consumer.status == ConsumerStatus.SUSPENDED
    consumer_suspend(consumer=consumer, actor=operator)  # already suspended: no second event
    consumer_activate(consumer=consumer, actor=operator)
    actions = list(AuditEvent.objects.order_by("created_at", "id").values_list("action", flat=True))
    assert actions == ["consumer.suspend", "consumer.activate"]


def test_application_names_are_unique_per_consumer(consumer, operator):
    application_create(consumer=consumer, name="mobile", actor=operator)
    with pytest.raises(ValidationError, match="already exists"):
        application_create(consumer=consumer, name="mobile", actor=operator)
    assert Application.objects.filter(consumer=consumer).count() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"quota_timezone": "Mars/Olympus"}, "not a known time zone"),
        ({"rate_limit_per_minute": 0}, "greater than or equal to 1"),
        ({"name": "Gold Plan"}, "not a valid name"),
    ],
)
def test_plan_validation(tenant, operator, fields, message):
    args = {"name": "gold", **fields}
    with pytest.raises(ValidationError, match=message):
        plan_create(tenant=tenant, actor=operator, **args)
    assert not Plan.objects.exists()
