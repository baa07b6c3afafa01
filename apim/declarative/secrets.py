"""Secrets in policy configs: never exported, never applied blindly.

What is a secret is ``policies.secrets``' rule, the one the REST API, the admin
and the audit log apply: a ``writeOnly`` field of the policy type's schema (jwt's
HS256 ``keys[].secret``) or a string under a credential's name (a
request-transformer adding an upstream ``Authorization`` header).
Export replaces each with ``REDACTED`` (the placeholder the REST API shows).
On import ``REDACTED`` means "keep the value stored at this very place" and is
refused where there is none (a new
attachment, another tenant, a key that moved), so a redacted file can never
silently install a placeholder as a secret. ``${NAME}`` in a secret field is
read from the environment, but only by ``manage.py apim_import``: over REST it
would let a tenant admin copy the server's environment (``DATABASE_URL``…)
into a config they can read back.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies import secrets as policy_secrets

REDACTED = policy_secrets.REDACTED
ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

Path = tuple[str | int, ...]


def path_text(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def secret_paths(policy: str, config: Any) -> list[Path]:
    """Where ``config`` holds a secret string (by ``policies.secrets``' rules): ``[("keys", 0, "secret")]``."""
    return [
        path
        for path, marker in _leaves(policy_secrets.redact(policy, config))
        if marker == REDACTED and isinstance(_get(config, path), str)
    ]


def _leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _get(value: Any, path: Path) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return None
        elif not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _set(value: Any, path: Path, new: Any) -> None:
    for part in path[:-1]:
        value = value[part]
    value[path[-1]] = new


def redact(policy: str, config: Any) -> Any:
    """A copy of ``config`` with every secret replaced by ``REDACTED``."""
    out = copy.deepcopy(config)
    for path in secret_paths(policy, out):
        _set(out, path, REDACTED)
    return out


def resolve(
    policy: str, config: Any, *, stored: Any, env: Mapping[str, str] | None
) -> tuple[Any, list[tuple[str, str]]]:
    """``config`` with ``REDACTED`` and ``${NAME}`` secrets replaced by real values.

    Returns the resolved copy and the problems as ``(path suffix, message)``;
    ``stored`` is the matching attachment's current config (None if new) and
    ``env`` the environment to read references from (None: refused).
    """
    out = copy.deepcopy(config)
    problems: list[tuple[str, str]] = []
    for path in secret_paths(policy, out):
        value = _get(out, path)
        if value == REDACTED:
            current = _get(stored, path) if stored is not None else None
            if isinstance(current, str) and current != REDACTED:
                _set(out, path, current)
            else:
                problems.append(
                    (
                        path_text(path),
                        "this secret was redacted by the export and there is no stored value here to keep; "
                        "write the secret (or, with manage.py apim_import, an ${ENV_VAR} reference) instead",
                    )
                )
            continue
        match = ENV_REFERENCE.match(value)
        if match is None:
            continue
        name = match.group(1)
        if env is None:
            problems.append(
                (path_text(path), f"${{{name}}}: environment references are resolved only by manage.py apim_import")
            )
        elif name not in env or not env[name]:
            problems.append((path_text(path), f"${{{name}}}: the environment variable {name} is not set"))
        else:
            _set(out, path, env[name])
    return out, problems
