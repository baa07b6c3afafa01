"""When tracing is on: only when configured, following the OpenTelemetry variables."""

from __future__ import annotations

import pytest

from apim.observability import tracing
from gateway import tracing as gateway_tracing


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"APIM_TRACING": "otlp"}, True),
        ({"APIM_TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "APIM_TRACING": "otlp"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ],
)
def test_tracing_requested(environ, on):
    assert tracing.tracing_requested(environ) is on


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="APIM_TRACING"):
        tracing.tracing_requested({"APIM_TRACING": "jaeger"})


def test_off_in_the_test_process():
    """Nothing configured: no provider, the gateway flag down, no trace ids for log lines."""
    assert tracing.configure_tracing("apim-test") is None
    assert tracing.ACTIVE is False
    assert gateway_tracing.ENABLED is False
    assert tracing.current_trace_ids() is None
