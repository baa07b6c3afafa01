"""consumers.services subscriptions: approval flow and legal status moves."""

import itertools

import pytest
from django.core.exceptions import ValidationError

from apim.exceptions import IllegalTransition
from apim.models import ApiStatus
from consumers.models import SUBSCRIPTION_TRANSITIONS, Subscription, SubscriptionStatus
from consumers.services import subscription_create, subscription_transition
from tests.factories import ApiFactory, PlanFactory


@pytest.fixture
def api(tenant):
    return ApiFactory(tenant=tenant)


def test_plan_without_approval_activates_at_once(application, api, operator):
    sub = subscription_create(
        application=application, api=api, plan=PlanFactory(tenant=application.tenant), actor=operator
    )
    assert sub.status == SubscriptionStatus.ACTIVE


def test_plan_with_approval_starts_pending(application, api, operator):
    plan = PlanFactory(tenant=application.tenant, requires_approval=True)
    sub = subscription_create(application=application, api=api, plan=plan, actor=operator)
    assert sub.status == SubscriptionStatus.PENDING


def test_one_live_subscription_per_application_and_api(application, api, operator):
    plan = PlanFactory(tenant=application.tenant)
    first = subscription_create(application=application, api=api, plan=plan, actor=operator)
    with pytest.raises(ValidationError, match="already has a live subscription"):
        subscription_create(application=application, api=api, plan=plan, actor=operator)
    subscription_transition(subscription=first, to=SubscriptionStatus.CANCELLED, actor=operator)
    subscription_create(application=application, api=api, plan=plan, actor=operator)
    assert Subscription.objects.count() == 2


def test_cross_tenant_plan_refused(application, api, other_tenant, operator):
    with pytest.raises(ValidationError, match="another tenant"):
        subscription_create(application=application, api=api, plan=PlanFactory(tenant=other_tenant), actor=operator)
    assert not Subscription.objects.exists()


def test_retired_api_takes_no_subscriptions(application, tenant, operator):
    api = ApiFactory(tenant=tenant, status=ApiStatus.RETIRED)
    with pytest.raises(ValidationError, match="retired"):
        subscription_create(application=application, api=api, plan=PlanFactory(tenant=tenant), actor=operator)


@pytest.mark.parametrize(("start", "to"), list(itertools.product(SubscriptionStatus.values, repeat=2)))
def test_status_pairs(application, api, operator, start, to):
    plan = PlanFactory(tenant=application.tenant, requires_approval=True)
    sub = subscription_create(application=application, api=api, plan=plan, actor=operator)
    Subscription.objects.filter(pk=sub.pk).update(status=start)
    sub.refresh_from_db()
    if to in SUBSCRIPTION_TRANSITIONS[start]:
        subscription_transition(subscription=sub, to=to, actor=operator)
        assert Subscription.objects.get(pk=sub.pk).status == to
    else:
        with pytest.raises(IllegalTransition):
            subscription_transition(subscription=sub, to=to, actor=operator)
        assert Subscription.objects.get(pk=sub.pk).status == start
