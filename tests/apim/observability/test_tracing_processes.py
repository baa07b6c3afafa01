"""Tracing end to end, as operators run it: real gateway, web and worker processes export
OTLP/HTTP to a real receiver on loopback; the gateway proxies to the web process's echo
upstream (which reports the headers it received)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.apim.observability.otlp import OtlpReceiver, Span

BASE_DIR = Path(__file__).resolve().parents[3]
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
SECRET_QUERY = "s3cr3t-query-value"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def install(tmp_path):
    """A migrated, seeded throwaway install (SQLite file) shared by the processes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL")
        and not k.startswith("OTEL_")
        and k != "APIM_TRACING"
    }
    env.update({"APIM_DATA_DIR": str(tmp_path), "APIM_ENV": "local", "APIM_WEB_PORT": str(free_port())})
    outputs = [
        subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=BASE_DIR, env=env, check=True, timeout=120, capture_output=True
        ).stdout.decode()
        for argv in (["migrate", "-v0"], ["seed_demo"])
    ]
    key = re.search(r"Demo API key\s*:\s*(apim_\w+)", outputs[1])
    assert key, outputs[1]
    return env, key.group(1)


def traced(env: dict[str, str], receiver: OtlpReceiver) -> dict[str, str]:
    return {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def start(argv: list[str], env: dict[str, str], stderr: Path | None = None) -> subprocess.Popen:
    with open(stderr or os.devnull, "wb") as err:
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=BASE_DIR,
            env=env,
            stdout=err,
            stderr=err,
            start_new_session=True,
        )


def stop(process: subprocess.Popen) -> bool:
    """SIGTERM; True when the process shut down gracefully (uvicorn re-raises the signal
    after its graceful shutdown, so a single-process server ends with -SIGTERM)."""
    os.killpg(process.pid, signal.SIGTERM)
    return process.wait(timeout=30) in (0, -signal.SIGTERM)


def wait_ok(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, trust_env=False, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200")


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {span.span_id: span for span in spans}


def test_gateway_and_web_spans_form_one_trace_with_both_upstream_clients(install, tmp_path):
    env, key = install
    web_port = env["APIM_WEB_PORT"]
    web_log = tmp_path / "web.log"
    with OtlpReceiver() as receiver:
        web = start(
            ["-m", "uvicorn", "apim.asgi:application", "--port", web_port, "--lifespan", "off"],
            {**traced(env, receiver), "APIM_LOG_FORMAT": "json"},
            stderr=web_log,
        )
        try:
            for client_kind in ("aiohttp", "httpx"):
                gw_port = free_port()
                gateway = start(
                    ["manage.py", "gateway", "--port", str(gw_port)],
                    {**traced(env, receiver), "APIM_GATEWAY_CLIENT": client_kind},
                )
                url = f"http://127.0.0.1:{gw_port}"
                try:
                    wait_ok(f"{url}/echo/ready", {"X-API-Key": key})
                    request_id = f"trace-test-{client_kind}"
                    response = httpx.get(
                        f"{url}/echo/hello?q={SECRET_QUERY}",
                        headers={
                            "X-API-Key": key,
                            "traceparent": TRACEPARENT,
                            "tracestate": "vendor=1",
                            "X-Request-ID": request_id,
                        },
                        trust_env=False,
                        timeout=10,
                    )
                    assert response.status_code == 200
                    received = {k.lower(): v for k, v in response.json()["headers"].items()}
                finally:
                    assert stop(gateway)  # shutdown flushes the batch processor

                def complete(spans: list[Span], rid: str = request_id) -> bool:
                    servers = [
                        s
                        for s in spans
                        if s.service == "apim-gateway"
                        and s.kind == "SERVER"
                        and s.attributes.get("apim.request_id") == rid
                    ]
                    return bool(servers) and any(
                        s.service == "apim-web"
                        and s.trace_id == CLIENT_TRACE_ID
                        and s.kind == "SERVER"
                        and s.parent_id != CLIENT_SPAN_ID
                        for s in spans
                    )

                spans = receiver.wait_for(complete)
                (server,) = [
                    s
                    for s in spans
                    if s.service == "apim-gateway"
                    and s.kind == "SERVER"
                    and s.attributes.get("apim.request_id") == request_id
                ]
                # The gateway's server span continues the client's trace.
                assert server.trace_id == CLIENT_TRACE_ID
                assert server.parent_id == CLIENT_SPAN_ID
                assert server.name == "GET /echo"
                assert server.attributes["http.request.method"] == "GET"
                assert server.attributes["http.route"] == "/echo"
                assert server.attributes["http.response.status_code"] == 200
                assert server.attributes["apim.tenant_id"]
                assert server.attributes["apim.api_id"]
                children = [s for s in spans if s.parent_id == server.span_id]
                assert sorted(s.name for s in children) == [
                    "apim.request_phase",
                    "apim.response_phase",
                    "apim.upstream",
                ]
                (upstream,) = [s for s in children if s.name == "apim.upstream"]
                assert upstream.kind == "CLIENT"
                assert upstream.attributes["http.response.status_code"] == 200
                assert upstream.attributes["url.path"] == "/__echo/hello" or "?" not in upstream.attributes["url.path"]
                # The upstream saw the client's trace id with the gateway's upstream span as parent.
                version, trace_id, parent_id, flags = received["traceparent"].split("-")
                assert (version, trace_id, parent_id, flags) == ("00", CLIENT_TRACE_ID, upstream.span_id, "01")
                assert received["tracestate"] == "vendor=1"
                # ... and the web process's Django span hangs under it.
                web_spans = [s for s in spans if s.service == "apim-web" and s.parent_id == upstream.span_id]
                assert len(web_spans) == 1 and web_spans[0].kind == "SERVER"
                # No query string, no key in any gateway attribute.
                for span in spans:
                    if span.service == "apim-gateway":
                        text = repr(span.attributes)
                        assert SECRET_QUERY not in text and key not in text and "apim_" not in text
            # The web process logs JSON lines: request id and trace ids inside a request, no key anywhere.
            missing = httpx.get(
                f"http://127.0.0.1:{web_port}/no-such-page?api_key={key}",
                headers={"X-Request-ID": "log-test-1", "traceparent": TRACEPARENT},
                trust_env=False,
                timeout=10,
            )
            assert missing.status_code == 404
        finally:
            stop(web)
    text = web_log.read_text()
    assert key not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    (not_found,) = [line for line in lines if line["message"].startswith("Not Found: /no-such-page")]
    assert not_found["request_id"] == "log-test-1"
    # (Django logs "Not Found" after its request span has ended: no trace id on that line.)
    assert not_found["level"] == "WARNING" and not_found["logger"] == "django.request"
    assert any("api_key=[REDACTED]" in line["message"] for line in lines if line["logger"] == "uvicorn.access")


def test_tracing_off_exports_nothing_and_passes_client_trace_headers_through(install):
    env, key = install
    web_port = env["APIM_WEB_PORT"]
    with OtlpReceiver() as receiver:
        # The receiver exists, but nothing points the processes at it: tracing stays off.
        web = start(["-m", "uvicorn", "apim.asgi:application", "--port", web_port, "--lifespan", "off"], env)
        gw_port = free_port()
        gateway = start(
            ["manage.py", "gateway", "--port", str(gw_port)],
            {**env, "APIM_TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
        )
        url = f"http://127.0.0.1:{gw_port}"
        try:
            wait_ok(f"{url}/echo/ready", {"X-API-Key": key})
            plain = httpx.get(f"{url}/echo/a", headers={"X-API-Key": key}, trust_env=False, timeout=10)
            assert "traceparent" not in {k.lower() for k in plain.json()["headers"]}
            passed = httpx.get(
                f"{url}/echo/b",
                headers={"X-API-Key": key, "traceparent": TRACEPARENT, "tracestate": "vendor=1"},
                trust_env=False,
                timeout=10,
            )
            received = {k.lower(): v for k, v in passed.json()["headers"].items()}
            assert received["traceparent"] == TRACEPARENT
            assert received["tracestate"] == "vendor=1"
        finally:
            assert stop(gateway)
            stop(web)
        time.sleep(0.5)
        assert receiver.requests == []


def test_celery_task_spans_from_a_real_worker(install):
    """A producer process publishes a task; a real worker (solo pool, the embedded
    filesystem broker) runs it; both export spans of one trace."""
    env, _ = install
    for folder in ("queue", "processed", "control"):  # the embedded broker's folders
        (Path(env["APIM_DATA_DIR"]) / "celery" / folder).mkdir(parents=True, exist_ok=True)
    with OtlpReceiver() as receiver:
        worker = start(
            ["-m", "celery", "-A", "apim", "worker", "--pool=solo", "--loglevel=WARNING"], traced(env, receiver)
        )
        try:
            producer = (
                "from apim.observability.tracing import instrument_django_process, shutdown_tracing\n"
                "instrument_django_process('apim-web')\n"
                "import django; django.setup()\n"
                "from analytics.tasks import usage_drain_task\n"
                "usage_drain_task.delay()\n"
                "shutdown_tracing()\n"
            )
            subprocess.run(
                [sys.executable, "-c", producer],
                cwd=BASE_DIR,
                env=traced(env, receiver),
                check=True,
                timeout=60,
                capture_output=True,
            )

            def ran(spans: list[Span]) -> bool:
                return any(s.service == "apim-worker" and s.name.startswith("run/") for s in spans)

            spans = receiver.wait_for(ran, timeout=60)
        finally:
            assert stop(worker)
    (publish,) = [s for s in spans if s.service == "apim-web" and s.name.startswith("apply_async/")]
    (run,) = [s for s in spans if s.service == "apim-worker" and s.name.startswith("run/")]
    assert publish.kind == "PRODUCER" and run.kind == "CONSUMER"
    assert run.name == "run/analytics.usage_drain_task"
    assert run.trace_id == publish.trace_id and run.parent_id == publish.span_id
