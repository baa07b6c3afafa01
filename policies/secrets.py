"""Secrets inside policy configs are written, never read back.

A config value is a secret when its policy type marks the field with the
standard JSON Schema annotation ``"writeOnly": true`` (jwt's HS256 ``secret``),
or when it is a string under a credential's name (``Authorization``,
``X-API-Key``, ``password``, ``*_token``...) — what a request-transformer adds
to reach an upstream is no less secret for living in a free-form header map.
Every way a config leaves the control plane — the REST API, the admin form, the
audit log, the declarative export — shows such a value as :data:`REDACTED`
instead, to every role: a viewer must not learn a credential by reading an
attachment, and an operator has no need to see one again (it was shown when
they typed it), like an API key.

Saving a config that still carries :data:`REDACTED` at a secret's place keeps
the secret stored there (:func:`restore`), so a client can read a config, change
another field and write it back. Array items are matched by position; a
placeholder with no secret at its place is refused with the field's path.

The gateway's snapshot reads the stored config directly and never sees the
placeholder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies import registry

REDACTED = "[redacted]"

_SECRET_NAMES = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "client_secret",
        "private_key",
        "api_key",
        "apikey",
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "cookie",
    }
)
_SECRET_SUFFIXES = ("_secret", "-secret", "_password", "-password", "_token", "-token")
# Maps whose values are names, not values (``rename: {headers: {Authorization: X-Auth}}``).
_NAME_MAPS = frozenset({"rename"})

Schemas = list[Mapping[str, Any]]


class RedactedWithoutSecret(ValueError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: {REDACTED!r} keeps an existing secret, and there is none here; send the secret")
        self.path = path


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def _branches(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield schema
    for keyword in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(keyword) or ():
            if isinstance(branch, Mapping):
                yield from _branches(branch)


def _property_schemas(schemas: Schemas, name: str) -> Schemas:
    return [
        branch["properties"][name]
        for schema in schemas
        for branch in _branches(schema)
        if isinstance(branch.get("properties"), Mapping) and isinstance(branch["properties"].get(name), Mapping)
    ]


def _item_schemas(schemas: Schemas) -> Schemas:
    return [
        branch["items"]
        for schema in schemas
        for branch in _branches(schema)
        if isinstance(branch.get("items"), Mapping)
    ]


def _children(value: Any, schemas: Schemas, in_name_map: bool) -> Iterator[tuple[str | int, Any, Schemas, bool]]:
    """Each child of a dict or list: its key, value, schemas, and whether it is a secret's place."""
    if isinstance(value, dict):
        for name, item in value.items():
            subs = _property_schemas(schemas, name) if isinstance(name, str) else []
            named = isinstance(name, str) and not in_name_map and isinstance(item, str) and is_secret_name(name)
            yield name, item, subs, named or any(s.get("writeOnly") is True for s in subs)
    elif isinstance(value, list):
        subs = _item_schemas(schemas)
        secret = any(s.get("writeOnly") is True for s in subs)
        for index, item in enumerate(value):
            yield index, item, subs, secret


def _redact(value: Any, schemas: Schemas, in_name_map: bool = False) -> Any:
    if not isinstance(value, dict | list):
        return value
    out = {
        key: REDACTED
        if secret and item is not None
        else _redact(item, subs, in_name_map or (isinstance(key, str) and key in _NAME_MAPS))
        for key, item, subs, secret in _children(value, schemas, in_name_map)
    }
    return out if isinstance(value, dict) else list(out.values())


def _at(old: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return old[key] if isinstance(old, list) and key < len(old) else None
    return old.get(key) if isinstance(old, dict) else None


def _restore(new: Any, old: Any, schemas: Schemas, path: str, in_name_map: bool = False) -> Any:
    if not isinstance(new, dict | list):
        return new
    out = {}
    for key, item, subs, secret in _children(new, schemas, in_name_map):
        before = _at(old, key)
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        if secret and item == REDACTED:
            if before is None or before == REDACTED:
                raise RedactedWithoutSecret(where)
            out[key] = before
        else:
            out[key] = _restore(item, before, subs, where, in_name_map or (isinstance(key, str) and key in _NAME_MAPS))
    return out if isinstance(new, dict) else list(out.values())


def _schemas(policy: str) -> Schemas:
    cls = registry.get(policy)
    return [cls.schema] if cls is not None else []


def redact(policy: str, config: Any) -> Any:
    """``config`` as it may be shown: every secret replaced by :data:`REDACTED`."""
    return _redact(config, _schemas(policy))


def restore(policy: str, config: Any, stored: Any) -> Any:
    """``config`` to save: placeholders replaced by the secrets ``stored`` holds at the same places.

    Raises :class:`RedactedWithoutSecret` for a placeholder with nothing to keep.
    """
    return _restore(config, stored, _schemas(policy), "config")
