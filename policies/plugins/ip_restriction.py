"""ip-restriction: allow or deny the real client address by CIDR (IPv4 and IPv6).

The address is the one the gateway computed once per request: the socket
peer, or behind configured trusted proxies the right-most untrusted
``X-Forwarded-For`` hop — never the left-most, which the client writes.
IPv4-mapped IPv6 peers (``::ffff:192.0.2.1`` on a dual-stack listener) are
compared as the IPv4 address they carry. ``deny`` wins over ``allow``; with an
``allow`` list, anything not in it is denied. An address the gateway cannot
parse is denied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import CompileEnv, ConfigError, Denial, Handler, Policy
from policies.context import RequestContext

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CIDR_LIST = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 64},
    "maxItems": 10_000,
    "description": "CIDR blocks or single addresses, e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7.",
}


@dataclass(frozen=True, slots=True)
class IpRules:
    allow: tuple[Network, ...]
    deny: tuple[Network, ...]
    message: str


def _networks(values: list[str], field: str) -> tuple[Network, ...]:
    networks = []
    for index, value in enumerate(values):
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{field}[{index}]", f"{value!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def _masks(networks: tuple[Network, ...], version: int) -> frozenset[tuple[int, int]]:
    return frozenset((int(n.network_address), int(n.netmask)) for n in networks if n.version == version)


def _contains(masks: frozenset[tuple[int, int]], value: int) -> bool:
    return any(value & mask == network for network, mask in masks)


class IpRestrictionHandler(Handler):
    def __init__(self, rules: IpRules) -> None:
        self._allow4 = _masks(rules.allow, 4)
        self._allow6 = _masks(rules.allow, 6)
        self._deny4 = _masks(rules.deny, 4)
        self._deny6 = _masks(rules.deny, 6)
        self._has_allow = bool(rules.allow)
        self._denial = Denial(status=403, code="ip_denied", message=rules.message)

    def permits(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        deny, allow = (self._deny4, self._allow4) if ip.version == 4 else (self._deny6, self._allow6)
        if deny and _contains(deny, value):
            return False
        if self._has_allow:
            return _contains(allow, value)
        return True

    async def request(self, ctx: RequestContext) -> Denial | None:
        return None if self.permits(ctx.client_ip) else self._denial


class IpRestrictionPolicy(Policy):
    name = "ip-restriction"
    title = "IP restriction"
    priority = 2050
    scopes = frozenset({"tenant", "api"})
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "allow": _CIDR_LIST,
            "deny": _CIDR_LIST,
            "message": {"type": "string", "maxLength": 200, "description": "Shown in the 403 error."},
        },
        "anyOf": [
            {"required": ["allow"], "properties": {"allow": {"minItems": 1}}},
            {"required": ["deny"], "properties": {"deny": {"minItems": 1}}},
        ],
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> IpRules:
        return IpRules(
            allow=_networks(config.get("allow", []), "allow"),
            deny=_networks(config.get("deny", []), "deny"),
            message=config.get("message") or "Requests from this address are not allowed.",
        )

    @classmethod
    def compile(cls, parsed: IpRules, env: CompileEnv) -> IpRestrictionHandler:
        return IpRestrictionHandler(parsed)
