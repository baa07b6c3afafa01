"""The OpenAPI schema generates with zero warnings and validates; the docs pages use local assets."""

from __future__ import annotations

import io

from django.core.management import call_command
from rest_framework.test import APIClient


def test_schema_has_no_warnings_and_validates(db):
    out = io.StringIO()
    # --fail-on-warn turns any drf-spectacular warning or error into a failure.
    call_command("spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", stdout=out)
    assert '"/api/v1/keys/"' in out.getvalue()


def test_schema_and_docs_are_served_without_cdn(db):
    client = APIClient()
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "accessToken" in schema.content.decode()
    for page in ("/api/docs/", "/api/redoc/"):
        html = client.get(page).content.decode()
        assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
        assert "/static/drf_spectacular_sidecar/" in html
