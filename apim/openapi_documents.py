"""Reading and validating an operator's OpenAPI 3.0/3.1 document, without touching the database or the network.

``openapi_document_load`` turns bytes into a plain JSON-safe dict or raises
``InvalidOpenApiDocument`` whose ``details.errors`` lists ``{"path", "message"}``
(a JSON pointer into the document, or a ``line N`` for parse errors):

* **Bounded.** At most ``APIM_OPENAPI_MAX_BYTES`` (refused before parsing), at
  most ``MAX_NODES`` values after YAML aliases are expanded (a "billion laughs"
  document is refused, not expanded) and ``MAX_DEPTH`` levels of nesting (a
  recursive alias is refused the same way).
* **Strict parsing.** JSON (a document starting with ``{``) or YAML with the
  safe loader (no Python objects). Duplicate keys are an error in both, as in
  the request-validator: two parsers keeping different duplicates is how
  validation gets bypassed. ``NaN``/``Infinity`` are refused; YAML's integer
  keys (an unquoted ``200:`` response) become strings, dates become ISO text.
* **Never fetched.** Every ``$ref`` must be local (``#/...``): anything else
  is refused with its location, and the validator is given resolver handlers
  that refuse every URL scheme, so even a reference it derives itself (a
  relative ``$ref`` under a schema ``$id``) cannot reach the network or the
  file system. Fetching would be a server-side request forgery hole.
* **Really valid.** openapi-spec-validator (pinned) checks the document against
  the official OAS 3.0 / 3.1 JSON Schemas with the pure-Python jsonschema
  backend (deterministic messages, whatever else is installed), then its own
  semantic checks (path parameters declared, operation ids unique, defaults
  valid, local references resolvable). Its messages are reported as they are.
"""

from __future__ import annotations

import datetime
import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import yaml
from django.conf import settings
from jsonschema.exceptions import ValidationError as SchemaValidationError
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
from openapi_spec_validator.schemas import schema_v30, schema_v31
from openapi_spec_validator.schemas.backend.jsonschema import create_validator

from apim.exceptions import ApplicationError

MAX_DEPTH = 100
MAX_NODES = 1_000_000
MAX_ERRORS = 50
MAX_MESSAGE = 500


class InvalidOpenApiDocument(ApplicationError):
    code = "invalid_openapi"
    status = 400

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message, details={"errors": errors[:MAX_ERRORS]})
        self.errors = errors[:MAX_ERRORS]


class DocumentTooLarge(InvalidOpenApiDocument):
    code = "document_too_large"
    status = 413


def _error(path: str, message: str) -> dict[str, str]:
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return {"path": path, "message": message}


def _refuse(message: str, path: str = "") -> InvalidOpenApiDocument:
    return InvalidOpenApiDocument(message, [_error(path, message)])


def pointer(parts: Any) -> str:
    """An RFC 6901 JSON pointer from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _DuplicateKey(ValueError):
    pass


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's parser when present: several times faster), refusing duplicate
    mapping keys (merge keys ``<<`` aside)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key (a list): the normaliser refuses it with a clear message
                continue
            if duplicate:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}: keys must be unique")
        return super().construct_mapping(node, deep=deep)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"duplicate key {key!r}: keys must be unique")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(f"The document is not UTF-8 text: {exc}.") from None
    if not text.strip():
        raise _refuse("The document is empty.")
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_no_constant)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader subclass
    except _DuplicateKey as exc:
        raise _refuse(f"The document repeats a key: {exc}.") from None
    except RecursionError:
        raise _refuse(f"The document is nested more than {MAX_DEPTH} levels deep.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise InvalidOpenApiDocument(
            "The document is neither valid JSON nor valid YAML.", [_error(where, str(exc).replace("\n", " "))]
        ) from None
    except ValueError as exc:  # json.JSONDecodeError and refused constants
        raise _refuse(f"The document is not valid JSON: {exc}.") from None


def _normalise(document: Any) -> Any:
    """A JSON-safe copy: string keys, no shared or recursive nodes, bounded size and depth."""
    budget = MAX_NODES

    def copy(value: Any, path: tuple[Any, ...]) -> Any:
        nonlocal budget
        budget -= 1
        if budget < 0:
            raise _refuse(f"The document has more than {MAX_NODES} values (YAML aliases expanded).")
        if len(path) > MAX_DEPTH:
            raise _refuse(f"The document is nested more than {MAX_DEPTH} levels deep.", pointer(path[:MAX_DEPTH]))
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, str | int):
                    raise _refuse(f"Keys must be strings, not {key!r}.", pointer(path))
                name = str(key)
                if name in out:
                    raise _refuse(f"The key {name!r} appears twice (once unquoted).", pointer(path))
                out[name] = copy(item, (*path, name))
            return out
        if isinstance(value, list):
            return [copy(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, datetime.date | datetime.datetime):
            return value.isoformat()
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise _refuse("NaN and infinite numbers are not JSON.", pointer(path))
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise _refuse(f"Unsupported value of type {type(value).__name__}.", pointer(path))

    return copy(document, ())


def _references(document: Any) -> Iterator[tuple[str, str]]:
    """Every ``$ref`` string in the document with its location (iterative: depth is already bounded)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("$ref", "$dynamicRef") and isinstance(item, str):
                    yield pointer((*path, key)), item
                elif isinstance(item, dict | list):
                    stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value) if isinstance(item, dict | list))


def _resolves(document: Any, ref: str) -> bool:
    """Whether a local reference (``#`` or ``#/a/b``, RFC 6901 escapes and percent-encoding) names a value."""
    target = document
    fragment = unquote(ref[1:])
    if fragment == "":
        return True
    if not fragment.startswith("/"):
        return False  # a plain-name fragment (an $anchor): not supported by the request-validator either
    for raw in fragment[1:].split("/"):
        segment = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, list) and segment.isdigit() and int(segment) < len(target):
            target = target[int(segment)]
        elif isinstance(target, dict) and segment in target:
            target = target[segment]
        else:
            return False
    return True


def _refuse_fetch(uri: str) -> Any:
    raise _refuse(f"The document refers to {uri!r}; only references inside the document (#/...) are allowed.")


# Every scheme refused: the validator resolves nothing outside the document.
_NO_FETCH = {"<all_urls>": _refuse_fetch, "http": _refuse_fetch, "https": _refuse_fetch, "file": _refuse_fetch}


class _V30Validator(OpenAPIV30SpecValidator):
    resolver_handlers = _NO_FETCH
    schema_validator = create_validator(schema_v30)


class _V31Validator(OpenAPIV31SpecValidator):
    resolver_handlers = _NO_FETCH
    schema_validator = create_validator(schema_v31)


def _schema_errors(validator: Any, document: Mapping[str, Any]) -> list[dict[str, str]]:
    """Errors against the official schema; a ``oneOf`` failure reports its most relevant branch error."""
    errors = []
    for error in itertools.islice(validator.schema_validator.iter_errors(document), MAX_ERRORS):
        chosen = _deepest(error)
        errors.append(_error(pointer(chosen.absolute_path), chosen.message))
    return errors


def _deepest(error: SchemaValidationError) -> SchemaValidationError:
    """The most specific cause of a ``oneOf``/``anyOf`` failure: the branch error deepest in the document.

    (jsonschema's ``best_match`` prefers the shallowest, which for OpenAPI's
    "a Parameter or a Reference" reports "'$ref' is a required property" for
    a parameter whose schema is wrong.)
    """
    best = error
    stack = list(error.context or ())
    while stack:
        candidate = stack.pop()
        if len(candidate.absolute_path) > len(best.absolute_path):
            best = candidate
        stack.extend(candidate.context or ())
    return best


def _semantic_errors(validator: Any) -> list[dict[str, str]]:
    """openapi-spec-validator's own checks (run without its per-instance ``lru_cache``, which never frees)."""
    errors = []
    try:
        for error in itertools.islice(validator.root_validator(validator.schema_path), MAX_ERRORS):
            where = pointer(error.absolute_path) if isinstance(error, SchemaValidationError) else ""
            errors.append(_error(where, error.message if hasattr(error, "message") else str(error)))
    except InvalidOpenApiDocument as exc:
        errors.extend(exc.errors)
    except RecursionError:
        errors.append(
            _error("", "The document's references nest too deeply or form a cycle the validator cannot follow.")
        )
    except Exception as exc:  # noqa: BLE001 - a validator crash on hostile input is the document's error, not a 500
        errors.append(_error("", f"The validator could not process the document: {type(exc).__name__}: {exc}"))
    return errors


def openapi_document_check(document: Any) -> None:
    """Raise ``InvalidOpenApiDocument`` unless ``document`` is a valid, self-contained OpenAPI 3.0/3.1 document."""
    if not isinstance(document, dict):
        raise _refuse("The document must be a JSON or YAML object with an 'openapi' field.")
    version = document.get("openapi")
    if version is None:
        raise _refuse(
            "The document has no 'openapi' field; this importer reads OpenAPI 3.0 and 3.1 (not Swagger 2.0).",
            "/openapi",
        )
    if not isinstance(version, str) or not (version.startswith("3.0.") or version.startswith("3.1.")):
        raise _refuse(f"OpenAPI version {version!r} is not supported; use 3.0.x or 3.1.x.", "/openapi")
    references = list(_references(document))
    external = [
        _error(where, f"external reference {ref!r}: only references inside the document (#/...) are allowed")
        for where, ref in references
        if not ref.startswith("#")
    ]
    if external:
        raise InvalidOpenApiDocument(
            f"The document has {len(external)} external $ref; references to files or URLs are never fetched.",
            external,
        )
    dangling = [
        _error(where, f"the reference {ref!r} points nowhere in the document")
        for where, ref in references
        if not _resolves(document, ref)
    ]
    if dangling:
        raise InvalidOpenApiDocument(
            f"The OpenAPI document is invalid at {dangling[0]['path']}: {dangling[0]['message']}", dangling
        )
    validator = (_V30Validator if version.startswith("3.0.") else _V31Validator)(document, base_uri="urn:apim:import")
    errors = _schema_errors(validator, document)
    if not errors:
        errors = _semantic_errors(validator)
    if errors:
        first = errors[0]
        where = f" at {first['path']}" if first["path"] else ""
        raise InvalidOpenApiDocument(f"The OpenAPI document is invalid{where}: {first['message']}", errors)


def openapi_document_load(raw: bytes, *, max_bytes: int | None = None) -> dict[str, Any]:
    """Parse, bound, normalise and validate an OpenAPI document; the result is safe to store as JSON."""
    limit = settings.APIM_OPENAPI_MAX_BYTES if max_bytes is None else max_bytes
    if len(raw) > limit:
        message = f"The document is over the limit of {limit} bytes (APIM_OPENAPI_MAX_BYTES)."
        raise DocumentTooLarge(message, [_error("", message)])
    document = _normalise(_parse(raw))
    openapi_document_check(document)
    return document
