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

from apim.observability.tracing import configure_tracing  # noqa: E402
from gateway import tracing  # noqa: E402
from gateway.headers import TrustedProxies  # noqa: E402
from gateway.runtime import GatewayRuntime  # noqa: E402

# Off unless configured (OTEL_EXPORTER_OTLP_ENDPOINT or APIM_TRACING=otlp); on, before the runtime is built.
if configure_tracing("apim-gateway") is not None:
    from gateway.traced import install

    install()

runtime = GatewayRuntime(
    client_kind=settings.APIM_GATEWAY_CLIENT,
    trusted_proxies=TrustedProxies.parse(settings.APIM_TRUSTED_PROXIES),
    poll_interval=settings.APIM_GATEWAY_POLL_INTERVAL,
    channel_layer=get_channel_layer(),
)

http = tracing.wrap_app(runtime.http) if tracing.ENABLED else runtime.http
application = ProtocolTypeRouter({"http": http, "websocket": runtime.websocket, "lifespan": runtime.lifespan})
