"""POST/PATCH /api/v1/targets/: the SSRF rules surface as a 400 envelope with the field in ``details``."""

from __future__ import annotations

import pytest

from apim.models import Target


@pytest.fixture
def strict(settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    return settings


@pytest.mark.parametrize("url", ["http://169.254.169.254", "http://2130706433:8080", "http://[::ffff:127.0.0.1]"])
def test_create_refuses_a_forbidden_address_with_field_details(world_a, strict, url):
    upstream = world_a.objects["upstream"]
    count = Target.objects.count()
    response = world_a.client("admin").post(
        "/api/v1/targets/", {"upstream": str(upstream.pk), "url": url}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "validation_error"
    assert list(body["error"]["details"]) == ["url"]
    assert "APIM_ALLOW_PRIVATE_TARGETS" in body["error"]["details"]["url"][0]
    assert Target.objects.count() == count


def test_update_refuses_a_forbidden_address(world_a, strict):
    target = world_a.objects["target"]
    before = Target.objects.get(pk=target.pk).url
    response = world_a.client("admin").patch(
        f"/api/v1/targets/{target.pk}/", {"url": "http://localhost:9999"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "url" in response.json()["error"]["details"]
    assert Target.objects.get(pk=target.pk).url == before


def test_a_public_address_is_accepted(world_a, strict):
    upstream = world_a.objects["upstream"]
    response = world_a.client("admin").post(
        "/api/v1/targets/", {"upstream": str(upstream.pk), "url": "http://203.0.113.20:8080"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["url"] == "http://203.0.113.20:8080"


def test_loopback_is_accepted_when_private_targets_are_allowed(world_a, settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = True
    upstream = world_a.objects["upstream"]
    response = world_a.client("admin").post(
        "/api/v1/targets/", {"upstream": str(upstream.pk), "url": "http://127.0.0.1:18999"}, format="json"
    )
    assert response.status_code == 201, response.content
