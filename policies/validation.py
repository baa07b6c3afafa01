"""Validate a policy attachment's config against its type's schema and rules.

Used by the model's ``clean`` (so the admin, the commands and the REST API all
refuse a bad config with the same messages) and by the gateway's compiler. Each
message names the field: ``config.allow[1]: '10.0.0.0/33' is not a valid CIDR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema.validators import Draft202012Validator

from policies import registry
from policies.base import ConfigError, Policy

MAX_MESSAGES = 20


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validator(cls: type[Policy]) -> Draft202012Validator:
    cached = getattr(cls, "_apim_validator", None)
    if cached is None or cached.schema is not cls.schema:
        cached = Draft202012Validator(cls.schema)
        cls._apim_validator = cached  # type: ignore[attr-defined]
    return cached


def schema_errors(cls: type[Policy], config: Any) -> list[str]:
    """Every schema violation as ``field: message``, most specific first, at most MAX_MESSAGES."""
    errors = sorted(_validator(cls).iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    messages = []
    for error in errors[:MAX_MESSAGES]:
        where = _path(error.absolute_path)
        if error.validator == "additionalProperties":
            messages.append(f"{where or 'config'}: {error.message}")
        else:
            messages.append(f"{where}: {error.message}" if where else error.message)
    return messages


def parse_config(policy: str, config: Mapping[str, Any]) -> Any:
    """The parsed config, or ``ConfigError`` listing what is wrong (raised with every schema message)."""
    cls = registry.get(policy)
    if cls is None:
        known = ", ".join(sorted(registry.policy_types()))
        raise ConfigError("policy", f"unknown policy type {policy!r} (known: {known})")
    if not isinstance(config, Mapping):
        raise ConfigError("", 'the config must be a JSON object, e.g. {"allow": ["10.0.0.0/8"]}')
    messages = schema_errors(cls, config)
    if messages:
        raise ConfigError("", "; ".join(messages))
    return cls.parse(config)


def check_scope(policy: str, scope: str) -> str | None:
    """Why ``policy`` cannot be attached at ``scope``, or None if it can."""
    cls = registry.get(policy)
    if cls is None or scope in cls.scopes:
        return None
    allowed = ", ".join(sorted(cls.scopes))
    return (
        f"{policy} runs before the consumer is known, so it cannot be attached to a consumer "
        f"(allowed scopes: {allowed})."
    )
