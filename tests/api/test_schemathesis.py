"""schemathesis against /api/schema/: every operation, as a tenant owner, with real objects.

The schema is loaded from the Django app in process (WSGI), so every endpoint
the URL conf has today is tested, including ones added later: nothing here
lists operations. For each operation Hypothesis generates schema-valid
requests (and fewer schema-invalid ones), sends them with the owner's token of
a tenant that has one object of every resource, and checks:

* no 5xx (``not_a_server_error``);
* the status is one the schema documents for the operation
  (``status_code_conformance``);
* the content type and the body conform to the documented response
  (``content_type_conformance``, ``response_schema_conformance``).

Path ids are the world's real objects where the path names a known resource
(so PATCH and actions reach real validation), plus a few generated ones (so a
404 must be documented too). Each case runs in a savepoint that is rolled
back, so every case meets the same world; the owner's own token is never the
one revoked. The run
is deterministic (``derandomize``) and bounded (``MAX_EXAMPLES`` per operation
and mode), a few tens of seconds here; every failure of every operation is
collected and reported together.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apim.models import PersonalAccessToken
from apim.services.tokens import token_issue

MAX_EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 4}
GENERATED_IDS = 2  # examples per operation with schemathesis-generated path ids
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The world's object a resource's ``{id}`` means: the first path segment after /api/v1/ -> world.objects key.
RESOURCE_OBJECTS = {
    "apis": "api",
    "applications": "application",
    "audit-events": "auditevent",
    "consumers": "consumer",
    "keys": "apikey",
    "members": "member",
    "plans": "plan",
    "policies": "policy",
    "routes": "route",
    "subscriptions": "subscription",
    "targets": "target",
    "tenants": "tenant",
    "upstreams": "upstream",
}


@pytest.fixture
def api_schema(world_a, settings):
    """The schema, loaded through the WSGI app that every case then calls.

    Like Django's test client, requests must not close the database connection
    at their end (``close_old_connections``): the whole run is one test
    transaction, which closing would end (PostgreSQL; in-memory SQLite is
    never closed).
    """
    settings.APIM_API_THROTTLE_RATES = {"user": "1000000/min", "anon": "1000000/min"}
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _path_parameters(operation: Any, world: Any, spare_token: PersonalAccessToken) -> dict[str, str]:
    if "{id}" not in operation.path:
        return {}
    resource = operation.path.removeprefix("/api/v1/").split("/", 1)[0]
    if resource == "tokens":
        return {"id": str(spare_token.pk)}  # never the token the run authenticates with
    key = RESOURCE_OBJECTS.get(resource)
    obj = world.objects.get(key) if key else None
    return {"id": str(obj.pk)} if obj is not None else {}


def _run_operation(
    operation: Any, *, mode: GenerationMode, headers: dict, query: dict, path: dict, examples: int | None = None
) -> list[str]:
    failures: list[str] = []
    label = mode.value if path or "{id}" not in operation.path else f"{mode.value}, generated ids"
    query_fixed = query if any(p.name == "tenant" for p in operation.query) else None
    strategy = operation.as_strategy(
        generation_mode=mode, headers=headers, query=query_fixed, path_parameters=path or None
    )

    @settings(
        max_examples=examples or MAX_EXAMPLES[mode],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        # Each case in a savepoint rolled back afterwards: every case meets the same world, and a
        # database error in one (a 500, reported) cannot abort the transaction for all that follow.
        savepoint = transaction.savepoint()
        try:
            case.call_and_validate(checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected and reported with the case
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            reproduce = [line for line in lines if line.startswith("curl ")][:1]
            failures.append(f"{operation.label} [{label}]: {' | '.join(lines[:8] + reproduce)}")
        finally:
            transaction.savepoint_rollback(savepoint)

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation whose every input is fixed here (ids, tenant, auth): nothing to negate.
        assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no positive case could be generated"
    return failures


@pytest.mark.django_db
def test_every_operation_conforms_to_the_schema(api_schema, world_a):
    owner = world_a.users["owner"]
    spare = token_issue(user=owner, name="spare", actor=None).token
    headers = {"Authorization": f"Bearer {world_a.tokens['owner']}", "X-Apim-Tenant": world_a.tenant.slug}
    query = {"tenant": world_a.tenant.slug}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 50  # the whole API, not an empty or partial schema
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # deletes last
    failures: list[str] = []
    for operation in operations:
        path = _path_parameters(operation, world_a, spare)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _run_operation(operation, mode=mode, headers=headers, query=query, path=path)
        if path:  # ids nobody has (or another tenant's): the 404 must be documented too
            failures += _run_operation(
                operation, mode=GenerationMode.POSITIVE, headers=headers, query=query, path={}, examples=GENERATED_IDS
            )
    assert not failures, f"{len(failures)} schemathesis failure(s):\n" + "\n".join(sorted(set(failures)))
