"""The "config changed" event that tells every gateway worker to rebuild its snapshot.

Published after commit on the Channels layer (Redis pub/sub in production,
in-memory when embedded). Publishing is best effort by design: gateways also
poll the tenant's ``config_version``, so a lost event delays a reload by one
poll interval but never loses it, and a Redis outage never fails a save.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

CONFIG_GROUP = "apim.config"
CONFIG_EVENT_TYPE = "config.changed"


def config_changed_message(*, tenant_id: str, version: int) -> dict[str, object]:
    return {"type": CONFIG_EVENT_TYPE, "tenant_id": tenant_id, "version": version}


def publish_config_changed(*, tenant_id: str, version: int) -> bool:
    """Send the event; return whether the layer accepted it."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(CONFIG_GROUP, config_changed_message(tenant_id=tenant_id, version=version))
    except Exception:
        logger.warning("config-changed event for tenant %s version %s not published", tenant_id, version, exc_info=True)
        return False
    return True
