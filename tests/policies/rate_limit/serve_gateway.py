"""One gateway *process* for the multi-process limit test (not a test module).

``python -m tests.policies.rate_limit.serve_gateway '<json>'`` serves a test
gateway (the harness: uvicorn + the real proxy) with one API guarded by a
rate-limit backed by Redis, prints its port, and runs until stdin closes.
JSON: ``{"redis": url, "prefix": key prefix, "upstream": origin, "limits": {...}}``.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apim.settings.test")
    import django

    django.setup()
    from policies.limits.store import RedisLimiter
    from tests.gateway.harness import Api, GatewayHarness

    config = json.loads(sys.argv[1])
    # Generous store deadlines: this process serves an exactness test on a shared, busy machine,
    # where a slow round trip must not be mistaken for a dead Redis (which would fail open).
    limiter = RedisLimiter(
        config["redis"],
        prefix=config["prefix"],
        socket_timeout=config.get("socket_timeout", 10.0),
        round_trip_timeout=config.get("round_trip_timeout", 15.0),
    )
    harness = GatewayHarness().start()
    policy = ("rate-limit", {"limits": config["limits"], "limit_by": "ip"})
    harness.configure(
        Api(base_path="/svc", targets=[config["upstream"]], policies=[policy]), services={"limiter": limiter}
    )
    print(harness.port, flush=True)
    sys.stdin.read()
    harness.stop()


if __name__ == "__main__":
    main()
