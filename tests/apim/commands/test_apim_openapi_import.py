"""``apim_openapi_import``: a local file or stdin in; the service's changes out; refusals as one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError

from apim.models import API, Route
from tests.factories import UpstreamFactory

from .support import run, unchanged

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openapi"
PETSTORE = FIXTURES / "petstore.yaml"


def test_imports_then_reports_no_changes(tenant):
    upstream = UpstreamFactory(tenant=tenant, name="pets-backend")
    result = run("apim_openapi_import", "--tenant", tenant.slug, str(PETSTORE), "--upstream", "pets-backend")
    assert result.out.splitlines() == [
        "create api swagger-petstore 1.0.0",
        "create route GET /pets",
        "create route POST /pets",
        "create policy request-validator (api)",
        "Imported API swagger-petstore 1.0.0 (3 operations): 4 changes.",
    ]
    api = API.objects.get(tenant=tenant, name="swagger-petstore")
    assert api.upstream == upstream and Route.objects.filter(api=api).count() == 2
    with unchanged():
        again = run("apim_openapi_import", "--tenant", tenant.slug, str(PETSTORE))
    assert again.out.splitlines() == ["Imported API swagger-petstore 1.0.0 (3 operations): no changes."]


def test_dry_run_reports_and_writes_nothing(tenant):
    with unchanged():
        result = run("apim_openapi_import", "--tenant", tenant.slug, str(PETSTORE), "--dry-run", "--api", "pets")
    assert result.out.splitlines()[0] == "would create api pets 1.0.0"
    assert result.out.splitlines()[-1] == "Would import API pets 1.0.0 (3 operations): 4 changes."
    assert "has no upstream yet" in result.err


def test_reads_stdin(tenant, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(PETSTORE.read_bytes())))
    result = run("apim_openapi_import", "--tenant", tenant.slug, "-", "--base-path", "/pets")
    assert "Imported API swagger-petstore 1.0.0" in result.out
    assert API.objects.get(tenant=tenant).base_path == "/pets"


def test_invalid_document_lists_every_error(tenant, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(PETSTORE.read_bytes().replace(b'"#/components/schemas/Pets"', b'"./pets.yaml"'))
    with unchanged(), pytest.raises(CommandError) as caught:
        run("apim_openapi_import", "--tenant", tenant.slug, str(bad))
    assert str(caught.value).splitlines() == [
        "The document has 1 external $ref; references to files or URLs are never fetched.",
        "  /paths/~1pets/get/responses/200/content/application~1json/schema/$ref: external reference "
        "'./pets.yaml': only references inside the document (#/...) are allowed",
    ]


def test_too_large_file(tenant, tmp_path, settings):
    settings.APIM_OPENAPI_MAX_BYTES = 100
    with unchanged(), pytest.raises(CommandError, match="over the limit of 100 bytes"):
        run("apim_openapi_import", "--tenant", tenant.slug, str(PETSTORE))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nope", str(PETSTORE)], "No tenant named 'nope'"),
        (["--tenant", "{tenant}", "/nonexistent/file.yaml"], "Cannot read /nonexistent/file.yaml"),
        (["--tenant", "{tenant}", str(PETSTORE), "--upstream", "missing"], "No upstream 'missing'"),
        (["--tenant", "{tenant}", str(PETSTORE), "--base-path", "pets"], "base_path: Base path must start with '/'"),
        (["--tenant", "{tenant}", str(PETSTORE), "--api", "Bad Name"], "is not a valid name"),
    ],
)
def test_refusals(tenant, args, message):
    args = [a.replace("{tenant}", tenant.slug) for a in args]
    with unchanged(), pytest.raises(CommandError, match=message):
        run("apim_openapi_import", *args)
