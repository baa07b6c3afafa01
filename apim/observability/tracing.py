"""OpenTelemetry tracing: off unless configured, OTLP over HTTP when on.

On when ``APIM_TRACING=otlp`` or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``);
``APIM_TRACING=off``, ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
turn it off whatever else is set. Everything else follows the OpenTelemetry
environment conventions, read by the SDK itself: ``OTEL_SERVICE_NAME`` (else
``apim-web`` / ``apim-gateway`` / ``apim-worker``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER[_ARG]``, ``OTEL_PROPAGATORS``, ``OTEL_EXPORTER_OTLP_*``
(headers, timeout, compression) and ``OTEL_BSP_*`` (batching).

Spans leave through a batch processor: a background thread exports them, so
a request only appends to a queue. ``shutdown_tracing`` flushes what is
queued; it also runs at interpreter exit.

When tracing is off nothing of OpenTelemetry is imported: every import below
is inside a function that returns early.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

# True once a tracer provider is installed in this process (read by the log formatter).
ACTIVE = False
_provider: Any = None
_lock = threading.Lock()
_OFF = ("off", "none", "false", "0")


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process should trace, from the environment alone."""
    environ = os.environ if environ is None else environ
    mode = environ.get("APIM_TRACING", "").strip().lower()
    if mode and mode not in ("otlp", *_OFF):
        raise ValueError(f"APIM_TRACING must be 'otlp' or 'off', not {mode!r}")
    if mode in _OFF:
        return False
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    if mode == "otlp":
        return True
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def configure_tracing(service_name: str) -> Any:
    """Install the tracer provider for this process; the provider, or None when tracing is off.

    Idempotent: a second call returns the provider the first one installed
    (a process has one service name: the first caller's).
    """
    global ACTIVE, _provider
    if not tracing_requested():
        return None
    with _lock:
        if _provider is not None:
            return _provider
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME wins over the process's default name, as the convention says.
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME", "").strip() else {SERVICE_NAME: service_name}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _provider = provider
        ACTIVE = True
        logger.info("tracing on: OTLP/HTTP export as %s", provider.resource.attributes.get(SERVICE_NAME))
        return provider


def shutdown_tracing() -> None:
    """Export what is queued and stop the exporter thread (idempotent; a no-op when off)."""
    provider = _provider
    if provider is not None:
        provider.shutdown()


def instrument_django_process(service_name: str) -> bool:
    """Tracing for a Django process (web or worker): requests, Celery tasks, psycopg queries, httpx calls.

    Call before the WSGI/ASGI handler is built: the Django instrumentation
    adds its middleware to ``settings.MIDDLEWARE``. Returns whether tracing is on.
    """
    if configure_tracing(service_name) is None:
        return False
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    if not DjangoInstrumentor().is_instrumented_by_opentelemetry:
        DjangoInstrumentor().instrument()
    if not CeleryInstrumentor().is_instrumented_by_opentelemetry:
        # Task publish spans here, task run spans in the worker, one trace across both.
        CeleryInstrumentor().instrument()
    if not PsycopgInstrumentor().is_instrumented_by_opentelemetry:
        # No SQL commenter: the statement text stays exactly what the code wrote.
        PsycopgInstrumentor().instrument(enable_commenter=False)
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()
    return True


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as hex, or None (always None when tracing is off)."""
    if not ACTIVE:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
