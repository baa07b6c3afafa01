"""The shared metrics directory: worker-like processes count into it, any process renders the sum.

Real processes (``python -c``) with ``PROMETHEUS_MULTIPROC_DIR`` set before
they import prometheus_client, as the gateway's workers are started; one of
them is killed with SIGKILL to show what a crash leaves: its counts stay
(they happened), its gauges go (nobody is behind them any more).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.metrics_multiprocess import _file_pid, merge_gauges, prepare_directory
from tests.gateway.metrics.support import Exposition

BASE_DIR = Path(__file__).resolve().parents[3]

WORKER = textwrap.dedent(
    """
    import sys
    from gateway.metrics import GatewayMetrics
    requests, healthy, depth = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    target = ("u1", "http://10.0.0.1:80")
    metrics = GatewayMetrics(gauges=lambda: [
        ("apim_gateway_upstream_target_healthy", target, healthy),
        ("apim_gateway_upstream_target_circuit", target, 0.0 if healthy else 2.0),
        ("apim_gateway_usage_buffer_depth", (), depth),
    ])
    for n in range(requests):
        metrics.observe("t1", "a1", "GET", 200 if n % 2 else 503, "", 2000, 1500, 300)
    metrics.flush()
    print("ready", flush=True)
    if sys.stdin.readline().strip() == "stop":
        import asyncio
        asyncio.run(metrics.stop())
    """
)
# What a scrape runs: the gateway's metrics module declares the gauges; the exposition reads the directory.
RENDER = "import sys, gateway.metrics; sys.stdout.write(gateway.metrics.exposition.render().decode())"


def python(code: str, directory: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(BASE_DIR)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=BASE_DIR, env=env, text=True, stdout=subprocess.PIPE, **kwargs
    )


def render(directory: Path) -> Exposition:
    process = python(RENDER, directory)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    return Exposition.parse(out)


@pytest.fixture
def directory(tmp_path):
    return prepare_directory(tmp_path / "metrics")


def start_worker(directory: Path, requests: int, healthy: float, depth: float) -> subprocess.Popen:
    worker = python(WORKER, directory, str(requests), str(healthy), str(depth), stdin=subprocess.PIPE)
    assert worker.stdout.readline().strip() == "ready"
    return worker


def test_counts_summed_over_processes_gauges_over_live_ones(directory):
    a = start_worker(directory, 5, 1.0, 10)
    b = start_worker(directory, 7, 0.0, 4)
    try:
        exposition = render(directory)
        assert exposition.by("apim_gateway_requests_total", "status_class") == {("2xx",): 2 + 3, ("5xx",): 3 + 4}
        assert exposition.value("apim_gateway_request_latency_seconds_count", tenant="t1", api="a1") == 12
        assert exposition.value("apim_gateway_upstream_latency_seconds_count", tenant="t1", api="a1") == 12
        assert exposition.value("apim_gateway_workers") == 2
        target = {"upstream": "u1", "target": "http://10.0.0.1:80"}
        assert exposition.value("apim_gateway_upstream_target_healthy", **target) == 0  # min: one worker ejected it
        assert exposition.value("apim_gateway_upstream_target_circuit", **target) == 2  # max: the worst state
        assert exposition.value("apim_gateway_usage_buffer_depth") == 14  # sum

        # A crash: the counts stay, the crashed worker's gauges leave the next scrape.
        b.send_signal(signal.SIGKILL)
        b.wait(timeout=10)
        exposition = render(directory)
        assert exposition.total("apim_gateway_requests_total") == 12
        assert exposition.value("apim_gateway_workers") == 1
        assert exposition.value("apim_gateway_upstream_target_healthy", **target) == 1
        assert exposition.value("apim_gateway_usage_buffer_depth") == 10
        assert not [p for p in directory.glob("apim_gauges_*.json") if _file_pid(p.name) == b.pid]

        # A clean stop retires the worker's gauges itself.
        a.stdin.write("stop\n")
        a.stdin.flush()
        assert a.wait(timeout=10) == 0
        assert not list(directory.glob("apim_gauges_*.json"))
        exposition = render(directory)
        assert exposition.value("apim_gateway_workers") is None
        assert exposition.total("apim_gateway_requests_total") == 12
    finally:
        for worker in (a, b):
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_prepare_directory_removes_earlier_runs_only(tmp_path):
    directory = tmp_path / "m"
    directory.mkdir()
    me = os.getpid()
    stale = ["counter_1.db", "histogram_2.db", "gauge_livesum_3.db", "apim_gauges_4_1.json"]
    kept = [f"counter_{me}.db", f"apim_gauges_{me}_1.json", "README", "notes.txt"]
    for name in stale + kept:
        (directory / name).write_text("x")
    assert prepare_directory(directory) == directory
    assert sorted(p.name for p in directory.iterdir()) == sorted(kept)
    assert prepare_directory(tmp_path / "new" / "dir").is_dir()


def test_gauge_merge_modes():
    specs = {"g_sum": ("", (), "sum"), "g_min": ("", ("x",), "min"), "g_max": ("", ("x",), "max")}
    documents = [
        [("g_sum", (), 2.0), ("g_min", ("a",), 1.0), ("g_max", ("a",), 0.0), ("unknown", (), 5.0)],
        [("g_sum", (), 3.0), ("g_min", ("a",), 0.0), ("g_max", ("a",), 2.0), ("g_min", ("b",), 1.0)],
    ]
    merged = {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in merge_gauges(documents, specs)}
    assert merged == {"g_sum": {(): 5.0}, "g_min": {("a",): 0.0, ("b",): 1.0}, "g_max": {("a",): 2.0}}
