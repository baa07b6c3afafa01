"""Config changes bump the tenant's version and publish "config changed" after commit.

Runs on the in-memory channel layer by default and on Redis pub/sub when
REDIS_URL is set (CI's second pass), through the real layer in both cases.
"""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apim.events import CONFIG_EVENT_TYPE, CONFIG_GROUP
from apim.models import Tenant
from apim.services.catalog import api_create


async def _listen(layer, channel_ready: asyncio.Event, received: list, count: int):
    channel = await layer.new_channel()
    await layer.group_add(CONFIG_GROUP, channel)
    channel_ready.set()
    try:
        for _ in range(count):
            received.append(await asyncio.wait_for(layer.receive(channel), timeout=5))
    finally:
        await layer.group_discard(CONFIG_GROUP, channel)


def test_event_is_published_only_after_commit(tenant, operator, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    received: list = []

    async def scenario():
        ready = asyncio.Event()
        listener = asyncio.create_task(_listen(layer, ready, received, 1))
        await ready.wait()
        await asyncio.sleep(0.1)  # let a pub/sub subscription settle
        from asgiref.sync import sync_to_async

        def mutate():
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                api_create(tenant=tenant, actor=operator, name="orders", title="Orders", base_path="/orders")
            assert len(callbacks) == 1, "publication must wait for the commit"
            assert received == []
            for callback in callbacks:
                callback()

        await sync_to_async(mutate, thread_sensitive=True)()
        await listener

    async_to_sync(scenario)()
    version = Tenant.objects.get(pk=tenant.pk).config_version
    assert received == [{"type": CONFIG_EVENT_TYPE, "tenant_id": str(tenant.pk), "version": version}]
    assert version == 1


def test_failed_mutation_publishes_nothing(tenant, operator, django_capture_on_commit_callbacks):
    from django.core.exceptions import ValidationError

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError):
        api_create(tenant=tenant, actor=operator, name="orders", title="Orders", base_path="no-slash")
    assert callbacks == []
    assert Tenant.objects.get(pk=tenant.pk).config_version == 0


def test_publish_failure_never_fails_the_caller(settings):
    from channels.layers import channel_layers

    from apim.events import publish_config_changed

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens on port 1
        }
    }
    channel_layers.backends.clear()
    try:
        assert publish_config_changed(tenant_id="t", version=1) is False
    finally:
        channel_layers.backends.clear()
