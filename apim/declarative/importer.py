"""Import: compare a document with the tenant's catalog, then apply the difference in one transaction.

Order of work, so a refusal never leaves half a change behind:

1. ``parse`` checks the document's shape (every problem, with its path).
2. The planner matches each item to the stored object by natural key *inside
   the tenant only* (a name in the file never reaches another tenant's row),
   computes the field-by-field difference, and runs the models' own
   ``full_clean`` on every object that would change, collecting every problem
   with its path (``apis[2].routes[0].methods: …``). Any problem: nothing is
   written.
3. The steps run through the services (validation, one audit event each, a
   config bump and a "config changed" event after commit) inside one
   ``transaction.atomic``; a refusal that only the database can see (a base
   path two new APIs share) raises with the item's path and rolls everything
   back.

Objects whose fields already match are not touched: importing the same file
twice writes nothing, records no audit event and publishes no config event.
Objects the file does not name are kept (and reported) unless ``prune``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction

from apim.exceptions import ApplicationError
from apim.models import API, ApiStatus, Route, Target, Tenant, Upstream
from apim.services import catalog
from consumers import services as consumer_services
from consumers.models import Plan
from policies import services as policy_services
from policies.models import PolicyAttachment

from .document import (
    API_KIND,
    MAX_PROBLEMS,
    PLAN,
    POLICY,
    ROUTE,
    TARGET,
    UPSTREAM,
    DocumentInvalid,
    Item,
    Kind,
    Problems,
    describe,
    parse,
)
from .secrets import redact, resolve

if TYPE_CHECKING:
    from apim.services.common import Actor

LIFECYCLE = (ApiStatus.DRAFT, ApiStatus.PUBLISHED, ApiStatus.DEPRECATED, ApiStatus.RETIRED)
OPS = ("create", "update", "delete", "keep")
_TEXT_VALUE_LIMIT = 200

# Apply order. Pruned APIs go first (freeing their base paths), upstreams,
# targets and plans are deleted last (nothing may still point at them), and
# lifecycle moves come after every target exists (publishing needs one).
PHASE_DELETE_APIS = 0
PHASE_UPSTREAMS = 1
PHASE_TARGETS = 2
PHASE_PLANS = 3
PHASE_TENANT_POLICIES = 4
PHASE_APIS = 5
PHASE_ROUTES = 6
PHASE_API_POLICIES = 7
PHASE_LIFECYCLE = 8
PHASE_DELETE_REST = 9


@dataclass
class Change:
    """One line of the diff. ``fields`` maps a field to ``(old, new)``; secrets are redacted."""

    op: str
    kind: str
    name: str
    path: str = ""
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "kind": self.kind,
            "name": self.name,
            "path": self.path,
            "fields": {name: {"old": old, "new": new} for name, (old, new) in self.fields.items()},
        }


@dataclass
class ImportResult:
    changes: list[Change]
    dry_run: bool
    prune: bool

    @property
    def counts(self) -> dict[str, int]:
        return {op: sum(1 for change in self.changes if change.op == op) for op in OPS}

    @property
    def changed(self) -> bool:
        return any(change.op != "keep" for change in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "prune": self.prune,
            "changed": self.changed,
            "summary": self.counts,
            "changes": [change.as_dict() for change in self.changes],
            "text": self.text(),
        }

    def text(self) -> str:
        """The readable diff: ``+ create``, ``~ update`` (``field: old → new``), ``- delete``, ``= keep``."""
        lines = []
        for change in self.changes:
            where = f"  ({change.path})" if change.path else ""
            if change.op == "keep":
                lines.append(f"= keep {change.name}  (not in the file; --prune would delete it)")
                continue
            sign = {"create": "+", "update": "~", "delete": "-"}[change.op]
            lines.append(f"{sign} {change.op} {change.name}{where}")
            for name, (old, new) in change.fields.items():
                lines.append(f"    {name}: {_shown(old)} → {_shown(new)}")
        counts = self.counts
        if not self.changed:
            lines.append("No changes." if not counts["keep"] else f"No changes ({counts['keep']} kept).")
        else:
            verb = "Would" if self.dry_run else "Done:"
            summary = ", ".join(f"{counts[op]} {op}" for op in OPS)
            lines.append(f"{verb} {summary}" + (" (dry run: nothing was written)." if self.dry_run else "."))
        return "\n".join(lines)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= _TEXT_VALUE_LIMIT else text[: _TEXT_VALUE_LIMIT - 1] + "…"


def _problems(exc: ValidationError, path: str) -> Problems:
    if not hasattr(exc, "error_dict"):
        return [(path, message) for message in exc.messages]
    out = []
    for name, messages in exc.message_dict.items():
        where = path if name in (NON_FIELD_ERRORS, "__all__") else f"{path}.{name}"
        out.extend((where, message) for message in messages)
    return out


@dataclass
class _Step:
    phase: int
    path: str
    run: Callable[[], Any]


class _Planner:
    """Everything the document asks for, against what the tenant holds (read once, tenant-scoped)."""

    def __init__(self, *, tenant: Tenant, actor: Actor, prune: bool, env: Mapping[str, str] | None) -> None:
        self.tenant = tenant
        self.actor = actor
        self.prune = prune
        self.env = env
        self.problems: Problems = []
        self.changes: list[Change] = []
        self.steps: list[_Step] = []
        self.upstreams = {u.name: u for u in Upstream.objects.filter(tenant=tenant)}
        self.targets = _group(Target.objects.filter(tenant=tenant).order_by("created_at", "pk"), "upstream_id")
        self.apis = {(a.name, a.version): a for a in API.objects.filter(tenant=tenant).select_related("upstream")}
        self.routes = _group(Route.objects.filter(tenant=tenant).order_by("created_at", "pk"), "api_id")
        attachments = PolicyAttachment.objects.filter(tenant=tenant, consumer__isnull=True).order_by("created_at")
        self.api_policies = _group([p for p in attachments if p.api_id is not None], "api_id")
        self.tenant_policies = [p for p in attachments if p.api_id is None]
        self.plans = {p.name: p for p in Plan.objects.filter(tenant=tenant)}
        # What the file's upstreams become: name → instance (saved or to be saved) and "has an enabled target".
        self.upstream_for: dict[str, Upstream] = {}
        self.enabled_target: dict[str, bool] = {}

    def step(self, phase: int, path: str, run: Callable[[], Any]) -> None:
        self.steps.append(_Step(phase, path, run))

    def check(self, obj: models.Model, path: str, exclude: tuple[str, ...] = ()) -> None:
        try:
            obj.full_clean(exclude=list(exclude))
        except ValidationError as exc:
            self.problems.extend(_problems(exc, path))

    def diff(self, kind: Kind, item: Item, obj: models.Model) -> dict[str, tuple[Any, Any]]:
        return {
            name: (getattr(obj, name), item.values[name])
            for name in kind.fields
            if getattr(obj, name) != item.values[name]
        }

    def change(self, op: str, kind: Kind, name: str, path: str = "", fields: dict | None = None) -> None:
        self.changes.append(Change(op=op, kind=kind.label, name=name, path=path, fields=fields or {}))

    def upsert(
        self,
        *,
        kind: Kind,
        item: Item,
        existing: models.Model | None,
        build: Callable[[], models.Model],
        save: Callable[[models.Model], Any],
        phase: int,
        name: str,
        exclude: tuple[str, ...] = (),
        also: dict[str, tuple[Any, Any]] | None = None,
        assign: Callable[[models.Model], None] | None = None,
    ) -> models.Model:
        """Plan a create (``existing`` None) or an update of the changed fields (nothing if none)."""
        if existing is None:
            obj = build()
            self.check(obj, item.path, exclude)
            self.change("create", kind, name, item.path)
            self.step(phase, item.path, lambda: save(obj))
            return obj
        fields = self.diff(kind, item, existing)
        fields.update(also or {})
        if not fields:
            return existing
        for attr in fields:
            if attr in kind.fields:
                setattr(existing, attr, item.values[attr])
        if assign is not None:
            assign(existing)
        self.check(existing, item.path, exclude)
        shown = {k: v for k, v in fields.items() if k != "status"}
        if kind is POLICY and "config" in shown:
            policy = item.values["policy"]
            old, new = redact(policy, shown["config"][0]), redact(policy, shown["config"][1])
            shown["config"] = (old, new if new != old else "<a secret changed>")
        self.change(
            "update", kind, name, item.path, shown | ({"status": fields["status"]} if "status" in fields else {})
        )
        if set(fields) - {"status"}:
            self.step(phase, item.path, lambda: save(existing))
        return existing

    def leftovers(
        self, kind: Kind, objs: list[models.Model], phase: int, delete: Callable[[Any], Any], of: str = ""
    ) -> None:
        for obj in objs:
            name = describe(kind, _stored_key(kind, obj)) + of
            if self.prune:
                self.change("delete", kind, name)
                self.step(phase, "", lambda obj=obj: delete(obj))
            else:
                self.change("keep", kind, name)

    def plan_upstreams(self, items: list[Item]) -> None:
        for item in items:
            name = item.key[0]
            existing = self.upstreams.get(name)
            upstream = self.upstream_for[name] = self.upsert(
                kind=UPSTREAM,
                item=item,
                existing=existing,
                build=lambda item=item: Upstream(tenant=self.tenant, **item.values),
                save=lambda obj: catalog.upstream_save(upstream=obj, actor=self.actor),
                phase=PHASE_UPSTREAMS,
                name=item.label,
            )
            stored = {t.url: t for t in reversed(self.targets.get(existing.pk, []))} if existing else {}
            named = set()
            enabled = False
            for target_item in item.children["targets"]:
                url = target_item.key[0]
                named.add(url)
                enabled = enabled or bool(target_item.values["enabled"])
                self.upsert(
                    kind=TARGET,
                    item=target_item,
                    existing=stored.get(url),
                    build=lambda t=target_item, u=upstream: Target(tenant=self.tenant, upstream=u, **t.values),
                    save=lambda obj: catalog.target_save(target=obj, actor=self.actor),
                    phase=PHASE_TARGETS,
                    name=f"{target_item.label} of {item.label}",
                    exclude=("upstream",),
                )
            left = [t for t in (self.targets.get(existing.pk, []) if existing else []) if t.url not in named]
            if not self.prune:
                enabled = enabled or any(t.enabled for t in left)
            self.enabled_target[name] = enabled
            self.leftovers(
                TARGET,
                left,
                PHASE_DELETE_REST,
                lambda t: catalog.target_delete(target=t, actor=self.actor),
                f" of {item.label}",
            )
        left = []
        for name, upstream in sorted(self.upstreams.items()):
            if name not in self.upstream_for:
                self.enabled_target[name] = any(t.enabled for t in self.targets.get(upstream.pk, []))
                left.append(upstream)
        self.leftovers(
            UPSTREAM, left, PHASE_DELETE_REST, lambda u: catalog.upstream_delete(upstream=u, actor=self.actor)
        )

    def resolve_upstream(self, item: Item) -> Upstream | None:
        if item.upstream is None:
            return None
        if item.upstream in self.upstream_for:
            return self.upstream_for[item.upstream]
        stored = self.upstreams.get(item.upstream)
        if stored is not None and not self.prune:
            return stored
        why = "; --prune would delete it" if stored is not None else ""
        self.problems.append(
            (f"{item.path}.upstream", f"no upstream named {item.upstream!r} in the file or the tenant{why}")
        )
        return None

    def plan_apis(self, items: list[Item]) -> None:
        named = set()
        for item in items:
            named.add(item.key)
            existing = self.apis.get(item.key)
            upstream = self.resolve_upstream(item)
            moves = self.lifecycle(item, existing, upstream)
            also = {}
            if existing is not None:
                old_upstream = existing.upstream.name if existing.upstream_id else None
                if existing.upstream_id != (upstream.pk if upstream else None):
                    also["upstream"] = (old_upstream, item.upstream)
                if moves:
                    also["status"] = (existing.status, item.status)

            def assign(obj: API, upstream: Upstream | None = upstream) -> None:
                obj.upstream = upstream

            api = self.upsert(
                kind=API_KIND,
                item=item,
                existing=existing,
                build=lambda item=item, upstream=upstream: API(tenant=self.tenant, upstream=upstream, **item.values),
                save=lambda obj: catalog.api_save(api=obj, actor=self.actor),
                phase=PHASE_APIS,
                name=item.label,
                exclude=("upstream",),
                also=also,
                assign=assign,
            )
            for to in moves:
                self.step(
                    PHASE_LIFECYCLE,
                    f"{item.path}.status",
                    lambda api=api, to=to: catalog.api_transition(api=api, to=to, actor=self.actor),
                )
            self.plan_routes(item, api, existing)
            self.plan_policies(
                item.children["policies"],
                stored=self.api_policies.get(existing.pk, []) if existing else [],
                api=api,
                phase=PHASE_API_POLICIES,
                of=f" of {item.label}",
            )
        left = [api for key, api in sorted(self.apis.items()) if key not in named]
        if self.prune:
            for api in left:
                if api.status in (ApiStatus.PUBLISHED, ApiStatus.DEPRECATED):
                    self.problems.append(
                        (
                            "apis",
                            f"API {api.name} {api.version} is not in the file but is {api.status}: --prune deletes "
                            "only draft and retired APIs; retire it first (status: retired) or keep it in the file",
                        )
                    )
        self.leftovers(API_KIND, left, PHASE_DELETE_APIS, lambda api: catalog.api_delete(api=api, actor=self.actor))

    def lifecycle(self, item: Item, existing: API | None, upstream: Upstream | None) -> list[str]:
        """The moves from the stored status to the file's (only forward), checking publish's preconditions."""
        current = existing.status if existing is not None else ApiStatus.DRAFT
        want = item.status or ApiStatus.DRAFT
        if LIFECYCLE.index(want) < LIFECYCLE.index(current):
            self.problems.append(
                (
                    f"{item.path}.status",
                    f"API {item.key[0]} {item.key[1]} is {current} and cannot become {want}: "
                    "the lifecycle only moves forward (draft → published → deprecated → retired)",
                )
            )
            return []
        moves = list(LIFECYCLE[LIFECYCLE.index(current) + 1 : LIFECYCLE.index(want) + 1])
        if ApiStatus.PUBLISHED in moves:
            if upstream is None:
                self.problems.append((f"{item.path}.status", "publishing needs an upstream; set upstream"))
            elif not self.enabled_target.get(upstream.name, False):
                self.problems.append(
                    (f"{item.path}.status", f"publishing needs an enabled target in upstream {upstream.name!r}")
                )
        return moves

    def plan_routes(self, item: Item, api: API, existing: API | None) -> None:
        stored: dict[tuple[Any, ...], Route] = {}
        for route in self.routes.get(existing.pk, []) if existing else []:
            stored.setdefault(_stored_key(ROUTE, route), route)
        matched = set()
        for route_item in item.children["routes"]:
            route = stored.get(route_item.key)
            if route is not None:
                matched.add(route.pk)
            self.upsert(
                kind=ROUTE,
                item=route_item,
                existing=route,
                build=lambda r=route_item: Route(tenant=self.tenant, api=api, **r.values),
                save=lambda obj: catalog.route_save(route=obj, actor=self.actor),
                phase=PHASE_ROUTES,
                name=f"{route_item.label} of {item.label}",
                exclude=("api",),
            )
        left = [r for r in (self.routes.get(existing.pk, []) if existing else []) if r.pk not in matched]
        self.leftovers(
            ROUTE, left, PHASE_ROUTES, lambda r: catalog.route_delete(route=r, actor=self.actor), f" of {item.label}"
        )

    def plan_policies(
        self, items: list[Item], *, stored: list[PolicyAttachment], api: API | None, phase: int, of: str
    ) -> None:
        by_type = {p.policy: p for p in stored}
        for policy_item in items:
            existing = by_type.get(policy_item.key[0])
            config, problems = resolve(
                policy_item.key[0],
                policy_item.values["config"],
                stored=existing.config if existing else None,
                env=self.env,
            )
            self.problems.extend((f"{policy_item.path}.config{suffix}", message) for suffix, message in problems)
            if problems:
                continue
            policy_item.values["config"] = config
            self.upsert(
                kind=POLICY,
                item=policy_item,
                existing=existing,
                build=lambda p=policy_item: PolicyAttachment(tenant=self.tenant, api=api, **p.values),
                save=lambda obj: policy_services.policy_attachment_save(attachment=obj, actor=self.actor),
                phase=phase,
                name=f"{policy_item.label}{of or ' (tenant-wide)'}",
                exclude=("api",),
            )
        named = {i.key[0] for i in items}
        self.leftovers(
            POLICY,
            [p for p in stored if p.policy not in named],
            phase if api is not None else PHASE_DELETE_REST,
            lambda p: policy_services.policy_attachment_delete(attachment=p, actor=self.actor),
            of or " (tenant-wide)",
        )

    def plan_plans(self, items: list[Item]) -> None:
        for item in items:
            self.upsert(
                kind=PLAN,
                item=item,
                existing=self.plans.get(item.key[0]),
                build=lambda item=item: Plan(tenant=self.tenant, **item.values),
                save=lambda obj: consumer_services.plan_save(plan=obj, actor=self.actor),
                phase=PHASE_PLANS,
                name=item.label,
            )
        named = {i.key[0] for i in items}
        self.leftovers(
            PLAN,
            [p for name, p in sorted(self.plans.items()) if name not in named],
            PHASE_DELETE_REST,
            lambda p: consumer_services.plan_delete(plan=p, actor=self.actor),
        )


def _group(rows: Any, attr: str) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = {}
    for row in rows:
        out.setdefault(getattr(row, attr), []).append(row)
    return out


def _stored_key(kind: Kind, obj: models.Model) -> tuple[Any, ...]:
    values = [getattr(obj, name) for name in kind.key]
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def config_import(
    *,
    tenant: Tenant,
    document: Any,
    actor: Actor,
    dry_run: bool = False,
    prune: bool = False,
    env: Mapping[str, str] | None = None,
) -> ImportResult:
    """Make the tenant's catalog what ``document`` says; returns the diff (applied unless ``dry_run``).

    Raises ``DocumentInvalid`` (nothing written) listing every problem with
    its path. ``env`` resolves ``${NAME}`` secrets; None (the REST API)
    refuses them. The tenant is always the caller's, never the document's.
    """
    parsed = parse(document)
    with transaction.atomic():
        # One import at a time per tenant: the plan must still hold when it is applied.
        list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True))
        planner = _Planner(tenant=tenant, actor=actor, prune=prune, env=env)
        planner.plan_upstreams(parsed.upstreams)
        planner.plan_plans(parsed.plans)
        planner.plan_policies(
            parsed.policies, stored=planner.tenant_policies, api=None, phase=PHASE_TENANT_POLICIES, of=""
        )
        planner.plan_apis(parsed.apis)
        if planner.problems:
            raise DocumentInvalid(planner.problems[:MAX_PROBLEMS])
        result = ImportResult(changes=planner.changes, dry_run=dry_run, prune=prune)
        if not dry_run:
            for step in sorted(planner.steps, key=lambda s: s.phase):
                _run(step)
    return result


def _run(step: _Step) -> None:
    try:
        step.run()
    except ValidationError as exc:
        raise DocumentInvalid(_problems(exc, step.path)) from None
    except DocumentInvalid:
        raise
    except ApplicationError as exc:
        raise DocumentInvalid([(step.path, exc.message)]) from None


__all__ = ["Change", "ImportResult", "config_import"]
