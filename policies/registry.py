"""The policy types this installation knows: ``settings.APIM_POLICIES``, checked at start-up.

``PoliciesConfig.ready()`` calls :func:`load` so a bad registration (an import
that fails, two types with one name, a schema that is not valid JSON Schema, a
missing priority) stops the process at start-up instead of surfacing on the
first request that needs the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator

from policies.base import Policy

DEFAULT_POLICIES: tuple[str, ...] = (
    "policies.plugins.cors.CorsPolicy",
    "policies.plugins.ip_restriction.IpRestrictionPolicy",
    "policies.plugins.request_size_limit.RequestSizeLimitPolicy",
    "policies.plugins.jwt.JwtPolicy",
    "policies.plugins.key_auth.KeyAuthPolicy",
    "policies.plugins.acl.AclPolicy",
    "policies.plugins.rate_limit.RateLimitPolicy",
    "policies.plugins.quota.QuotaPolicy",
    "policies.plugins.request_transformer.RequestTransformerPolicy",
    "policies.plugins.response_transformer.ResponseTransformerPolicy",
    "policies.plugins.request_validator.RequestValidatorPolicy",
)


def build(paths: Iterable[str]) -> dict[str, type[Policy]]:
    """Import and check each registered policy class; raise ImproperlyConfigured naming the culprit."""
    types: dict[str, type[Policy]] = {}
    for path in paths:
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"APIM_POLICIES: cannot import {path!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise ImproperlyConfigured(f"APIM_POLICIES: {path!r} is not a Policy subclass")
        if not cls.name or not isinstance(cls.name, str):
            raise ImproperlyConfigured(f"APIM_POLICIES: {path!r} has no name")
        if cls.name in types:
            raise ImproperlyConfigured(f"APIM_POLICIES: two policy types are named {cls.name!r}")
        if not isinstance(cls.priority, int) or isinstance(cls.priority, bool) or cls.priority <= 0:
            raise ImproperlyConfigured(f"APIM_POLICIES: {path!r} needs a positive integer priority")
        if not cls.schema or cls.schema.get("type") != "object":
            raise ImproperlyConfigured(f"APIM_POLICIES: {path!r} needs a JSON Schema of type object")
        try:
            Draft202012Validator.check_schema(cls.schema)
        except SchemaError as exc:
            raise ImproperlyConfigured(f"APIM_POLICIES: {path!r} has an invalid schema: {exc.message}") from exc
        if cls.compile.__func__ is Policy.compile.__func__:  # type: ignore[attr-defined]
            raise ImproperlyConfigured(f"APIM_POLICIES: {path!r} does not implement compile()")
        types[cls.name] = cls
    return types


@lru_cache(maxsize=1)
def policy_types() -> dict[str, type[Policy]]:
    return build(getattr(settings, "APIM_POLICIES", DEFAULT_POLICIES))


def get(name: str) -> type[Policy] | None:
    return policy_types().get(name)


def choices() -> list[tuple[str, str]]:
    return [(cls.name, cls.title or cls.name) for cls in sorted(policy_types().values(), key=lambda c: -c.priority)]
