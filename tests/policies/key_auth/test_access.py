"""key-auth through a real gateway, a real echo upstream and keys issued into the real database."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from apim.services.common import tenant_config_bump
from consumers import keys
from consumers.models import APIKey
from consumers.services import (
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    consumer_suspend,
    subscription_cancel,
    subscription_create,
)
from tests.factories import ApplicationFactory, PlanFactory
from tests.policies.key_auth.conftest import make_world, serve

pytestmark = pytest.mark.django_db(transaction=True)


def _headers_seen(response) -> list[list[str]]:
    return response.json()["headers"]


def _values(response, name: str) -> list[str]:
    return [value for key, value in _headers_seen(response) if key.lower() == name]


def _wrong_secret(plaintext: str) -> str:
    """Same public id, a different secret, a valid checksum: passes the format check, fails the hash."""
    body = plaintext[: len(keys.KEY_PREFIX) + keys.KEY_ID_LENGTH] + "A" * keys.SECRET_LENGTH
    return body + keys._checksum(body)


def _error(response) -> dict:
    body = response.json()
    assert body["success"] is False
    return body["error"]


def test_valid_key_reaches_the_upstream_with_identity_and_without_the_key(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    response = http.get(
        f"{gateway.url}/svc/x",
        headers={"X-API-Key": world.key, "X-Consumer-ID": "forged", "X-Application-ID": "forged"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["target"] == "/x"
    assert _values(response, "x-api-key") == []
    assert _values(response, "x-consumer-id") == [str(world.consumer.pk)]
    assert _values(response, "x-consumer-username") == [world.consumer.name]
    assert _values(response, "x-application-id") == [str(world.application.pk)]
    assert _values(response, "x-credential-identifier") == [world.issued.key.prefix]
    assert world.key not in response.text


def test_missing_key_is_401_with_a_challenge(gateway, store, world, echo_server, http, deny_reasons):
    serve(gateway, store, world, echo_server.origin)
    response = http.get(f"{gateway.url}/svc/x")
    assert response.status_code == 401
    assert _error(response)["code"] == "key_missing"
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert deny_reasons == ["key_missing"]
    assert store.lookups == 0


def _break(case: str, world) -> str:
    """The key to present for one way of being invalid (changing the database as needed)."""
    if case == "malformed":
        return world.key[:-1] + ("0" if world.key[-1] != "0" else "1")
    if case == "unknown":
        return keys.generate().plaintext
    if case == "wrong_secret":
        return _wrong_secret(world.key)
    if case == "other_tenant":
        return make_world().key
    if case == "revoked":
        api_key_revoke(key=world.issued.key, actor=None)
        return world.key
    if case == "expired":
        APIKey.objects.filter(pk=world.issued.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        tenant_config_bump(tenant=world.tenant)
        return world.key
    if case == "rotated_out":
        successor = api_key_rotate(key=world.issued.key, actor=None, grace=timedelta(0))
        assert successor.plaintext != world.key
        return world.key
    if case == "suspended_consumer":
        consumer_suspend(consumer=world.consumer, actor=None)
        return world.key
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("malformed", "key_invalid"),
        ("unknown", "key_invalid"),
        ("wrong_secret", "key_invalid"),
        ("other_tenant", "key_invalid"),
        ("revoked", "key_revoked"),
        ("expired", "key_expired"),
        ("rotated_out", "key_expired"),
        ("suspended_consumer", "consumer_suspended"),
    ],
)
def test_every_invalid_key_gets_one_identical_401(case, reason, gateway, store, world, echo_server, http, deny_reasons):
    presented = _break(case, world)
    serve(gateway, store, world, echo_server.origin)
    response = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": presented})
    assert response.status_code == 401
    error = _error(response)
    assert error["code"] == "key_invalid"
    assert error["message"] == "The API key is not valid."
    assert "details" not in error or not error["details"]
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert deny_reasons == [reason]
    assert presented not in response.text


def test_invalid_answers_are_byte_identical_apart_from_the_request_id(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    bodies = set()
    for presented in (keys.generate().plaintext, _wrong_secret(world.key), "apim_short"):
        response = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": presented, "X-Request-ID": "same-id"})
        assert response.status_code == 401
        bodies.add(response.content)
    assert len(bodies) == 1


def test_malformed_key_is_refused_without_a_lookup(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    for presented in ("nope", "apim_" + "x" * 50, world.key + "x", "ключ".encode(), b"\xff\xfe", world.key.upper()):
        assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": presented}).status_code == 401
    assert store.lookups == 0


def test_key_restricted_to_another_api_is_403(gateway, store, world, echo_server, http, deny_reasons):
    subscription_create(application=world.application, api=world.other_api, plan=world.plan, actor=None)
    restricted = api_key_issue(application=world.application, actor=None, allowed_apis=[world.other_api])
    serve(gateway, store, world, echo_server.origin)
    denied = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": restricted.plaintext})
    assert denied.status_code == 403
    assert _error(denied)["code"] == "key_not_allowed"
    assert deny_reasons == ["key_not_allowed"]
    assert http.get(f"{gateway.url}/other/x", headers={"X-API-Key": restricted.plaintext}).status_code == 200
    # The unrestricted key works on both.
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200
    assert http.get(f"{gateway.url}/other/x", headers={"X-API-Key": world.key}).status_code == 200


def test_no_subscription_is_403(gateway, store, world, echo_server, http, deny_reasons):
    serve(gateway, store, world, echo_server.origin)
    response = http.get(f"{gateway.url}/other/x", headers={"X-API-Key": world.key})
    assert response.status_code == 403
    assert _error(response)["code"] == "not_subscribed"
    assert deny_reasons == ["not_subscribed"]


def test_pending_and_cancelled_subscriptions_grant_nothing(gateway, store, world, echo_server, http):
    approval = PlanFactory(tenant=world.tenant, requires_approval=True)
    pending = subscription_create(application=world.application, api=world.other_api, plan=approval, actor=None)
    assert pending.status == "pending"
    subscription_cancel(subscription=world.subscription, actor=None)
    serve(gateway, store, world, echo_server.origin)
    for path in ("/svc/x", "/other/x"):
        response = http.get(f"{gateway.url}{path}", headers={"X-API-Key": world.key})
        assert response.status_code == 403
        assert _error(response)["code"] == "not_subscribed"


def test_without_require_subscription_any_valid_key_of_the_tenant_passes(gateway, store, world, echo_server, http):
    unsubscribed = api_key_issue(application=ApplicationFactory(consumer=world.consumer), actor=None)
    serve(gateway, store, world, echo_server.origin, require_subscription=False)
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": unsubscribed.plaintext}).status_code == 200


def test_key_in_query_parameter_is_hidden_and_other_parameters_are_byte_identical(
    gateway, store, world, echo_server, http
):
    serve(gateway, store, world, echo_server.origin, query_param="apikey")
    query = "a=1&b=%2F%20x&&c=&d=%41+z&apikey2=keep"
    reference = http.get(f"{gateway.url}/open/x?{query}").json()["target"]
    response = http.get(f"{gateway.url}/svc/x?a=1&b=%2F%20x&&c=&apikey={world.key}&d=%41+z&apikey2=keep")
    assert response.status_code == 200, response.text
    assert response.json()["target"] == reference
    assert world.key not in response.text
    # An encoded parameter name is the same parameter.
    response = http.get(f"{gateway.url}/svc/x?%61pikey={world.key}")
    assert response.status_code == 200
    assert response.json()["target"] == "/x"


def test_header_wins_over_query_and_both_are_hidden(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin, query_param="apikey")
    response = http.get(f"{gateway.url}/svc/x?apikey=garbage&q=1", headers={"X-API-Key": world.key})
    assert response.status_code == 200
    assert response.json()["target"] == "/x?q=1"
    assert _values(response, "x-api-key") == []


def test_query_parameter_is_ignored_unless_configured(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    response = http.get(f"{gateway.url}/svc/x?apikey={world.key}")
    assert response.status_code == 401
    assert _error(response)["code"] == "key_missing"


def test_custom_headers_and_visible_credentials(gateway, store, world, echo_server, http):
    serve(
        gateway,
        store,
        world,
        echo_server.origin,
        headers=["Authorization-Key", "X-Key"],
        hide_credentials=False,
        forward_identity=False,
    )
    response = http.get(f"{gateway.url}/svc/x", headers={"x-key": world.key, "X-Consumer-ID": "forged"})
    assert response.status_code == 200
    assert _values(response, "x-key") == [world.key]
    assert _values(response, "x-consumer-id") == []
    missing = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'ApiKey header="Authorization-Key"'


def test_repeated_bad_keys_from_one_client_are_slowed_down(gateway, store, world, echo_server, http, deny_reasons):
    serve(gateway, store, world, echo_server.origin, failure_limit=3, failure_window_seconds=600)
    for _ in range(3):
        assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": _wrong_secret(world.key)}).status_code == 401
    lookups = store.lookups
    throttled = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": keys.generate().plaintext})
    assert throttled.status_code == 429
    assert _error(throttled)["code"] == "too_many_auth_failures"
    assert 1 <= int(throttled.headers["retry-after"]) <= 600
    assert deny_reasons[-1] == "auth_throttled"
    # While braked, even the right key waits (a guesser must not learn when it guessed right).
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 429
    assert store.lookups == lookups
    # Other clients (here: the same address at another tenant) are not affected; the brake lifts after the window.
    store.throttle.reset()
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200


def test_throttle_can_be_switched_off(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin, failure_limit=0)
    for _ in range(15):
        assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": "bad"}).status_code == 401
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200


def test_lookups_are_cached_hits_and_misses(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    for _ in range(3):
        assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200
    assert store.lookups == 1
    unknown = keys.generate().plaintext
    for _ in range(3):
        assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": unknown}).status_code == 401
    assert store.lookups == 2


def test_a_new_snapshot_version_makes_the_cache_re_read(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200
    api_key_revoke(key=world.issued.key, actor=None)
    # The old snapshot still serves the cached entry (the gateway has not reloaded yet)…
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200
    serve(gateway, store, world, echo_server.origin)  # …the reload with the bumped version re-reads it.
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 401
    assert store.lookups == 2


def test_database_down_cached_keys_work_and_misses_fail_closed(gateway, store, world, echo_server, http, deny_reasons):
    serve(gateway, store, world, echo_server.origin)
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200

    def unreachable(key_id: str):
        raise ConnectionError("could not connect to server")

    store._lookup = unreachable
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200
    response = http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": keys.generate().plaintext})
    assert response.status_code == 503
    assert _error(response)["code"] == "auth_unavailable"
    assert deny_reasons[-1] == "auth_unavailable"


def test_post_body_is_forwarded_after_authentication(gateway, store, world, echo_server, http):
    serve(gateway, store, world, echo_server.origin)
    response = http.post(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}, content=b"payload")
    assert response.status_code == 200
    assert base64.b64decode(response.json()["body_b64"]) == b"payload"


def test_last_use_is_recorded_in_batches_for_accepted_keys_only(gateway, store, world, echo_server, http):
    other = api_key_issue(application=world.application, actor=None)
    serve(gateway, store, world, echo_server.origin)
    for _ in range(3):
        assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": world.key}).status_code == 200
    assert http.get(f"{gateway.url}/svc/x", headers={"X-API-Key": _wrong_secret(other.plaintext)}).status_code == 401
    assert APIKey.objects.get(pk=world.issued.key.pk).last_used_at is None  # nothing written per request
    assert asyncio.run(store.flush_usage()) == 1
    assert APIKey.objects.get(pk=world.issued.key.pk).last_used_at is not None
    assert APIKey.objects.get(pk=other.key.pk).last_used_at is None
    assert asyncio.run(store.flush_usage()) == 0


def test_lookup_reads_the_tenant_version_in_the_same_statement_as_the_key(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from gateway.loader import api_key_lookup

    with CaptureQueriesContext(connection) as queries:
        found = api_key_lookup(world.issued.key.key_id)
    assert found is not None
    assert found.version == type(world.tenant).objects.get(pk=world.tenant.pk).config_version
    assert found.subscriptions == {str(world.api.pk): (str(world.subscription.pk), str(world.plan.pk))}
    first = queries.captured_queries[0]["sql"]
    assert "config_version" in first
    assert "am_api_keys" in first
    assert len(queries) == 3  # key+consumer+tenant, allowed APIs, active subscriptions
    assert api_key_lookup(keys.generate().key_id) is None
