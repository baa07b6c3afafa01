"""Validators for the catalog's user-supplied strings.

They raise Django ``ValidationError`` with a message that says what is wrong,
so the admin, the commands and (later) the REST API all show the same words.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

# The gateway keeps this prefix for its own health, readiness and metrics endpoints.
RESERVED_PATH_PREFIX = "/__apim"

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._*/-]{0,63}$")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def validate_name(value: str) -> None:
    """Machine names (API, upstream, consumer, plan): lowercase letters, digits, dashes."""
    if not _NAME_RE.match(value or ""):
        raise ValidationError(
            "%(value)r is not a valid name: use 1-64 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit.",
            code="invalid_name",
            params={"value": value},
        )


def validate_path(value: str, *, allow_root: bool, what: str = "Base path") -> None:
    """A path prefix as the gateway will match it after canonicalisation.

    Refuses anything canonicalisation would change or that could mean two
    things: empty segments (``//``), dot segments, a trailing slash, percent
    escapes, and characters outside RFC 3986's unreserved set.
    """
    if not value or not value.startswith("/"):
        raise ValidationError(f"{what} must start with '/'.", code="path_no_slash")
    if len(value) > 200:
        raise ValidationError(f"{what} is longer than 200 characters.", code="path_too_long")
    if value == "/":
        if allow_root:
            return
        raise ValidationError(
            f"{what} cannot be '/' alone; give the API its own prefix such as /orders.", code="path_root"
        )
    if value.endswith("/"):
        raise ValidationError(f"{what} must not end with '/': write {value.rstrip('/')!r}.", code="path_trailing_slash")
    segments = value[1:].split("/")
    seen: set[str] = set()
    for segment in segments:
        if segment == "":
            raise ValidationError(f"{what} {value!r} has an empty segment ('//').", code="path_empty_segment")
        if segment in (".", ".."):
            raise ValidationError(f"{what} {value!r} contains a dot segment ({segment!r}).", code="path_dot_segment")
        if not _SEGMENT_RE.match(segment):
            raise ValidationError(
                f"{what} segment {segment!r} may only contain letters, digits and . _ ~ -",
                code="path_bad_character",
            )
        if segment in seen:
            raise ValidationError(f"{what} {value!r} repeats the segment {segment!r}.", code="path_duplicate_segment")
        seen.add(segment)
    if value.startswith(RESERVED_PATH_PREFIX):
        raise ValidationError(
            f"{what} may not start with {RESERVED_PATH_PREFIX}, which the gateway reserves.", code="path_reserved"
        )


def validate_base_path(value: str) -> None:
    validate_path(value, allow_root=False)


def validate_route_path(value: str) -> None:
    validate_path(value, allow_root=True, what="Route path")


def normalize_host(value: str) -> str:
    """Lowercase, trailing dot removed: the form the gateway compares hosts in."""
    return (value or "").strip().lower().rstrip(".")


def validate_host(value: str) -> None:
    """A hostname (optionally ``*.`` wildcard) or an IP literal, without port."""
    host = normalize_host(value)
    if not host:
        raise ValidationError("Host cannot be empty.", code="host_empty")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if ":" in host:
        raise ValidationError(f"Host {value!r} must not carry a port.", code="host_port")
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise ValidationError(f"{value!r} is not a valid hostname.", code="host_invalid")


def validate_host_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Hosts must be a list of hostnames.", code="hosts_not_list")
    for item in value:
        validate_host(item)
    normalized = [normalize_host(item) for item in value]
    if len(set(normalized)) != len(normalized):
        raise ValidationError("Hosts lists the same host twice.", code="hosts_duplicate")


def validate_methods(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('Methods must be a list such as ["GET", "POST"].', code="methods_not_list")
    for method in value:
        if method.upper() not in HTTP_METHODS:
            raise ValidationError(
                f"{method!r} is not a supported method; use {', '.join(HTTP_METHODS)}.", code="method_unknown"
            )
    if len({m.upper() for m in value}) != len(value):
        raise ValidationError("Methods lists the same method twice.", code="methods_duplicate")


def validate_scopes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Scopes must be a list of strings.", code="scopes_not_list")
    for scope in value:
        if not _SCOPE_RE.match(scope):
            raise ValidationError(
                f"{scope!r} is not a valid scope: 1-64 letters, digits and : . _ * / -", code="scope_invalid"
            )


def validate_upstream_url(value: str) -> None:
    """An http(s) URL with a host and no credentials, query or fragment.

    Credentials in a target URL would be stored in plain text and forwarded to
    the upstream; authentication to upstreams belongs in a policy.
    """
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not a valid URL: {exc}.", code="url_invalid") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Upstream URLs must use http:// or https://.", code="url_scheme")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError(
            "Upstream URLs must not carry credentials (user:password@); configure upstream auth in a policy.",
            code="url_credentials",
        )
    if not parts.hostname:
        raise ValidationError("Upstream URL needs a host.", code="url_no_host")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValidationError("Upstream URLs must not have a query string or fragment.", code="url_query")
    if port == 0:
        raise ValidationError("Upstream URL port must be between 1 and 65535.", code="url_port")
    if any(ch.isspace() for ch in value) or "\\" in value:
        raise ValidationError("Upstream URL must not contain spaces or backslashes.", code="url_invalid")
