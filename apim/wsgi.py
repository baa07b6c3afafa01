"""WSGI entry point, for servers that need one; apim runs on ASGI (``apim.asgi``)."""

import os

from django.core.wsgi import get_wsgi_application

from apim.observability.tracing import instrument_django_process
from apim.settings.env import default_settings_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_settings_module())
# Off unless configured (OTEL_EXPORTER_OTLP_ENDPOINT or APIM_TRACING=otlp); before the handler is built.
instrument_django_process("apim-web")

application = get_wsgi_application()
