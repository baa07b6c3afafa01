"""factory_boy factories for the domain. They write through the ORM directly
(fast fixtures); tests of rules call the services instead."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from apim.models import API, Membership, Target, Tenant, Upstream
from consumers.models import Application, Consumer, Plan

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


def membership(*, user, tenant, role):
    return Membership.objects.create(user=user, tenant=tenant, role=role)


class UpstreamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Upstream

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"upstream{n}")


class TargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Target

    upstream = factory.SubFactory(UpstreamFactory)
    tenant = factory.SelfAttribute("upstream.tenant")
    url = factory.Sequence(lambda n: f"http://127.0.0.1:{9000 + n}")


class ApiFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = API

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"api{n}")
    title = factory.LazyAttribute(lambda o: o.name.title())
    version = "v1"
    base_path = factory.LazyAttribute(lambda o: f"/{o.name}")


class ConsumerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consumer

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"consumer{n}")


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Application

    consumer = factory.SubFactory(ConsumerFactory)
    tenant = factory.SelfAttribute("consumer.tenant")
    name = factory.Sequence(lambda n: f"app{n}")


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"plan{n}")
