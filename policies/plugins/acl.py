"""acl: allow or deny the authenticated consumer by its groups and its credential's scopes.

A config is one rule (``allow_groups``, ``deny_groups``, ``required_scopes``,
optional ``methods``) or a list of them under ``rules``. Semantics, stated
because operators rely on them:

* A rule *applies* to a request when it lists no ``methods`` or lists the
  request's method (``HEAD`` is checked as ``GET`` unless HEAD is listed,
  since a HEAD reveals what a GET would).
* Every applicable rule must pass (rules are AND-ed; order does not matter).
* Within a rule: ``deny_groups`` wins — a consumer in any of them is denied;
  with ``allow_groups`` the consumer must be in at least one; every one of
  ``required_scopes`` must be among the identity's scopes (the API key's
  scopes, or the token's ``scope`` claim). Scopes and groups match exactly.
* A request with no authenticated consumer (no authentication policy ran, or
  it let an anonymous request through) is refused by any applicable rule with
  401 ``unauthenticated``: access control cannot decide about nobody, so it
  fails closed. A request no rule applies to passes untouched.

Denials: 403 ``access_denied`` (reason ``acl_denied`` for groups,
``scope_missing`` for scopes; the latter lists the required scopes in
``details`` and in ``WWW-Authenticate: Bearer error="insufficient_scope"``,
RFC 6750, so a client can ask for a token with the right scopes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apim.validators import HTTP_METHODS
from policies.base import CompileEnv, ConfigError, Denial, Handler, Policy
from policies.context import RequestContext

_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9:._*/-]{0,63}$"}
_RULE_PROPERTIES: dict[str, Any] = {
    "allow_groups": {
        "type": "array",
        "items": _NAME,
        "minItems": 1,
        "maxItems": 200,
        "uniqueItems": True,
        "description": "The consumer must be in at least one of these groups.",
    },
    "deny_groups": {
        "type": "array",
        "items": _NAME,
        "minItems": 1,
        "maxItems": 200,
        "uniqueItems": True,
        "description": "A consumer in any of these groups is denied (wins over allow_groups).",
    },
    "required_scopes": {
        "type": "array",
        "items": _NAME,
        "minItems": 1,
        "maxItems": 50,
        "uniqueItems": True,
        "description": "Every one of these scopes must be granted to the key or token.",
    },
    "methods": {
        "type": "array",
        "items": {"enum": list(HTTP_METHODS)},
        "minItems": 1,
        "uniqueItems": True,
        "description": "The rule applies only to these methods (default: all).",
    },
}
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": _RULE_PROPERTIES,
}


@dataclass(frozen=True, slots=True)
class AclRule:
    allow_groups: frozenset[str] | None
    deny_groups: frozenset[str]
    required_scopes: frozenset[str]
    methods: frozenset[str] | None  # None: every method

    def applies_to(self, method: str) -> bool:
        if self.methods is None:
            return True
        if method in self.methods:
            return True
        return method == "HEAD" and "GET" in self.methods


@dataclass(frozen=True, slots=True)
class AclConfig:
    rules: tuple[AclRule, ...]
    message: str


def _rule(raw: Mapping[str, Any], path: str) -> AclRule:
    allow = raw.get("allow_groups")
    deny = raw.get("deny_groups", [])
    scopes = raw.get("required_scopes", [])
    if allow is None and not deny and not scopes:
        where = path or "config"
        raise ConfigError(where, "a rule needs allow_groups, deny_groups or required_scopes")
    if allow is not None:
        both = sorted(set(allow) & set(deny))
        if both:
            raise ConfigError(f"{path}.deny_groups" if path else "deny_groups", f"{both[0]!r} is also in allow_groups")
    methods = raw.get("methods")
    return AclRule(
        allow_groups=frozenset(allow) if allow is not None else None,
        deny_groups=frozenset(deny),
        required_scopes=frozenset(scopes),
        methods=frozenset(methods) if methods is not None else None,
    )


UNAUTHENTICATED = Denial(
    status=401,
    code="unauthenticated",
    message="This API needs an authenticated consumer.",
    reason="acl_no_identity",
)


class AclHandler(Handler):
    """Checks the identity against the rules for the request's method; all precomputed per method."""

    def __init__(self, config: AclConfig) -> None:
        self._rules = config.rules
        self._by_method = {m: tuple(r for r in config.rules if r.applies_to(m)) for m in HTTP_METHODS}
        self._denied = Denial(status=403, code="access_denied", message=config.message, reason="acl_denied")
        self._scope_denials: dict[frozenset[str], Denial] = {}
        for rule in config.rules:
            if rule.required_scopes:
                wanted = " ".join(sorted(rule.required_scopes))
                self._scope_denials[rule.required_scopes] = Denial(
                    status=403,
                    code="access_denied",
                    message=config.message,
                    reason="scope_missing",
                    details={"required_scopes": sorted(rule.required_scopes)},
                    headers=((b"www-authenticate", f'Bearer error="insufficient_scope", scope="{wanted}"'.encode()),),
                )

    def check(self, method: str, identity: Any) -> Denial | None:
        rules = self._by_method.get(method)
        if rules is None:
            rules = tuple(r for r in self._rules if r.applies_to(method))
        if not rules:
            return None
        if identity is None:
            return UNAUTHENTICATED
        groups: frozenset[str] = identity.groups
        scopes: frozenset[str] = identity.scopes
        for rule in rules:
            if rule.deny_groups and not groups.isdisjoint(rule.deny_groups):
                return self._denied
            if rule.allow_groups is not None and groups.isdisjoint(rule.allow_groups):
                return self._denied
            if rule.required_scopes and not rule.required_scopes <= scopes:
                return self._scope_denials[rule.required_scopes]
        return None

    async def request(self, ctx: RequestContext) -> Denial | None:
        return self.check(ctx.method, ctx.identity)


class AclPolicy(Policy):
    name = "acl"
    title = "Access control (groups and scopes)"
    priority = 950
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **_RULE_PROPERTIES,
            "rules": {
                "type": "array",
                "items": _RULE,
                "minItems": 1,
                "maxItems": 100,
                "description": "Several rules, each optionally limited to some methods; all applicable must pass.",
            },
            "message": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Shown in the 403 error."},
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> AclConfig:
        top = {k: v for k, v in config.items() if k in _RULE_PROPERTIES}
        if "rules" in config:
            if top:
                raise ConfigError(sorted(top)[0], "give either one rule at the top level or a list of rules, not both")
            rules = tuple(_rule(raw, f"rules[{i}]") for i, raw in enumerate(config["rules"]))
        else:
            rules = (_rule(top, ""),)
        return AclConfig(rules=rules, message=config.get("message") or "You are not allowed to call this API.")

    @classmethod
    def compile(cls, parsed: AclConfig, env: CompileEnv) -> AclHandler:
        return AclHandler(parsed)
