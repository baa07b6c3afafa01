"""The gateway (data plane) ASGI application, served by ``manage.py gateway`` on :8081.

A Channels ``ProtocolTypeRouter``: ``http`` goes to the raw ASGI proxy (not a
Django view: a Django async view measured about 1/7 of the throughput),
``lifespan`` starts and stops the worker's background parts. Django is set up
once at import so the snapshot loader can use the ORM off the request path.
"""

import os

import django

from apim.settings.env import default_settings_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_settings_module())
django.setup()

from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from gateway.headers import TrustedProxies  # noqa: E402
from gateway.runtime import GatewayRuntime  # noqa: E402

runtime = GatewayRuntime(
    client_kind=settings.APIM_GATEWAY_CLIENT,
    trusted_proxies=TrustedProxies.parse(settings.APIM_TRUSTED_PROXIES),
    poll_interval=settings.APIM_GATEWAY_POLL_INTERVAL,
    channel_layer=get_channel_layer(),
)

application = ProtocolTypeRouter({"http": runtime.http, "websocket": runtime.websocket, "lifespan": runtime.lifespan})
