"""ip-restriction through a real gateway: the real client address decides, never a forged header."""

from __future__ import annotations

from gateway.headers import TrustedProxies
from tests.gateway.harness import Api, GatewayHarness


def _api(echo_server, **config):
    return Api(base_path="/svc", targets=[echo_server.origin], policies=[("ip-restriction", config)])


def test_allowed_address_reaches_the_upstream(gateway, echo_server, http):
    gateway.configure(_api(echo_server, allow=["127.0.0.0/8"]))
    response = http.get(f"{gateway.url}/svc/x")
    assert response.status_code == 200
    assert response.json()["target"] == "/x"


def test_address_outside_the_allow_list_gets_403_envelope(gateway, echo_server, http):
    gateway.configure(_api(echo_server, allow=["10.0.0.0/8", "2001:db8::/32"]))
    response = http.get(f"{gateway.url}/svc/x")
    assert response.status_code == 403
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "ip_denied"
    assert body["request_id"] == response.headers["x-request-id"]


def test_deny_wins_over_allow(gateway, echo_server, http):
    gateway.configure(_api(echo_server, allow=["127.0.0.0/8"], deny=["127.0.0.1/32"]))
    assert http.get(f"{gateway.url}/svc/x").status_code == 403


def test_forged_x_forwarded_for_does_not_bypass_the_rule(gateway, echo_server, http):
    gateway.configure(_api(echo_server, deny=["127.0.0.0/8"]))
    response = http.get(f"{gateway.url}/svc/x", headers={"X-Forwarded-For": "10.9.9.9"})
    assert response.status_code == 403


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(echo_server, http):
    harness = GatewayHarness(trusted=TrustedProxies.parse(["127.0.0.0/8"])).start()
    try:
        harness.configure(_api(echo_server, allow=["203.0.113.0/24"]))
        # The left-most entry is whatever the client wrote; the right-most untrusted hop is what the proxy saw.
        allowed = http.get(f"{harness.url}/svc/x", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        denied = http.get(f"{harness.url}/svc/x", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    finally:
        harness.stop()
    assert allowed.status_code == 200
    assert denied.status_code == 403


def test_other_apis_are_not_affected(gateway, echo_server, http):
    gateway.configure(_api(echo_server, deny=["127.0.0.0/8"]), Api(base_path="/open", targets=[echo_server.origin]))
    assert http.get(f"{gateway.url}/svc/x").status_code == 403
    assert http.get(f"{gateway.url}/open/x").status_code == 200
