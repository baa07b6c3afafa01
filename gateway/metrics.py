"""The gateway's Prometheus metrics: counted per request in plain Python, published once a second.

Why not ``Counter.inc()`` / ``Histogram.observe()`` per request: in
multi-process mode (``--workers N``) every prometheus_client value is a slot in
a memory-mapped file behind a lock, and one request touches ~45 of them (a
counter, three histograms' bucket and sum). Instead each worker keeps one dict
entry per (tenant, API, method, status, deny reason) seen since the last flush
— a flat list of integers: counts, microsecond sums and bucket counts — so the
request pays a tuple, a dict lookup and a few ``bisect`` calls, no lock, no I/O.
``flush()`` (every ``FLUSH_INTERVAL`` on the worker's event loop, before
every scrape, and at shutdown) folds that into the prometheus_client metrics
below, which in multi-process mode land in the shared directory, so a scrape
that reaches ANY worker reports the sum of all of them
(``gateway.metrics_multiprocess``).

Gauges (target health, circuit state, usage buffer depth, config version) are
the state of a live worker, not a sum: they are re-read from the runtime at
each flush and published as one small document per worker, merged at scrape
time over live workers only (min / max / sum per gauge). prometheus_client's
own multi-process gauges cannot forget a label set (a target removed from the
configuration would be reported forever), these documents can.

Labels stay low-cardinality: tenant and API ids (both bounded by the
configuration; ``""`` when no API matched), the method (known methods, else
``OTHER``), the status class and the deny reason (a fixed vocabulary, capped).
Never a consumer, key, application or path: per-consumer numbers live in the
usage records in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from gateway import metrics_multiprocess as exposition

if TYPE_CHECKING:
    from analytics.recorder import UsageRecorder
    from gateway.health import HealthRegistry
    from gateway.reload import ConfigWatcher

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
RATE_LIMIT_REASONS = frozenset({"rate_limited", "quota_exceeded"})
# Deny reasons are a fixed vocabulary in code; the cap only guards against a plugin inventing them per request.
MAX_DENY_REASONS = 64
MAX_REASON_LENGTH = 64

# Seconds; 100 µs (a denial answered from memory) up to the 60 s of a long upstream read timeout.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_BOUNDS_US = tuple(round(bound * 1_000_000) for bound in LATENCY_BUCKETS)
_NB = len(LATENCY_BUCKETS) + 1  # and +Inf

# One accumulator entry (a flat list of ints), per key seen since the last flush.
_COUNT, _SUM, _UP_COUNT, _UP_SUM, _ADDED_SUM = range(5)
_TOTAL_B = 5
_UP_B = _TOTAL_B + _NB
_ADDED_B = _UP_B + _NB
_ENTRY_SIZE = _ADDED_B + _NB

REQUESTS = Counter(
    "apim_gateway_requests",
    "Requests served, by tenant, API, method and status class (1xx..5xx; 0: no status).",
    ["tenant", "api", "method", "status_class"],
)
REQUEST_LATENCY = Histogram(
    "apim_gateway_request_latency_seconds",
    "Total request latency as the gateway measured it (to the end of the response).",
    ["tenant", "api"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_LATENCY = Histogram(
    "apim_gateway_upstream_latency_seconds",
    "Forwarded requests: from sending to the upstream to its response head.",
    ["tenant", "api"],
    buckets=LATENCY_BUCKETS,
)
ADDED_LATENCY = Histogram(
    "apim_gateway_added_latency_seconds",
    "Forwarded requests: what the gateway added before sending upstream (routing, policies, connect).",
    ["tenant", "api"],
    buckets=LATENCY_BUCKETS,
)
DENIALS = Counter(
    "apim_gateway_denials",
    "Requests the gateway answered itself (policy denial or gateway error), by deny reason.",
    ["tenant", "api", "reason"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "apim_gateway_ratelimit_rejections",
    "Requests refused by a rate limit (rate_limited) or an exhausted quota (quota_exceeded).",
    ["tenant", "api", "reason"],
)
CONFIG_RELOADS = Counter("apim_gateway_config_reloads", "Configuration snapshots swapped in by the workers.")

# Gauges: name -> (help, label names, how live workers' values merge).
GAUGES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "apim_gateway_workers": ("Live gateway worker processes.", (), "sum"),
    "apim_gateway_upstream_target_healthy": (
        "1 when every live worker admits the target (circuit closed, active checks passing), else 0.",
        ("upstream", "target"),
        "min",
    ),
    "apim_gateway_upstream_target_circuit": (
        "Circuit state, the worst over live workers: 0 closed, 1 half-open, 2 open (ejected).",
        ("upstream", "target"),
        "max",
    ),
    "apim_gateway_usage_buffer_depth": ("Usage records waiting in the workers' buffers.", (), "sum"),
    "apim_gateway_config_version": (
        "Sum of the tenants' config versions in the snapshot served; the lowest over live workers.",
        (),
        "min",
    ),
    "apim_gateway_config_loaded_timestamp_seconds": (
        "Unix time of the last successful snapshot swap; the oldest over live workers.",
        (),
        "min",
    ),
    "apim_gateway_config_stale": (
        "1 when a worker's last reload failed (it serves its last good snapshot).",
        (),
        "max",
    ),
}
exposition.declare_gauges(GAUGES)
_CIRCUIT_LEVELS = {"closed": 0, "half_open": 1, "open": 2}

GaugeSample = tuple[str, tuple[str, ...], float]


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "0"


def target_label(url: str) -> str:
    """A target URL without userinfo: labels are not a place for credentials."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def _add_histogram(child: Any, buckets: list[int], sum_us: int) -> None:
    """Add pre-bucketed observations to a histogram child.

    prometheus_client has no public bulk observe; its children keep one
    (non-cumulative) value per bucket in ``_buckets`` and the total in ``_sum``
    (stable since 0.4; pinned, and checked by the tests against ``observe``).
    """
    for index, count in enumerate(buckets):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(sum_us / 1_000_000)


class GatewayMetrics:
    """One worker's request accumulator and its publisher. ``observe`` is the only per-request call."""

    def __init__(
        self,
        *,
        gauges: Callable[[], Iterable[GaugeSample]] = tuple,
        reloads: Callable[[], int] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._stats: dict[tuple[Any, ...], list[int]] = {}
        self._gauges = gauges
        self._reloads = reloads
        self._reloads_seen = 0
        self._reasons: set[str] = set()
        self.flush_interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._publisher = exposition.GaugePublisher()

    def observe(
        self,
        tenant_id: str | None,
        api_id: str | None,
        method: str,
        status: int,
        deny_reason: str,
        latency_us: int,
        upstream_latency_us: int | None,
        gateway_latency_us: int,
    ) -> None:
        key = (tenant_id, api_id, method if method in KNOWN_METHODS else "OTHER", status, deny_reason)
        entry = self._stats.get(key)
        if entry is None:
            entry = self._stats[key] = [0] * _ENTRY_SIZE
        entry[_COUNT] += 1
        entry[_SUM] += latency_us
        entry[_TOTAL_B + bisect_left(_BOUNDS_US, latency_us)] += 1
        if upstream_latency_us is not None:
            entry[_UP_COUNT] += 1
            entry[_UP_SUM] += upstream_latency_us
            entry[_ADDED_SUM] += gateway_latency_us
            entry[_UP_B + bisect_left(_BOUNDS_US, upstream_latency_us)] += 1
            entry[_ADDED_B + bisect_left(_BOUNDS_US, gateway_latency_us)] += 1

    def counting(self, record: Callable[..., None]) -> Callable[..., None]:
        """Wrap the usage recorder's ``record``: the usage record's fields feed the metrics too.

        Every request already leaves exactly one usage record (reserved paths
        excepted), with the tenant, API, status, deny reason and the three
        latencies: counting there keeps the proxy free of a second hook.
        """
        observe = self.observe

        def record_and_count(**fields: Any) -> None:
            try:
                observe(
                    fields["tenant_id"],
                    fields.get("api_id"),
                    fields["method"],
                    fields["status"],
                    fields.get("deny_reason", ""),
                    fields["latency_us"],
                    fields.get("upstream_latency_us"),
                    fields.get("gateway_latency_us", 0),
                )
            except Exception:  # a metrics bug must never cost a request or its usage record
                logger.exception("request metrics failed")
            record(**fields)

        return record_and_count

    def _reason(self, reason: str) -> str:
        reason = reason[:MAX_REASON_LENGTH]
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_DENY_REASONS:
                return "other"
            self._reasons.add(reason)
        return reason

    def flush(self) -> None:
        """Fold the requests counted since the last flush into the metrics; publish this worker's gauges."""
        stats, self._stats = self._stats, {}
        histograms: dict[tuple[str, str], list[int]] = {}
        for (tenant, api, method, status, reason), entry in stats.items():
            tenant, api = tenant or "", api or ""
            count = entry[_COUNT]
            REQUESTS.labels(tenant, api, method, status_class(status)).inc(count)
            if reason:
                label = self._reason(reason)
                DENIALS.labels(tenant, api, label).inc(count)
                if reason in RATE_LIMIT_REASONS:
                    RATE_LIMIT_REJECTIONS.labels(tenant, api, reason).inc(count)
            merged = histograms.get((tenant, api))
            if merged is None:
                histograms[(tenant, api)] = entry
            else:
                for index, value in enumerate(entry):
                    merged[index] += value
        for (tenant, api), entry in histograms.items():
            _add_histogram(REQUEST_LATENCY.labels(tenant, api), entry[_TOTAL_B:_UP_B], entry[_SUM])
            if entry[_UP_COUNT]:
                _add_histogram(UPSTREAM_LATENCY.labels(tenant, api), entry[_UP_B:_ADDED_B], entry[_UP_SUM])
                _add_histogram(ADDED_LATENCY.labels(tenant, api), entry[_ADDED_B:], entry[_ADDED_SUM])
        if self._reloads is not None:
            reloads = self._reloads()
            if reloads > self._reloads_seen:
                CONFIG_RELOADS.inc(reloads - self._reloads_seen)
            self._reloads_seen = reloads
        try:
            samples = [("apim_gateway_workers", (), 1.0), *self._gauges()]
        except Exception:
            logger.exception("gateway gauges could not be read")
            samples = [("apim_gateway_workers", (), 1.0)]
        self._publisher.publish(samples)

    def render(self) -> bytes:
        """The exposition for a scrape: this worker's latest counts first, then every worker's (if several)."""
        self.flush()
        return exposition.render()

    async def start(self) -> None:
        if self._task is None:
            self.flush()
            self._task = asyncio.create_task(self._run(), name="apim-metrics-flush")

    async def stop(self) -> None:
        """Last flush (every request has finished by now), then retire this worker's gauges."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            self.flush()
        finally:
            self._publisher.retire()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                self.flush()
            except Exception:  # a bug here must not end publishing for the worker's lifetime
                logger.exception("metrics flush failed")


def runtime_gauges(
    registry: HealthRegistry, watcher: ConfigWatcher[Any], usage: UsageRecorder | None
) -> list[GaugeSample]:
    """A worker's gauges, read from its runtime parts (once per flush, never per request)."""
    samples: list[GaugeSample] = []
    for upstream_id, targets in registry.describe().items():
        for target in targets:
            labels = (str(upstream_id), target_label(target["url"]))
            samples.append(
                ("apim_gateway_upstream_target_healthy", labels, 1.0 if target["state"] == "healthy" else 0.0)
            )
            samples.append(("apim_gateway_upstream_target_circuit", labels, float(_CIRCUIT_LEVELS[target["circuit"]])))
    if usage is not None:
        samples.append(("apim_gateway_usage_buffer_depth", (), float(usage.depth)))
    snapshot = watcher.current
    if snapshot is not None:
        samples.append(("apim_gateway_config_version", (), float(sum(snapshot.tenant_versions.values()))))
    if watcher.loaded_at is not None:
        samples.append(("apim_gateway_config_loaded_timestamp_seconds", (), watcher.loaded_at))
    samples.append(("apim_gateway_config_stale", (), 1.0 if watcher.last_error is not None else 0.0))
    return samples
