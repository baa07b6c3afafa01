"""The document's shape: which objects, which fields, which keys; checked before anything else.

``parse`` turns a loaded YAML/JSON document into ``Item`` trees with every
field present (missing ones take the model's default, so a file states the
whole object, as decK's does) or collects every shape error with its path
(``apis[2].routes[0].methods: must be a list``). Field values are then the
models' business: the importer runs ``full_clean`` on each changed object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.db import models

from apim.exceptions import ApplicationError
from apim.models import API, UPSTREAM_SETTINGS, ApiStatus, Route, Target, Upstream
from apim.validators import normalize_host
from consumers.models import PLAN_SETTINGS, Plan
from policies.models import PolicyAttachment
from policies.secrets import REDACTED

FORMAT_VERSION = 1
# Enough to fix a file in one pass without flooding a terminal or a response.
MAX_PROBLEMS = 100
# Larger documents are refused before parsing (the REST body and the command's file).
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024

Problems = list[tuple[str, str]]


def problem_text(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


class DocumentInvalid(ApplicationError):
    """The document cannot be applied; ``problems`` lists every ``(path, message)`` found.

    The REST API answers 400 with ``details`` mapping each path to its
    messages; the command prints one line per problem.
    """

    code = "invalid_config"
    status = 400

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        details: dict[str, list[str]] = {}
        for path, message in problems:
            details.setdefault(path or "document", []).append(message)
        first = problem_text(*problems[0]) if problems else "invalid document"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}", details=details)


@dataclass(frozen=True)
class Kind:
    """One kind of object in the document and how it maps onto its model."""

    label: str
    model: type[models.Model]
    key: tuple[str, ...]
    fields: tuple[str, ...]
    required: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # fields handled by the importer (references, lifecycle, children)

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*self.key, *self.fields, *self.extra)


UPSTREAM = Kind(
    "upstream",
    Upstream,
    key=("name",),
    fields=UPSTREAM_SETTINGS,
    required=("name",),
    extra=("targets",),
)
TARGET = Kind("target", Target, key=("url",), fields=("weight", "enabled"), required=("url",))
API_KIND = Kind(
    "api",
    API,
    key=("name", "version"),
    fields=("title", "description", "base_path", "hosts", "strip_base_path", "openapi_document"),
    required=("name", "title", "base_path"),
    extra=("upstream", "status", "routes", "policies"),
)
ROUTE = Kind("route", Route, key=("path", "methods"), fields=("name", "enabled"))
POLICY = Kind(
    "policy", PolicyAttachment, key=("policy",), fields=("config", "enabled", "priority"), required=("policy",)
)
PLAN = Kind(
    "plan",
    Plan,
    key=("name",),
    fields=PLAN_SETTINGS,
    required=("name",),
)
TOP_LEVEL = ("format_version", "upstreams", "apis", "plans", "policies")


@dataclass
class Item:
    """One object the document asks for: its path, key, every field, and its children."""

    kind: Kind
    path: str
    key: tuple[Any, ...]
    values: dict[str, Any]
    upstream: str | None = None
    status: str | None = None
    children: dict[str, list[Item]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return describe(self.kind, self.key)


@dataclass
class Document:
    upstreams: list[Item]
    apis: list[Item]
    plans: list[Item]
    policies: list[Item]


def describe(kind: Kind, key: tuple[Any, ...]) -> str:
    """How the diff names an object: ``api orders v1``, ``route GET,POST /items``."""
    if kind is ROUTE:
        path, methods = key
        return f"route {','.join(methods) or '*'} {path}"
    return f"{kind.label} " + " ".join(str(part) for part in key)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few aliases can expand to gigabytes (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted; write the value out", event.start_mark
            )
        return super().compose_node(parent, index)


def load_yaml(text: str | bytes) -> Any:
    """The document in ``text`` (YAML, which includes JSON), or ``DocumentInvalid``."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentInvalid([("", f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")])
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DocumentInvalid([("", f"not valid YAML or JSON: {exc}")]) from None


def dump_yaml(document: Mapping[str, Any]) -> str:
    header = (
        "# apim declarative config (manage.py apim_import / POST /api/v1/config/import/).\n"
        f"# Secrets are exported as {REDACTED!r}: import keeps the value stored at that place.\n"
    )
    return header + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, default_flow_style=False)


def _model_field(kind: Kind, name: str) -> models.Field:
    return kind.model._meta.get_field(name)  # type: ignore[return-value]


def _type_problem(model_field: models.Field, value: Any) -> str | None:
    if value is None:
        return None if model_field.null else "must not be null"
    internal = model_field.get_internal_type()
    if internal in ("CharField", "TextField") and not isinstance(value, str):
        return "must be a string"
    if internal.endswith("IntegerField") and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be an integer"
    if internal == "BooleanField" and not isinstance(value, bool):
        return "must be true or false"
    return None


def _mapping(value: Any, path: str, problems: Problems) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.append((path, "must be a mapping of field: value"))
        return None
    return value


def _list(value: Any, path: str, problems: Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append((path, "must be a list"))
        return []
    return value


def _unknown(data: Mapping[str, Any], allowed: tuple[str, ...], path: str, problems: Problems) -> None:
    for name in data:
        if name not in allowed:
            where = f"{path}.{name}" if path else str(name)
            problems.append((where, f"unknown field (known: {', '.join(allowed)})"))


def _normalize(kind: Kind, values: dict[str, Any]) -> None:
    """Apply the models' own normalisation, so a file compares equal to what the database holds."""
    if kind is ROUTE and isinstance(values["methods"], list) and all(isinstance(m, str) for m in values["methods"]):
        values["methods"] = sorted({m.upper() for m in values["methods"]})
    if kind is API_KIND and isinstance(values["hosts"], list) and all(isinstance(h, str) for h in values["hosts"]):
        values["hosts"] = [normalize_host(h) for h in values["hosts"]]


def _key(kind: Kind, values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(tuple(v) if isinstance(v, list) else v for v in (values[name] for name in kind.key))


def _items(kind: Kind, raw: Any, path: str, problems: Problems) -> list[Item]:
    items: list[Item] = []
    seen: dict[tuple[Any, ...], str] = {}
    for index, entry in enumerate(_list(raw, path, problems)):
        here = f"{path}[{index}]"
        data = _mapping(entry, here, problems)
        if data is None:
            continue
        before = len(problems)
        _unknown(data, kind.allowed, here, problems)
        values: dict[str, Any] = {}
        for name in (*kind.key, *kind.fields):
            model_field = _model_field(kind, name)
            if name not in data:
                if name in kind.required:
                    problems.append((f"{here}.{name}", "is required"))
                values[name] = model_field.get_default()
                continue
            values[name] = data[name]
            problem = _type_problem(model_field, data[name])
            if problem:
                problems.append((f"{here}.{name}", problem))
        methods = values.get("methods")
        if kind is ROUTE and not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
            problems.append((f"{here}.methods", 'must be a list of HTTP methods, e.g. ["GET", "POST"]'))
        if kind is POLICY and not isinstance(values["config"], Mapping):
            problems.append((f"{here}.config", 'must be a mapping, e.g. {"limit": 10}'))
        if len(problems) > before:
            continue
        _normalize(kind, values)
        item = Item(kind=kind, path=here, key=_key(kind, values), values=values)
        if item.key in seen:
            problems.append((here, f"names the same {item.label} as {seen[item.key]}"))
            continue
        seen[item.key] = here
        if kind is UPSTREAM:
            item.children["targets"] = _items(TARGET, data.get("targets"), f"{here}.targets", problems)
        if kind is API_KIND:
            _api_extras(item, data, problems)
        items.append(item)
    return items


def _api_extras(item: Item, data: Mapping[str, Any], problems: Problems) -> None:
    upstream = data.get("upstream")
    if upstream is not None and not isinstance(upstream, str):
        problems.append((f"{item.path}.upstream", "must be the name of an upstream, or null"))
    item.upstream = upstream if isinstance(upstream, str) else None
    status = data.get("status", ApiStatus.DRAFT)
    if status not in ApiStatus.values:
        problems.append(
            (f"{item.path}.status", f"{status!r} is not a lifecycle status ({', '.join(ApiStatus.values)})")
        )
    item.status = status if status in ApiStatus.values else ApiStatus.DRAFT
    item.children["routes"] = _items(ROUTE, data.get("routes"), f"{item.path}.routes", problems)
    item.children["policies"] = _items(POLICY, data.get("policies"), f"{item.path}.policies", problems)


def _json_problems(value: Any, path: str, problems: Problems) -> None:
    """YAML can say more than JSON (dates, non-string keys, .nan); the database stores JSON, so refuse the rest."""
    if len(problems) >= MAX_PROBLEMS:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path, f"key {key!r} must be a string (quote it)"))
                continue
            _json_problems(item, f"{path}.{key}" if path else key, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_problems(item, f"{path}[{index}]", problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append((path, "must be a finite number"))
    elif value is not None and not isinstance(value, str | int | float | bool):
        problems.append((path, f"a YAML {type(value).__name__} is not a JSON value; quote it"))


def parse(raw: Any) -> Document:
    """The document's items, or ``DocumentInvalid`` with every shape problem found."""
    problems: Problems = []
    _json_problems(raw, "", problems)
    if problems:
        raise DocumentInvalid(problems)
    data = _mapping(raw, "", problems)
    if data is None:
        raise DocumentInvalid([("", "the document must be a mapping with format_version, upstreams, apis, …")])
    _unknown(data, TOP_LEVEL, "", problems)
    version = data.get("format_version")
    if version is None:
        problems.append(("format_version", f"is required (this apim writes and reads format_version {FORMAT_VERSION})"))
    elif version != FORMAT_VERSION or isinstance(version, bool):
        problems.append(("format_version", f"{version!r} is not supported; this apim reads {FORMAT_VERSION}"))
    document = Document(
        upstreams=_items(UPSTREAM, data.get("upstreams"), "upstreams", problems),
        apis=_items(API_KIND, data.get("apis"), "apis", problems),
        plans=_items(PLAN, data.get("plans"), "plans", problems),
        policies=_items(POLICY, data.get("policies"), "policies", problems),
    )
    if problems:
        raise DocumentInvalid(problems[:MAX_PROBLEMS])
    return document
