"""The upstream page's target rows: a URL the SSRF rules refuse is an error on its own row."""

from __future__ import annotations

import pytest

from apim.models import Target
from tests.apim.admin.world import admin_url

UPSTREAM_FIELDS = {
    "load_balancing": "round_robin",
    "connect_timeout_ms": 100,
    "read_timeout_ms": 100,
    "write_timeout_ms": 100,
    "retries": 1,
    "healthcheck_path": "/health",
    "healthcheck_interval_s": 10,
    "healthcheck_timeout_ms": 100,
    "healthy_threshold": 2,
    "unhealthy_threshold": 3,
    "passive_failure_threshold": 5,
    "ejection_base_s": 30,
}


def _data(world, url: str) -> dict:
    upstream = world.upstream
    return {
        "name": upstream.name,
        **UPSTREAM_FIELDS,
        "targets-TOTAL_FORMS": "2",
        "targets-INITIAL_FORMS": "1",
        "targets-0-id": world.target.pk,
        "targets-0-upstream": upstream.pk,
        "targets-0-url": world.target.url,
        "targets-0-weight": "100",
        "targets-0-enabled": "on",
        "targets-1-upstream": upstream.pk,
        "targets-1-url": url,
        "targets-1-weight": "100",
        "targets-1-enabled": "on",
    }


@pytest.mark.parametrize("url", ["http://169.254.169.254", "http://0177.0.0.1:8080", "http://localhost."])
def test_a_forbidden_target_url_is_a_row_error(world_a, admin_a_client, settings, url):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    count = Target.objects.count()
    response = admin_a_client.post(admin_url(world_a.upstream, "change"), _data(world_a, url))
    assert response.status_code == 200
    formset = next(f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "targets").formset
    errors = formset.forms[1].errors
    assert "url" in errors and "APIM_ALLOW_PRIVATE_TARGETS" in errors["url"][0]
    assert 'class="errorlist' in response.content.decode()
    assert Target.objects.count() == count


def test_a_public_target_url_is_saved(world_a, admin_a_client, settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    response = admin_a_client.post(admin_url(world_a.upstream, "change"), _data(world_a, "http://203.0.113.5:8080"))
    assert response.status_code == 302
    assert Target.objects.filter(upstream=world_a.upstream, url="http://203.0.113.5:8080").exists()
