"""describe(): plain dicts for the admin and /__apim endpoints."""

import json

from tests.gateway.balancing.helpers import fail_target, make


def test_describe_reports_state_failures_ejection_and_in_flight():
    balancer, registry, clock = make(
        "round_robin", {"a": 100, "b": 100, "c": 0}, passive_failure_threshold=2, ejection_base=30
    )
    fail_target(registry, "a", 2)
    fail_target(registry, "b", 1)
    held = balancer.pick()
    clock.advance(10)
    rows = {row["url"]: row for row in balancer.describe()["targets"]}
    json.dumps(rows)  # plain data
    a, b, c = rows["http://a.test:80"], rows["http://b.test:80"], rows["http://c.test:80"]
    assert a["state"] == "ejected" and a["circuit"] == "open" and a["ejections"] == 1
    assert a["ejected_for_s"] == 20 and a["ejected_until"] == 1_700_000_020.0
    assert b == b | {"state": "healthy", "consecutive_failures": 1, "in_flight": 1, "ejected_until": None}
    assert c["state"] == "disabled"
    clock.advance(20)
    assert registry.describe()["u1"][0]["state"] == "half_open"
    held.release()
    assert balancer.describe()["strategy"] == "round_robin"
