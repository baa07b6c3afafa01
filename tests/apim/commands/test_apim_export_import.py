"""``apim_export`` and ``apim_import``: files, stdin, dry run, prune, env secrets, refusals without a trace."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from django.core.management import CommandError, call_command

from apim.declarative.export import config_export
from apim.models import API
from policies.models import PolicyAttachment
from tests.apim.declarative.support import JWT_SECRET, UPSTREAM_TOKEN, build_catalog, db_state
from tests.factories import TenantFactory

from .support import run

pytestmark = pytest.mark.django_db


def test_export_to_stdout_and_file(tenant, tmp_path):
    build_catalog(tenant)
    out = run("apim_export", "--tenant", tenant.slug).out
    assert out.startswith("# apim declarative config")
    assert yaml.safe_load(out) == config_export(tenant=tenant)
    assert JWT_SECRET not in out and UPSTREAM_TOKEN not in out
    target = tmp_path / "tenant.yaml"
    result = run("apim_export", "--tenant", tenant.slug, "-o", str(target))
    assert result.out == ""
    assert target.read_text() == out
    as_json = run("apim_export", "--tenant", tenant.slug, "--format", "json").out
    assert json.loads(as_json) == config_export(tenant=tenant)


def test_round_trip_with_env_secrets_dry_run_and_idempotency(tenant, tmp_path, monkeypatch):
    build_catalog(tenant)
    text = run("apim_export", "--tenant", tenant.slug).out
    text = text.replace("secret: '[redacted]'", "secret: ${JWT_SECRET}", 1)
    text = text.replace("Authorization: '[redacted]'", "Authorization: ${UPSTREAM_TOKEN}", 1)
    assert "'[redacted]'\n" not in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("UPSTREAM_TOKEN", UPSTREAM_TOKEN)
    other = TenantFactory()
    dry = run("apim_import", "--tenant", other.slug, str(path), "--dry-run").out
    assert "+ create upstream orders-up  (upstreams[0])" in dry
    assert dry.rstrip().endswith("Would 15 create, 0 update, 0 delete, 0 keep (dry run: nothing was written).")
    assert not API.objects.filter(tenant=other).exists()
    applied = run("apim_import", "--tenant", other.slug, str(path)).out
    assert applied.rstrip().endswith("Done: 15 create, 0 update, 0 delete, 0 keep.")
    assert PolicyAttachment.objects.get(tenant=other, policy="jwt").config["keys"][0]["secret"] == JWT_SECRET
    assert run("apim_export", "--tenant", other.slug).out == run("apim_export", "--tenant", tenant.slug).out
    before = db_state(other)
    assert run("apim_import", "--tenant", other.slug, str(path)).out == "No changes.\n"
    assert db_state(other) == before


def test_stdin_and_prune(tenant):
    build_catalog(tenant)
    doc = config_export(tenant=tenant)
    doc["plans"] = [p for p in doc["plans"] if p["name"] != "free"]
    kept = run("apim_import", "--tenant", tenant.slug, "-", stdin=yaml.safe_dump(doc)).out
    assert kept.splitlines() == [
        "= keep plan free  (not in the file; --prune would delete it)",
        "No changes (1 kept).",
    ]
    pruned = run("apim_import", "--tenant", tenant.slug, "-", "--prune", stdin=yaml.safe_dump(doc)).out
    assert pruned.splitlines() == ["- delete plan free", "Done: 0 create, 0 update, 1 delete, 0 keep."]


def test_every_problem_printed_and_nothing_changed(tenant, tmp_path):
    build_catalog(tenant)
    doc = config_export(tenant=tenant)
    doc["apis"][1]["routes"][0]["methods"] = ["FETCH"]
    doc["upstreams"][0]["retries"] = 99
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    before = db_state(tenant)
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"2 problems in .*bad\.yaml; nothing was changed"):
        call_command("apim_import", "--tenant", tenant.slug, str(path), stdout=io.StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert lines[0] == "upstreams[0].retries: Ensure this value is less than or equal to 10."
    assert lines[1].startswith("apis[1].routes[0].methods: ")
    assert len(lines) == 2
    assert db_state(tenant) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nope", "{file}"], "No tenant named 'nope'"),
        (["--tenant", "{tenant}", "/no/such/file.yaml"], "Cannot read /no/such/file.yaml"),
    ],
)
def test_refusals(tenant, tmp_path, args, message):
    path = tmp_path / "ok.yaml"
    path.write_text("format_version: 1\n")
    args = [a.format(file=path, tenant=tenant.slug) for a in args]
    with pytest.raises(CommandError, match=message):
        run("apim_import", *args)


def test_env_reference_to_a_missing_variable(tenant, tmp_path, monkeypatch):
    monkeypatch.delenv("APIM_NOT_SET_ANYWHERE", raising=False)
    doc = {
        "format_version": 1,
        "policies": [
            {"policy": "jwt", "config": {"algorithms": ["HS256"], "keys": [{"secret": "${APIM_NOT_SET_ANYWHERE}"}]}}
        ],
    }
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CommandError, match="1 problem in"):
        run("apim_import", "--tenant", tenant.slug, str(path))
    assert not PolicyAttachment.objects.filter(tenant=tenant).exists()
