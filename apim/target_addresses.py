"""Which network addresses an upstream (or a JWKS endpoint) may point at: the SSRF rules.

A gateway that forwards to operator-supplied URLs is a request-forgery tool
unless it refuses the addresses that reach *itself*: loopback (127.0.0.0/8,
``::1``), the unspecified addresses (``0.0.0.0/8``, ``::``, which Linux
connects to the local host), link-local (169.254.0.0/16 with the cloud
metadata service 169.254.169.254, ``fe80::/10``) and the gateway's own
listening ports on any address of this machine. Private RFC 1918 networks stay
allowed: that is where real upstreams live.

The rules are applied twice, with the same function:

* when a target is saved (``apim.services.catalog.target_save``): the host is
  resolved and **every** address it resolves to must pass, so a spelling the
  resolver understands (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
  ``localhost.``, ``[::ffff:127.0.0.1]``) is judged by where it really goes;
* when the gateway connects (``gateway/upstream/*``): the addresses the client
  is about to connect to are checked again, which defeats DNS rebinding (a
  name that resolved to a public address at registration and to 127.0.0.1
  later). That check costs one lookup in a frozenset per new connection,
  never per request on a pooled connection.

``settings.APIM_ALLOW_PRIVATE_TARGETS`` turns all of it off (local
development and the test suite, whose upstreams run on loopback).

A host that does not resolve is refused at registration: the control plane
and the gateways are expected to share DNS, and a name nobody can resolve is
far more often a typo than a plan. (The gateway would refuse to connect to it
anyway, as ``upstream_unreachable``.)
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORBIDDEN_V4 = (
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback"),
    (ipaddress.IPv4Network("0.0.0.0/8"), "unspecified"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local (cloud metadata)"),
)
_FORBIDDEN_V6 = (
    (ipaddress.IPv6Network("::1/128"), "loopback"),
    (ipaddress.IPv6Network("::/128"), "unspecified"),
    (ipaddress.IPv6Network("fe80::/10"), "link-local"),
)
# Names that mean this machine whatever DNS says (RFC 6761 §6.3).
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """The connect-time form of the rules: what a gateway worker refuses to connect to.

    ``own_ports`` are the ports this deployment listens on (gateway and web);
    an address of this machine on one of them is the gateway calling itself.
    """

    own_ports: frozenset[int]

    def refusal(self, ip: str, port: int) -> str | None:
        return address_refusal(ip, port, own_ports=self.own_ports)

    @classmethod
    def from_settings(cls) -> AddressGuard | None:
        """The guard the settings ask for, or None when private targets are allowed (no cost at all)."""
        from django.conf import settings

        if getattr(settings, "APIM_ALLOW_PRIVATE_TARGETS", False):
            return None
        return cls(own_ports=own_ports())


class ForbiddenAddress(OSError):
    """Raised inside the upstream clients' connect step for a refused address.

    An ``OSError`` so that the HTTP libraries treat it as a failed connect
    (nothing was sent); the clients translate it into ``UpstreamForbidden``.
    """


SERVING_PORT_ENV = "APIM_GATEWAY_SERVING_PORT"  # set by ``manage.py gateway`` for its workers


def own_ports() -> frozenset[int]:
    """This machine's apim ports: the configured web and gateway ports, and the port the gateway
    was actually started on (``manage.py gateway --port``), which may differ from the setting."""
    from django.conf import settings

    ports = {getattr(settings, "APIM_GATEWAY_PORT", None), getattr(settings, "APIM_WEB_PORT", None)}
    serving = os.environ.get(SERVING_PORT_ENV, "")
    if serving.isdigit():
        ports.add(int(serving))
    return frozenset(p for p in ports if isinstance(p, int))


def _unwrap(ip: IPAddress) -> IPAddress:
    """IPv4 carried in IPv6 (``::ffff:127.0.0.1``, the old ``::127.0.0.1``) is judged as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible (deprecated, ::a.b.c.d)
            return ipaddress.IPv4Address(int(ip))
    return ip


def _is_local_address(ip: IPAddress) -> bool:
    """True when ``ip`` is an address of one of this machine's interfaces (binding to it works)."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((str(ip), 0))
        return True
    return False


def address_refusal(ip: str, port: int, *, own_ports: Iterable[int] = ()) -> str | None:
    """Why connecting to ``ip``:``port`` is refused, or None when it is allowed."""
    try:
        address: IPAddress = _unwrap(ipaddress.ip_address(ip.split("%", 1)[0]))
    except ValueError:
        return f"{ip!r} is not an IP address"
    for network, what in _FORBIDDEN_V4 if address.version == 4 else _FORBIDDEN_V6:
        if address in network:
            return f"{address} is a {what} address"
    if port in own_ports and _is_local_address(address):
        return f"{address}:{port} is this gateway's own listening port"
    return None


def _numeric_addresses(name: str, port: int) -> list[str] | None:
    """The address(es) a numeric host spells, in any form the C library accepts; None for a name."""
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return sorted({str(info[4][0]) for info in infos})


def literal_refusal(host: str, port: int, *, own_ports: Iterable[int] = ()) -> str | None:
    """The rules for what can be judged without DNS: numeric hosts (any spelling) and local names.

    For config parsed on the gateway's compile path too (JWKS URLs), where a
    DNS lookup must not decide whether a policy compiles; the fetch itself is
    checked against the resolved addresses.
    """
    name = host.strip().rstrip(".").lower()
    if not name:
        return "the host is empty"
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return f"{host!r} names this machine (loopback)"
    for ip in _numeric_addresses(name, port) or ():
        reason = address_refusal(ip, port, own_ports=own_ports)
        if reason is not None:
            return (f"{host!r} is {ip}: " if ip != name else "") + reason
    return None


def host_refusal(host: str, port: int, *, own_ports: Iterable[int] = ()) -> str | None:
    """Resolve ``host`` and judge every address; the reason for refusing, or None.

    ``host`` is as ``urlsplit(...).hostname`` gives it (no brackets, lowercase).
    Every address must pass: a name with one public and one loopback address
    is refused, since the connection may go to either.
    """
    return checked_addresses(host, port, own_ports=own_ports)[1]


def checked_addresses(host: str, port: int, *, own_ports: Iterable[int] = ()) -> tuple[list[str], str | None]:
    """``host`` resolved once: (its addresses, None) when every one may be connected to, else ([], reason).

    A caller that connects to one of these addresses itself (instead of
    resolving the name again) leaves no DNS-rebinding window between the check
    and the connection.
    """
    ports = frozenset(own_ports)
    reason = literal_refusal(host, port, own_ports=ports)
    if reason is not None:
        return [], reason
    name = host.strip().rstrip(".").lower()
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        return [], f"{host!r} could not be resolved ({exc}); use a resolvable name or an IP address"
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        return [], f"{host!r} did not resolve to any address"
    for ip in addresses:
        reason = address_refusal(ip, port, own_ports=ports)
        if reason is not None:
            shown = f"{host!r} resolves to {ip}: " if ip != name else ""
            return [], shown + reason
    return addresses, None


def url_refusal(url: str) -> str | None:
    """``host_refusal`` for a URL's host and port (default 80/443); None also for what is not a URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # the URL validators report malformed URLs in their own words
    if not parts.hostname:
        return None
    return host_refusal(parts.hostname, port, own_ports=own_ports())


def url_literal_refusal(url: str) -> str | None:
    """``literal_refusal`` for a URL (no DNS)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return literal_refusal(parts.hostname, port, own_ports=own_ports())


def private_targets_allowed() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "APIM_ALLOW_PRIVATE_TARGETS", False))
