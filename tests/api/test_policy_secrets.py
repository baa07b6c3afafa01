"""Secrets in policy configs (jwt's HS256 ``secret``, ``writeOnly`` in its schema) are written, never read back.

Through the REST API (every role), the admin form and the audit log they read
as ``[redacted]``; sending the placeholder back keeps the stored secret, and a
placeholder with no secret behind it is refused with the field's path.
"""

from __future__ import annotations

import pytest
from django.test import Client

from apim.models import AuditEvent
from policies.models import PolicyAttachment
from policies.secrets import REDACTED, RedactedWithoutSecret, redact, restore
from tests.factories import UserFactory, membership

SECRET = "s" * 40
OTHER = "t" * 40


def jwt_config(*secrets: str) -> dict:
    return {
        "algorithms": ["HS256"],
        "keys": [{"kid": f"k{i}", "secret": s} for i, s in enumerate(secrets)],
        "consumer_claim": "sub",
    }


def test_redact_replaces_only_write_only_values():
    shown = redact("jwt", jwt_config(SECRET, OTHER))
    assert shown["keys"] == [{"kid": "k0", "secret": REDACTED}, {"kid": "k1", "secret": REDACTED}]
    assert shown["algorithms"] == ["HS256"]
    assert redact("ip-restriction", {"allow": ["10.0.0.0/8"]}) == {"allow": ["10.0.0.0/8"]}


def test_restore_keeps_stored_secrets_by_position_and_takes_new_ones():
    stored = jwt_config(SECRET, OTHER)
    edited = redact("jwt", stored)
    edited["keys"][1]["secret"] = "n" * 40  # a new secret for the second key
    edited["keys"].append({"kid": "k2", "secret": "m" * 40})
    assert [k["secret"] for k in restore("jwt", edited, stored)["keys"]] == [SECRET, "n" * 40, "m" * 40]
    with pytest.raises(RedactedWithoutSecret, match=r"config\.keys\[0\]\.secret"):
        restore("jwt", redact("jwt", jwt_config(SECRET)), None)


@pytest.mark.parametrize("role", ["viewer", "developer", "admin", "owner"])
def test_rest_never_returns_a_secret(world_a, role):
    api = world_a.objects["api"]
    PolicyAttachment.objects.create(tenant=world_a.tenant, api=api, policy="jwt", config=jwt_config(SECRET))
    response = world_a.client(role).get("/api/v1/policies/?policy=jwt")
    if role == "developer":  # developers do not read policies at all
        assert response.status_code == 403
        return
    assert response.status_code == 200
    assert SECRET not in response.content.decode()
    [item] = response.json()["results"]
    assert item["config"]["keys"][0] == {"kid": "k0", "secret": REDACTED}


def test_rest_update_with_the_placeholder_keeps_the_secret(world_a):
    client = world_a.client("admin")
    created = client.post(
        "/api/v1/policies/",
        {"policy": "jwt", "api": str(world_a.objects["api"].pk), "config": jwt_config(SECRET)},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert SECRET not in str(body)
    config = body["config"]
    config["leeway_seconds"] = 5
    updated = client.patch(f"/api/v1/policies/{body['id']}/", {"config": config}, format="json")
    assert updated.status_code == 200, updated.json()
    stored = PolicyAttachment.objects.get(pk=body["id"])
    assert stored.config["keys"][0]["secret"] == SECRET and stored.config["leeway_seconds"] == 5

    bad = client.post(
        "/api/v1/policies/",
        {"policy": "jwt", "consumer": None, "config": config},
        format="json",
    )
    assert bad.status_code == 400
    assert "config.keys[0].secret" in str(bad.json()["error"]["details"])
    events = AuditEvent.objects.filter(tenant=world_a.tenant, action__startswith="policyattachment.")
    assert events.exists() and all(SECRET not in str(e.before) + str(e.after) for e in events)


@pytest.mark.django_db
def test_admin_form_shows_the_placeholder_and_saving_keeps_the_secret(tenant):
    user = UserFactory(is_staff=True)
    membership(user=user, tenant=tenant, role="admin")
    attachment = PolicyAttachment.objects.create(tenant=tenant, policy="jwt", config=jwt_config(SECRET))
    client = Client()
    client.force_login(user)
    url = f"/admin/policies/policyattachment/{attachment.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert SECRET not in page.content.decode() and REDACTED in page.content.decode()

    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["config"] = form["config"].value()
    data["enabled"] = "on"
    data["priority"] = "7"
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    attachment.refresh_from_db()
    assert attachment.priority == 7 and attachment.config["keys"][0]["secret"] == SECRET


def test_credential_named_values_are_secrets_too_but_renames_are_not(world_a):
    """A request-transformer's upstream Authorization header is a credential its schema cannot mark."""
    token = "Bearer upstream-" + "u" * 30
    config = {
        "add": {"headers": {"Authorization": token, "X-Team": "orders"}},
        "rename": {"headers": {"Authorization": "X-Original-Authorization"}},
    }
    client = world_a.client("admin")
    created = client.post(
        "/api/v1/policies/",
        {"policy": "request-transformer", "api": str(world_a.objects["api"].pk), "config": config},
        format="json",
    )
    assert created.status_code == 201, created.json()
    shown = world_a.client("viewer").get(f"/api/v1/policies/{created.json()['id']}/").json()["config"]
    assert shown["add"]["headers"] == {"Authorization": REDACTED, "X-Team": "orders"}
    assert shown["rename"]["headers"] == {"Authorization": "X-Original-Authorization"}  # a name, not a value
    shown["add"]["headers"]["X-Team"] = "billing"
    updated = client.patch(f"/api/v1/policies/{created.json()['id']}/", {"config": shown}, format="json")
    assert updated.status_code == 200, updated.json()
    stored = PolicyAttachment.objects.get(pk=created.json()["id"]).config
    assert stored["add"]["headers"] == {"Authorization": token, "X-Team": "billing"}
