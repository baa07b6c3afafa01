"""request-validator: refuse requests that do not match a JSON Schema or the API's OpenAPI operation.

Two modes (exactly one per attachment):

* ``body_schema``: one JSON Schema (Draft 2020-12 unless the schema's
  ``$schema`` says otherwise) for the JSON body of the listed ``methods``
  (default POST, PUT, PATCH), checked as a schema when the config is saved.
* ``openapi: true``: the API's own OpenAPI 3.x document. The operation is found
  by method and path template (``/orders/{id}``), with paths relative to the
  API's base path; concrete paths win over templated ones. Its path, query and
  header parameters (required ones and their schemas; values coerced from
  text by the schema's type) and its ``application/json`` (or ``+json``)
  request body are validated. Local ``$ref`` (``#/components/...``) are
  resolved; other references are refused when the chain is compiled (the API
  then answers 503 until the document is fixed). OpenAPI 3.0's ``nullable``
  and boolean ``exclusiveMinimum``/``exclusiveMaximum`` are translated; 3.1
  schemas are JSON Schema 2020-12 as they are. A request that matches no
  operation of the document is not validated (routing decides what exists),
  unless ``strict: true``: then it is answered 405 ``method_not_allowed``
  (with ``Allow``) when its path matches operations of other methods, else
  404 ``not_found`` — so an API whose routes are path prefixes (as the OpenAPI
  importer makes them) exposes exactly the document's operations. Under
  ``strict`` a HEAD request is checked as the GET operation of its path when
  the document defines no HEAD.

Validators are compiled once per snapshot, never per request.

Answers: invalid → 400 ``invalid_request`` with ``details.errors``, a list of
at most 20 ``{"in": "body"|"query"|"header"|"path", "path": JSON pointer,
"message"}``; a body whose media type is not accepted → 415
``unsupported_media_type``; a required body that is missing → 400. The body is
parsed strictly: duplicate object keys are an error (different parsers keep
different duplicates, which is how validation gets bypassed), nesting deeper
than 64 levels is an error, and the body is buffered bounded by the
request-size-limit in force (else 8 MiB) → 413.

A valid request is forwarded byte-for-byte as received (the body is parsed
only to validate it). The policy runs at priority 700, after
request-transformer (810): it validates the request as it will be forwarded.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from policies.base import CompileEnv, ConfigError, Denial, Handler, Policy
from policies.context import RequestContext
from policies.plugins.transform_ops import is_json_media_type

MAX_ERRORS = 20
MAX_DEPTH = 64
MAX_MESSAGE = 300
_OFFLOAD_BYTES = 256 * 1024
_DOC_URI = "urn:apim:openapi"
_MEDIA_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+/[!#$%&'*+\-.^_`|~0-9a-z]+$")
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})  # OpenAPI: described elsewhere
_INT_RE = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True, slots=True)
class ValidatorConfig:
    body_schema: Mapping[str, Any] | None
    openapi: bool
    strict: bool
    content_types: tuple[str, ...]
    methods: frozenset[str]
    body_required: bool


def _schema_path(parts: Any) -> str:
    out = "body_schema"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return result


def _too_deep(document: Any) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _error(where: str, path: str, message: str) -> dict[str, str]:
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return {"in": where, "path": path, "message": message}


def _schema_errors(validator: Validator, instance: Any, where: str, prefix: str = "") -> list[dict[str, str]]:
    # islice: a body with a million violations costs twenty.
    return [
        _error(where, prefix + _pointer(e.absolute_path), e.message)
        for e in itertools.islice(validator.iter_errors(instance), MAX_ERRORS)
    ]


def check_json_body(body: bytes, validator: Validator) -> list[dict[str, str]]:
    """Errors of ``body`` against ``validator``: strict parse (duplicates, depth), then the schema."""
    try:
        document = json.loads(body, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        return [_error("body", "", f"duplicate key {exc.key!r}: object keys must be unique")]
    except RecursionError:
        return [_error("body", "", f"the JSON document is nested more than {MAX_DEPTH} levels deep")]
    except ValueError as exc:
        return [_error("body", "", f"the body is not valid JSON: {exc}")]
    if isinstance(document, dict | list) and _too_deep(document):
        return [_error("body", "", f"the JSON document is nested more than {MAX_DEPTH} levels deep")]
    return _schema_errors(validator, document, "body")


def _media_type(value: bytes | None) -> str:
    if not value:
        return ""
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    location: str  # query, header or path
    required: bool
    validator: Validator | None
    kind: str | None
    item_kind: str | None
    explode: bool


@dataclass(frozen=True, slots=True)
class _Body:
    required: bool
    validators: Mapping[str, Validator | None]  # media type -> validator (None: accepted, not validated)


@dataclass(frozen=True, slots=True)
class _Operation:
    regex: re.Pattern[str]
    names: Mapping[str, str]  # regex group -> path parameter name
    method: str
    params: tuple[_Param, ...]
    body: _Body | None


def _coerce(text: str, kind: str | None) -> Any:
    """A parameter's text as the schema's type, or the text itself (the schema then reports it)."""
    if kind == "integer" and _INT_RE.match(text):
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return number if number == number and abs(number) != float("inf") else text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


class _OpenApi:
    """An OpenAPI document compiled into per-operation validators (once per snapshot)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        version = str(document.get("openapi", ""))
        if not version.startswith("3."):
            raise ConfigError("openapi", f"the API's document must be OpenAPI 3.x (found {version or 'no version'!r})")
        paths = document.get("paths")
        if not isinstance(paths, Mapping):
            raise ConfigError("openapi", "the API's OpenAPI document has no paths")
        refs: list[str] = []
        converted = _convert(copy.deepcopy(dict(document)), legacy=version.startswith("3.0"), refs=refs)
        self._doc = converted
        self._schemas: dict[str, Any] = {}
        operations: list[tuple[tuple[int, int], _Operation]] = []
        for template, item in converted["paths"].items():
            item = self._deref(item)
            if not isinstance(template, str) or not template.startswith("/") or not isinstance(item, dict):
                continue
            regex, names, templated = _template_regex(template)
            shared = item.get("parameters", [])
            for method in _HTTP_METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                key = f"op{len(operations)}"
                params = self._params([*shared, *op.get("parameters", [])], key)
                body = self._body(op.get("requestBody"), key)
                rank = (templated, -len(template))
                operations.append((rank, _Operation(regex, names, method.upper(), params, body)))
        converted["x-apim-schemas"] = self._schemas
        registry: Registry = Registry().with_resource(_DOC_URI, Resource(contents=converted, specification=DRAFT202012))
        resolver = registry.resolver(base_uri=_DOC_URI)
        for ref in refs:
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise ConfigError("openapi", f"the OpenAPI document's $ref {ref!r} points nowhere") from None
        for name, schema in self._schemas.items():
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ConfigError("openapi", f"schema {name}: {exc.message}") from None
        self._registry = registry
        self.operations = tuple(op for _, op in sorted(operations, key=lambda pair: pair[0]))
        self._bind()

    def _bind(self) -> None:
        """Swap the schema names for validators, now that the registry holds every schema."""
        bound = []
        for op in self.operations:
            params = tuple(
                _Param(p.name, p.location, p.required, self._validator(p.validator), p.kind, p.item_kind, p.explode)
                for p in op.params
            )
            body = None
            if op.body is not None:
                body = _Body(op.body.required, {m: self._validator(v) for m, v in op.body.validators.items()})
            bound.append(_Operation(op.regex, op.names, op.method, params, body))
        self.operations = tuple(bound)

    def _validator(self, name: Any) -> Validator | None:
        if name is None:
            return None
        return Draft202012Validator({"$ref": f"{_DOC_URI}#/x-apim-schemas/{name}"}, registry=self._registry)

    def _deref(self, value: Any) -> Any:
        for _ in range(20):
            if not (isinstance(value, dict) and isinstance(value.get("$ref"), str)):
                return value
            ref = value["$ref"]
            if not ref.startswith("#/"):
                raise ConfigError("openapi", f"only local $ref are supported, not {ref!r}")
            target: Any = self._doc
            for segment in ref[2:].split("/"):
                segment = segment.replace("~1", "/").replace("~0", "~")
                if isinstance(target, list) and segment.isdigit() and int(segment) < len(target):
                    target = target[int(segment)]
                elif isinstance(target, dict) and segment in target:
                    target = target[segment]
                else:
                    raise ConfigError("openapi", f"the OpenAPI document's $ref {ref!r} points nowhere")
            value = target
        raise ConfigError("openapi", "the OpenAPI document's $ref chain is too long or circular")

    def _kind(self, schema: Any) -> str | None:
        schema = self._deref(schema)
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        return kind if isinstance(kind, str) else None

    def _params(self, raw: list[Any], key: str) -> tuple[_Param, ...]:
        by_name: dict[tuple[str, str], _Param] = {}
        for index, value in enumerate(raw):
            param = self._deref(value)
            if not isinstance(param, dict) or param.get("in") not in ("query", "header", "path"):
                continue  # cookie parameters are not validated
            name = str(param.get("name", ""))
            location = param["in"]
            if location == "header" and name.lower() in _IGNORED_HEADERS:
                continue
            schema = param.get("schema")
            schema_name = None
            kind = item_kind = None
            if isinstance(schema, dict):
                schema_name = f"{key}-p{index}"
                self._schemas[schema_name] = schema
                kind = self._kind(schema)
                if kind == "array":
                    items = self._deref(schema).get("items")
                    item_kind = self._kind(items) if items is not None else None
            explode = bool(param.get("explode", param.get("style", "form") == "form"))
            by_name[(location, name.lower() if location == "header" else name)] = _Param(
                name=name.lower() if location == "header" else name,
                location=location,
                required=bool(param.get("required", location == "path")),
                validator=schema_name,  # type: ignore[arg-type] - bound to a validator in _bind
                kind=kind,
                item_kind=item_kind,
                explode=explode,
            )
        return tuple(by_name.values())

    def _body(self, raw: Any, key: str) -> _Body | None:
        body = self._deref(raw)
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            return None
        media: dict[str, Any] = {}
        for index, (media_type, content) in enumerate(body["content"].items()):
            name = None
            content = self._deref(content)
            schema = content.get("schema") if isinstance(content, dict) else None
            if isinstance(schema, dict) and is_json_media_type(media_type.encode("latin-1")):
                name = f"{key}-b{index}"
                self._schemas[name] = schema
            media[str(media_type).split(";", 1)[0].strip().lower()] = name
        return _Body(required=bool(body.get("required", False)), validators=media)  # type: ignore[arg-type]

    def methods_for(self, path: str) -> tuple[str, ...]:
        """The methods of the operations whose template matches ``path`` (for ``Allow``)."""
        return tuple(sorted({op.method for op in self.operations if op.regex.fullmatch(path)}))

    def find(self, method: str, path: str) -> tuple[_Operation, dict[str, str]] | None:
        for op in self.operations:
            if op.method != method:
                continue
            match = op.regex.fullmatch(path)
            if match is not None:
                return op, match.groupdict()
        return None


def openapi_compile_check(document: Mapping[str, Any]) -> int:
    """Compile ``document`` as ``openapi: true`` would; raise ``ConfigError`` if it cannot be.

    For the control plane (the OpenAPI importer): a document that would make the
    API answer 503 at the gateway is refused when it is saved instead. Returns
    the number of operations found.
    """
    return len(_OpenApi(document).operations)


def _template_regex(template: str) -> tuple[re.Pattern[str], dict[str, str], int]:
    pattern = ""
    templated = 0
    names: dict[str, str] = {}
    for piece in re.split(r"(\{[^{}/]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            group = f"g{len(names)}"
            names[group] = piece[1:-1]
            pattern += f"(?P<{group}>[^/]+)"
            templated += 1
        else:
            pattern += re.escape(piece)
    # Group names are positional (g0, g1...): parameter names need not be identifiers.
    return re.compile(pattern), names, templated


def _convert(value: Any, *, legacy: bool, refs: list[str]) -> Any:
    """OpenAPI 3.0 schema dialect → JSON Schema 2020-12 (in place), collecting every ``$ref``."""
    if isinstance(value, list):
        for item in value:
            _convert(item, legacy=legacy, refs=refs)
        return value
    if not isinstance(value, dict):
        return value
    for item in value.values():
        _convert(item, legacy=legacy, refs=refs)
    ref = value.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#"):
            raise ConfigError("openapi", f"only local $ref are supported, not {ref!r}")
        refs.append(ref)
    if legacy:
        if value.get("nullable") is True:
            kind = value.get("type")
            if isinstance(kind, str):
                value["type"] = [kind, "null"]
                if isinstance(value.get("enum"), list) and None not in value["enum"]:
                    value["enum"] = [*value["enum"], None]
            elif kind is None and "$ref" not in value:
                pass  # no type restriction: null already passes
            else:
                original = {k: v for k, v in value.items() if k != "nullable"}
                value.clear()
                value["anyOf"] = [original, {"type": "null"}]
                return value
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(value.get(bound), bool):
                if value[bound] and limit in value:
                    value[bound] = value.pop(limit)
                else:
                    del value[bound]
    return value


class RequestValidatorHandler(Handler):
    def __init__(self, config: ValidatorConfig, openapi: _OpenApi | None, base_path: str) -> None:
        self._openapi = openapi
        self._strict = config.strict
        self._base = base_path.rstrip("/")
        self._methods = config.methods
        self._content_types = frozenset(config.content_types)
        self._body_required = config.body_required
        self._validator: Validator | None = None
        if config.body_schema is not None:
            cls = validator_for(config.body_schema, default=Draft202012Validator)
            self._validator = cls(config.body_schema)
        self._unsupported = Denial(
            status=415,
            code="unsupported_media_type",
            message=f"The request body must be {', '.join(config.content_types)}.",
            reason="invalid_request",
            details={"allowed": list(config.content_types)},
        )

    async def request(self, ctx: RequestContext) -> Denial | None:
        if self._openapi is not None:
            return await self._check_operation(ctx)
        if ctx.method not in self._methods or self._validator is None:
            return None
        return await self._check_body(ctx, self._validator, self._body_required, self._content_types, None)

    async def _check_body(
        self,
        ctx: RequestContext,
        validator: Validator | None,
        required: bool,
        accepted: frozenset[str] | Mapping[str, Validator | None],
        errors: list[dict[str, str]] | None,
    ) -> Denial | None:
        errors = errors or []
        body = await ctx.read_body() if ctx.has_body or ctx.body is not None else b""
        if not body:
            if required:
                errors.append(_error("body", "", "a request body is required"))
            return _invalid(errors)
        media = _media_type(ctx.header(b"content-type"))
        if media not in accepted:
            if isinstance(accepted, Mapping):
                allowed = sorted(accepted)
                return Denial(
                    status=415,
                    code="unsupported_media_type",
                    message=f"The request body must be {', '.join(allowed)}.",
                    reason="invalid_request",
                    details={"allowed": allowed},
                )
            return self._unsupported
        if isinstance(accepted, Mapping):
            validator = accepted[media]
        if validator is not None:
            if len(body) > _OFFLOAD_BYTES:
                errors.extend(await asyncio.to_thread(check_json_body, body, validator))
            else:
                errors.extend(check_json_body(body, validator))
        return _invalid(errors)

    async def _check_operation(self, ctx: RequestContext) -> Denial | None:
        assert self._openapi is not None
        path = ctx.path
        if self._base and (path == self._base or path.startswith(self._base + "/")):
            path = path[len(self._base) :] or "/"
        found = self._openapi.find(ctx.method, path)
        if found is None and self._strict:
            if ctx.method == "HEAD":
                found = self._openapi.find("GET", path)
            if found is None:
                return self._not_in_document(path)
        if found is None:
            return None
        op, groups = found
        path_values = {op.names[g]: v for g, v in groups.items()}
        errors = list(_param_errors(ctx, op.params, path_values))
        if op.body is None:
            return _invalid(errors)
        return await self._check_body(ctx, None, op.body.required, op.body.validators, errors)


    def _not_in_document(self, path: str) -> Denial:
        assert self._openapi is not None
        allowed = self._openapi.methods_for(path)
        if allowed:
            if "GET" in allowed and "HEAD" not in allowed:
                allowed = tuple(sorted((*allowed, "HEAD")))
            return Denial(
                status=405,
                code="method_not_allowed",
                message="The API's OpenAPI document defines no such operation on this path.",
                reason="invalid_request",
                details={"allowed": list(allowed)},
                headers=((b"allow", ", ".join(allowed).encode("ascii")),),
            )
        return Denial(
            status=404,
            code="not_found",
            message="The API's OpenAPI document defines no such path.",
            reason="invalid_request",
        )


def _query_values(query: bytes) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    if not query:
        return values
    for part in query.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        key = unquote_plus(name.decode("latin-1"), encoding="utf-8", errors="replace")
        values.setdefault(key, []).append(unquote_plus(value.decode("latin-1"), encoding="utf-8", errors="replace"))
    return values


def _param_errors(ctx: RequestContext, params: tuple[_Param, ...], path_values: dict[str, str]) -> Iterator[dict]:
    query: dict[str, list[str]] | None = None
    for param in params:
        if param.location == "query":
            if query is None:
                query = _query_values(ctx.query)
            raw = query.get(param.name)
        elif param.location == "header":
            raw = [v.decode("latin-1") for n, v in ctx.headers if n.decode("latin-1") == param.name] or None
        else:
            raw = [path_values[param.name]] if param.name in path_values else None
        if raw is None:
            if param.required:
                yield _error(param.location, "/" + param.name, f"the required {param.location} parameter is missing")
            continue
        if param.validator is None:
            continue
        if param.kind == "array":
            texts = raw if param.explode or len(raw) > 1 else raw[0].split(",")
            value: Any = [_coerce(t, param.item_kind) for t in texts]
        else:
            value = _coerce(raw[0], param.kind)
        yield from _schema_errors(param.validator, value, param.location, "/" + param.name)


def _invalid(errors: list[dict[str, str]]) -> Denial | None:
    if not errors:
        return None
    return Denial(
        status=400,
        code="invalid_request",
        message="The request does not match the API's schema.",
        reason="invalid_request",
        details={"errors": errors[:MAX_ERRORS]},
    )


class RequestValidatorPolicy(Policy):
    name = "request-validator"
    title = "Request validator"
    priority = 700
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "body_schema": {
                "type": "object",
                "description": "JSON Schema (Draft 2020-12 unless $schema says otherwise) the JSON body must match.",
            },
            "openapi": {
                "type": "boolean",
                "description": "Validate against the API's OpenAPI document: the matching operation's parameters "
                "and JSON request body.",
            },
            "strict": {
                "type": "boolean",
                "description": "With openapi: answer requests matching no operation of the document 404 (or 405 "
                "when the path has other methods) instead of forwarding them unvalidated (default false).",
            },
            "content_types": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {"type": "string", "minLength": 3, "maxLength": 100},
                "description": 'Media types accepted for the body with body_schema; default ["application/json"]. '
                "Others get 415.",
            },
            "methods": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1, "maxLength": 20},
                "description": "Methods whose body is validated with body_schema; default POST, PUT, PATCH.",
            },
            "body_required": {
                "type": "boolean",
                "description": "With body_schema: a missing body is an error (default true).",
            },
        },
        "anyOf": [{"required": ["body_schema"]}, {"required": ["openapi"], "properties": {"openapi": {"const": True}}}],
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> ValidatorConfig:
        body_schema = config.get("body_schema")
        openapi = bool(config.get("openapi", False))
        if body_schema is not None and openapi:
            raise ConfigError("body_schema", "use either body_schema or openapi: true, not both")
        strict = bool(config.get("strict", False))
        if strict and not openapi:
            raise ConfigError("strict", "strict applies to openapi: true (body_schema has no operations to match)")
        if body_schema is not None:
            checker = validator_for(body_schema, default=Draft202012Validator)
            try:
                checker.check_schema(body_schema)
            except SchemaError as exc:
                raise ConfigError(_schema_path(exc.absolute_path), f"not a valid JSON Schema: {exc.message}") from None
        content_types = []
        for index, value in enumerate(config.get("content_types", ["application/json"])):
            media = value.strip().lower()
            if not _MEDIA_RE.match(media):
                raise ConfigError(f"content_types[{index}]", f"{value!r} is not a media type like application/json")
            content_types.append(media)
        methods = config.get("methods", ["POST", "PUT", "PATCH"])
        for index, method in enumerate(methods):
            if not re.fullmatch(r"[A-Z]+", method):
                raise ConfigError(f"methods[{index}]", f"{method!r} is not an HTTP method in upper case")
        return ValidatorConfig(
            body_schema=body_schema,
            openapi=openapi,
            strict=strict,
            content_types=tuple(content_types),
            methods=frozenset(methods),
            body_required=bool(config.get("body_required", True)),
        )

    @classmethod
    def compile(cls, parsed: ValidatorConfig, env: CompileEnv) -> RequestValidatorHandler:
        openapi = None
        if parsed.openapi:
            if not env.api.openapi:
                raise ConfigError("openapi", "the API has no OpenAPI document to validate against")
            openapi = _OpenApi(env.api.openapi)
        return RequestValidatorHandler(parsed, openapi, env.api.base_path)
