"""Secrets inside policy configs are written, never read back.

A policy type marks a config field secret with the standard JSON Schema
annotation ``"writeOnly": true`` (jwt's HS256 ``secret``). Every way a config
leaves the control plane — the REST API, the admin form — shows such a value as
:data:`REDACTED` instead, to every role: a viewer must not learn a shared
secret by reading an attachment, and an operator has no need to see one again
(it was shown when they typed it), like an API key.

Saving a config that still carries :data:`REDACTED` at a secret's place keeps
the secret stored there (:func:`restore`), so a client can read a config, change
another field and write it back. Array items are matched by position; a
placeholder with no secret at its place is refused with the field's path.

The gateway's snapshot reads the stored config directly and never sees the
placeholder.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from policies import registry

REDACTED = "[redacted]"


class RedactedWithoutSecret(ValueError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: {REDACTED!r} keeps an existing secret, and there is none here; send the secret")
        self.path = path


def _branches(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield schema
    for keyword in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(keyword) or ():
            if isinstance(branch, Mapping):
                yield from _branches(branch)


def _property_schemas(schema: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return [
        branch["properties"][name]
        for branch in _branches(schema)
        if isinstance(branch.get("properties"), Mapping) and isinstance(branch["properties"].get(name), Mapping)
    ]


def _item_schemas(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [branch["items"] for branch in _branches(schema) if isinstance(branch.get("items"), Mapping)]


def _is_secret(schemas: list[Mapping[str, Any]]) -> bool:
    return any(s.get("writeOnly") is True for s in schemas)


def has_secrets(schema: Mapping[str, Any]) -> bool:
    """Whether a schema marks any field ``writeOnly`` (so redaction has anything to do)."""
    if any(branch.get("writeOnly") is True for branch in _branches(schema)):
        return True
    for branch in _branches(schema):
        for sub in (branch.get("properties") or {}).values():
            if isinstance(sub, Mapping) and has_secrets(sub):
                return True
        if isinstance(branch.get("items"), Mapping) and has_secrets(branch["items"]):
            return True
    return False


def _redact(value: Any, schemas: list[Mapping[str, Any]]) -> Any:
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            subs = [p for s in schemas for p in _property_schemas(s, name)]
            out[name] = REDACTED if _is_secret(subs) and item is not None else _redact(item, subs)
        return out
    if isinstance(value, list):
        subs = [i for s in schemas for i in _item_schemas(s)]
        return [REDACTED if _is_secret(subs) and item is not None else _redact(item, subs) for item in value]
    return value


def _restore(new: Any, old: Any, schemas: list[Mapping[str, Any]], path: str) -> Any:
    if isinstance(new, dict):
        out = {}
        for name, item in new.items():
            subs = [p for s in schemas for p in _property_schemas(s, name)]
            before = old.get(name) if isinstance(old, dict) else None
            where = f"{path}.{name}"
            if _is_secret(subs) and item == REDACTED:
                if before is None or before == REDACTED:
                    raise RedactedWithoutSecret(where)
                out[name] = before
            else:
                out[name] = _restore(item, before, subs, where)
        return out
    if isinstance(new, list):
        subs = [i for s in schemas for i in _item_schemas(s)]
        out_list = []
        for index, item in enumerate(new):
            before = old[index] if isinstance(old, list) and index < len(old) else None
            where = f"{path}[{index}]"
            if _is_secret(subs) and item == REDACTED:
                if before is None or before == REDACTED:
                    raise RedactedWithoutSecret(where)
                out_list.append(before)
            else:
                out_list.append(_restore(item, before, subs, where))
        return out_list
    return new


def _schema(policy: str) -> Mapping[str, Any] | None:
    cls = registry.get(policy)
    return cls.schema if cls is not None else None


def redact(policy: str, config: Any) -> Any:
    """``config`` as it may be shown: every ``writeOnly`` value replaced by :data:`REDACTED`."""
    schema = _schema(policy)
    if schema is None or not has_secrets(schema):
        return config
    return _redact(config, [schema])


def restore(policy: str, config: Any, stored: Any) -> Any:
    """``config`` to save: placeholders replaced by the secrets ``stored`` holds at the same places.

    Raises :class:`RedactedWithoutSecret` for a placeholder with nothing to keep.
    """
    schema = _schema(policy)
    if schema is None or not has_secrets(schema):
        return config
    return _restore(copy.deepcopy(config), stored, [schema], "config")
