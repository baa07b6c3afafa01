"""Register or update an API from an OpenAPI 3.0/3.1 document.

``openapi_import`` makes the tenant's API match the document, in one
transaction (all or nothing; ``dry_run`` rolls it back and reports what would
change):

* **The API** is matched by name (``api_name``, else the slug of
  ``info.title``) among the tenant's APIs that are not retired; if several
  versions are live, the one whose version is ``info.version``. Title, version
  and description come from ``info``; the document is stored on the API (the
  request-validator reads it). New APIs are drafts: publishing stays a
  deliberate act.
* **The upstream is the operator's** (``upstream``: an id or a name in the
  tenant), never ``servers``: taking hosts from an uploaded document would let
  it aim the gateway anywhere (server-side request forgery). ``servers`` is
  ignored entirely, its paths too.
* **Routes.** The gateway routes on literal path prefixes (``gateway/router.py``:
  whole segments, longest prefix wins), so each operation becomes a route on
  its template's literal prefix (``/pets/{petId}`` → ``/pets``) for its method;
  operations sharing a prefix and method share a route named after their
  operation ids. A prefix route also admits paths the document does not
  define (``POST /pets/1``), so the document's exact templates are enforced
  per request by the request-validator in ``strict`` mode: a request matching
  no operation is answered 404 (or 405 with ``Allow``). The API's
  routes are made equal to the document's: others are deleted (the document
  is the source of truth for an imported API); a route an operator disabled
  stays disabled.
* **Validation.** One API-level ``request-validator`` with
  ``{"openapi": true, "strict": true}``: only the document's operations pass,
  with every operation's parameters and JSON request body checked, compiled once per
  gateway snapshot. The document is compiled here first, so a document the
  gateway could not use is refused now rather than answering 503 later.

Re-importing the same document changes nothing: no row, no audit event, no
config version bump.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apim.exceptions import ApplicationError, Conflict
from apim.models import API, ApiStatus, Route, Tenant, Upstream
from apim.openapi_documents import InvalidOpenApiDocument, openapi_document_load
from apim.validators import HTTP_METHODS, validate_name
from policies.base import ConfigError
from policies.models import PolicyAttachment
from policies.plugins.request_validator import openapi_compile_check
from policies.services import policy_attachment_save

from .catalog import api_save, route_delete, route_save

if TYPE_CHECKING:
    from .common import Actor

VALIDATOR_POLICY = "request-validator"
VALIDATOR_CONFIG: Mapping[str, Any] = {"openapi": True, "strict": True}
_OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_MAX_REF_HOPS = 20


@dataclass(frozen=True)
class ImportChange:
    kind: str  # api, route, policy
    action: str  # create, update, delete, unchanged
    label: str
    id: str | None


@dataclass
class OpenApiImportResult:
    api: API
    created: bool
    dry_run: bool
    operations: int
    changes: list[ImportChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)


@dataclass(frozen=True)
class PlannedRoute:
    path: str
    method: str
    name: str


def _deref(document: Mapping[str, Any], value: Any) -> Any:
    """Follow local ``$ref`` (the document was checked: every one resolves); a cycle is refused."""
    for _ in range(_MAX_REF_HOPS):
        if not (isinstance(value, dict) and isinstance(value.get("$ref"), str)):
            return value
        target: Any = document
        for segment in value["$ref"][2:].split("/") if value["$ref"] != "#" else ():
            segment = segment.replace("~1", "/").replace("~0", "~")
            target = target[int(segment)] if isinstance(target, list) else target[segment]
        value = target
    raise InvalidOpenApiDocument(
        "A path item's $ref chain is too long or circular.", [{"path": "/paths", "message": "circular $ref"}]
    )


def literal_prefix(template: str) -> str:
    """The longest prefix of an OpenAPI path template the gateway can route on literally.

    Stops at the first templated segment (``{id}``), or one our route paths
    cannot hold (empty, a dot segment, a character outside RFC 3986's
    unreserved set such as ``:``, a repeated segment): ``/pets/{petId}`` →
    ``/pets``, ``/{tenant}/items`` → ``/``.
    """
    taken: list[str] = []
    for segment in template.strip("/").split("/"):
        if not _SEGMENT_RE.match(segment) or segment in (".", "..") or segment in taken:
            break
        taken.append(segment)
    return "/" + "/".join(taken)


def openapi_routes(document: Mapping[str, Any]) -> tuple[list[PlannedRoute], list[str], int]:
    """(routes, warnings, operation count) for a validated document."""
    grouped: dict[tuple[str, str], list[str]] = {}
    warnings: list[str] = []
    operations = 0
    for template, raw_item in (document.get("paths") or {}).items():
        if not template.startswith("/"):
            continue  # an x- extension of the Paths object
        item = _deref(document, raw_item)
        if not isinstance(item, dict):
            continue
        for method in _OPERATION_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            verb = method.upper()
            if verb not in HTTP_METHODS:
                warnings.append(f"{verb} {template}: the gateway does not route {verb}; no route was made for it.")
                continue
            operations += 1
            label = operation.get("operationId") or f"{verb} {template}"
            grouped.setdefault((literal_prefix(template), verb), []).append(str(label))
    routes = []
    for (path, method), labels in sorted(grouped.items()):
        name = ", ".join(labels)
        routes.append(PlannedRoute(path=path, method=method, name=name if len(name) <= 100 else name[:97] + "..."))
    return routes, warnings, operations


def slug_from_title(title: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", title.lower())).strip("-")[:64].strip("-")


def _resolve_upstream(tenant: Tenant, upstream: str | Upstream | None) -> Upstream | None:
    if upstream is None or isinstance(upstream, Upstream):
        if isinstance(upstream, Upstream) and upstream.tenant_id != tenant.pk:
            raise ApplicationError("The upstream does not exist.", details={"upstream": ["Unknown upstream."]})
        return upstream
    candidates = Upstream.objects.filter(tenant=tenant)
    found = candidates.filter(name=upstream).first()
    if found is None:
        try:
            found = candidates.filter(pk=upstream).first()
        except (ValidationError, ValueError):
            found = None
    if found is None:
        raise ApplicationError(
            f"No upstream {upstream!r} in tenant {tenant.slug!r} (give its name or id).",
            code="validation_error",
            details={"upstream": [f"No upstream {upstream!r} in this tenant."]},
        )
    return found


def _find_api(tenant: Tenant, name: str, version: str) -> API | None:
    live = list(API.objects.filter(tenant=tenant, name=name).exclude(status=ApiStatus.RETIRED).order_by("created_at"))
    if len(live) <= 1:
        return live[0] if live else None
    for api in live:
        if api.version == version:
            return api
    versions = ", ".join(api.version for api in live)
    raise Conflict(
        f"Tenant {tenant.slug!r} has several live versions of API {name!r} ({versions}) and none is {version!r}; "
        "set info.version to the one to update, or import under another API name.",
        code="api_ambiguous",
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def openapi_import(
    *,
    tenant: Tenant,
    raw: bytes,
    api_name: str | None = None,
    upstream: str | Upstream | None = None,
    base_path: str | None = None,
    dry_run: bool = False,
    actor: Actor,
) -> OpenApiImportResult:
    """Create or update ``tenant``'s API, routes and request-validator from an OpenAPI document.

    ``raw`` is the document as uploaded (YAML or JSON bytes): parsed, bounded
    and validated here (``apim.openapi_documents``). Raises
    ``InvalidOpenApiDocument`` (400, the validator's messages in
    ``details.errors``), ``ValidationError`` for field rules (a taken base
    path, a bad name) or ``Conflict``; nothing is written then.
    """
    loaded = openapi_document_load(raw)
    try:
        openapi_compile_check(loaded)
    except ConfigError as exc:
        raise InvalidOpenApiDocument(
            f"The request-validator cannot use this document: {exc.message}", [{"path": "", "message": exc.message}]
        ) from None
    routes, warnings, operations = openapi_routes(loaded)
    if not routes:
        raise InvalidOpenApiDocument(
            "The document has no operations the gateway can route; an API without routes would serve everything.",
            [{"path": "/paths", "message": "no operations (get, post, ...) under paths"}],
        )
    info = loaded["info"]
    name = api_name or slug_from_title(_text(info.get("title")))
    try:
        validate_name(name)
    except ValidationError as exc:
        raise ApplicationError(
            f"{exc.messages[0]} Name the API explicitly.", code="validation_error", details={"api": exc.messages}
        ) from None
    with transaction.atomic():
        # Serialise imports (and every catalog write) of this tenant: two concurrent imports of one
        # new API must not both decide to create it.
        list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True))
        result = _apply(
            tenant=tenant,
            document=loaded,
            name=name,
            routes=routes,
            upstream=_resolve_upstream(tenant, upstream),
            base_path=base_path,
            actor=actor,
        )
        result.dry_run = dry_run
        result.operations = operations
        result.warnings[:0] = warnings
        if dry_run:
            transaction.set_rollback(True)
    return result


def _apply(
    *,
    tenant: Tenant,
    document: dict[str, Any],
    name: str,
    routes: list[PlannedRoute],
    upstream: Upstream | None,
    base_path: str | None,
    actor: Actor,
) -> OpenApiImportResult:
    info = document["info"]
    version = _text(info.get("version"))
    wanted = {
        "title": _text(info.get("title")),
        "version": version,
        "description": _text(info.get("description") or info.get("summary")),
        "openapi_document": document,
    }
    api = _find_api(tenant, name, version)
    created = api is None
    if api is None:
        api = API(tenant=tenant, name=name, base_path=base_path or f"/{name}", upstream=upstream, **wanted)
    else:
        if base_path is not None:
            wanted["base_path"] = base_path
        if upstream is not None:
            wanted["upstream"] = upstream
    changed = created or any(getattr(api, key) != value for key, value in wanted.items())
    result = OpenApiImportResult(api=api, created=created, dry_run=False, operations=0)
    if changed:
        for key, value in wanted.items():
            setattr(api, key, value)
        api_save(api=api, actor=actor)
    result.changes.append(
        ImportChange("api", "create" if created else ("update" if changed else "unchanged"), str(api), str(api.pk))
    )
    result.changes.extend(_sync_routes(api=api, tenant=tenant, routes=routes, actor=actor))
    result.changes.append(_sync_validator(api=api, tenant=tenant, actor=actor))
    if api.upstream_id is None:
        result.warnings.append(f"API {api} has no upstream yet: set one (upstream) before publishing it.")
    return result


def _sync_routes(*, api: API, tenant: Tenant, routes: list[PlannedRoute], actor: Actor) -> list[ImportChange]:
    changes = []
    existing: dict[tuple[str, tuple[str, ...]], list[Route]] = {}
    for route in api.routes.order_by("created_at", "pk"):
        existing.setdefault((route.path, tuple(sorted(route.methods))), []).append(route)
    for planned in routes:
        matches = existing.get((planned.path, (planned.method,)))
        label = f"{planned.method} {planned.path}"
        if matches:
            route = matches.pop(0)
            if route.name == planned.name:
                changes.append(ImportChange("route", "unchanged", label, str(route.pk)))
                continue
            route.name = planned.name
            route_save(route=route, actor=actor)
            changes.append(ImportChange("route", "update", label, str(route.pk)))
        else:
            route = Route(tenant=tenant, api=api, path=planned.path, methods=[planned.method], name=planned.name)
            route_save(route=route, actor=actor)
            changes.append(ImportChange("route", "create", label, str(route.pk)))
    for leftovers in existing.values():
        for route in leftovers:
            changes.append(ImportChange("route", "delete", str(route), str(route.pk)))
            route_delete(route=route, actor=actor)
    return changes


def _sync_validator(*, api: API, tenant: Tenant, actor: Actor) -> ImportChange:
    attachment = PolicyAttachment.objects.filter(
        tenant=tenant, api=api, consumer__isnull=True, policy=VALIDATOR_POLICY
    ).first()
    if attachment is not None and attachment.config == dict(VALIDATOR_CONFIG):
        return ImportChange("policy", "unchanged", str(attachment), str(attachment.pk))
    action = "create" if attachment is None else "update"
    if attachment is None:
        attachment = PolicyAttachment(tenant=tenant, api=api, policy=VALIDATOR_POLICY)
    attachment.config = dict(VALIDATOR_CONFIG)
    policy_attachment_save(attachment=attachment, actor=actor)
    return ImportChange("policy", action, str(attachment), str(attachment.pk))
