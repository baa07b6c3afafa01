"""Micro-benchmark: the cost of one policy chain run (key-auth + plan rate limit + plan quota), in process.

No network: the key store answers from its cache (a pre-loaded record, as after
the first request) and limits use the in-process store, so this measures the
Python the policies add per request, which is what ``make bench`` scenario (5)
pays on top of (4) besides the store round trip. Prints µs per request.

    .venv/bin/python bench/policy_chain_bench.py [--n 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apim.settings.test")

import django

django.setup()

from consumers import keys  # noqa: E402
from policies.base import ApiInfo  # noqa: E402
from policies.context import RequestContext  # noqa: E402
from policies.engine import AttachmentSpec, PlanSpec, compile_chains  # noqa: E402
from policies.keystore import KeyRecord, KeyStore  # noqa: E402
from policies.limits.store import MemoryLimiter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args()
    generated = keys.generate()
    record = KeyRecord(
        key_id=generated.key_id,
        digest=keys.digest(generated.plaintext),
        pepper_id=keys.current_pepper_id(),
        tenant_id="t1",
        consumer_id="c1",
        consumer_name="acme",
        consumer_active=True,
        application_id="app1",
        scopes=frozenset(),
        allowed_api_ids=frozenset(),
        expires_at=None,
        active=True,
        subscriptions={"api1": ("sub1", "plan1")},
        groups=frozenset(),
        version=1,
    )
    store = KeyStore(lookup=lambda key_id: record if key_id == record.key_id else None)
    plans = {"plan1": PlanSpec(id="plan1", tenant_id="t1", rate_limit_per_second=10**9, quota_per_day=2 * 10**9)}
    chains = compile_chains(
        [ApiInfo(api_id="api1", tenant_id="t1")],
        [AttachmentSpec(id="p1", policy="key-auth", tenant_id="t1", api_id="api1")],
        services={"keys": store, "limiter": MemoryLimiter()},
        extra={"plans": plans, "tenant_versions": {"t1": 1}},
    )
    chain = chains["api1"]
    assert chain is not None
    headers = [
        (b"host", b"127.0.0.1:8081"),
        (b"user-agent", b"wrk"),
        (b"x-api-key", generated.plaintext.encode()),
    ]

    async def run() -> float:
        def ctx() -> RequestContext:
            return RequestContext(
                scope={"headers": headers},
                receive=None,  # type: ignore[arg-type]
                method="GET",
                path="/",
                query=b"",
                headers=headers,
                host=b"127.0.0.1:8081",
                client_ip="127.0.0.1",
                request_id=b"r1",
                tenant_id="t1",
                api_id="api1",
                route_pattern="/policed",
                content_length=None,
                has_body=False,
            )

        assert await chain.on_request(ctx()) is None  # warms the key cache
        start = time.perf_counter()
        for _ in range(args.n):
            c = ctx()
            if await chain.on_request(c) is not None:
                raise SystemExit(f"denied: {c.deny_reason}")
        return (time.perf_counter() - start) / args.n * 1e6

    per = asyncio.run(run())
    print(f"key-auth + plan rate limit + plan quota: {per:.1f} µs per request (in-process store, cached key)")


if __name__ == "__main__":
    main()
